//go:build linux

package udp

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// recordPort keeps what it is given, through either path.
type recordPort struct{ frames [][]byte }

func (r *recordPort) Inject(b []byte) error {
	r.frames = append(r.frames, append([]byte(nil), b...))
	return nil
}

func (r *recordPort) InjectChunks(cs [][]byte) error {
	var f []byte
	for _, c := range cs {
		f = append(f, c...)
	}
	r.frames = append(r.frames, f)
	return nil
}

// splitWorker is a receive worker without a socket, for feeding batches directly.
func splitWorker(tb testing.TB, port fallback.Port) *rxWorker {
	ports := new(fallback.PortTable)
	ports.Set(fallback.PortKey{Peer: netip.MustParseAddr("10.0.0.1"), VNI: 9}, port)
	w, err := fallback.NewWorker(sclp.Config{}, ports)
	if err != nil {
		tb.Fatal(err)
	}
	g := &rxGroup{local: netip.MustParseAddrPort("10.0.0.2:4795"), ports: ports, expire: time.Second}
	r := newRxWorker(g, -1, w)
	r.name.Addr = [4]byte{10, 0, 0, 1}
	return r
}

// batch builds a GRO batch of the segments of a message carrying frame.
func batch(tb testing.TB, frame []byte, mss int, id uint32) []byte {
	msg := make([]byte, 8+len(frame))
	sclp.PutVXLAN(msg, 9)
	copy(msg[8:], frame)
	var s sclp.Segmenter
	s.NoChecksum = true
	if err := s.Reset(msg, mss, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	var b []byte
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return b
		}
		b, _ = h.AppendBinary(b)
		b = append(b, chunk...)
	}
}

// TestSplitPaths: a whole in-order message in one batch takes the zero-copy path, a batch
// holding half of a message and then the rest takes the reassembler; both deliver the frame.
func TestSplitPaths(t *testing.T) {
	frame := testTCPFrame(10000)
	rp := &recordPort{}
	r := splitWorker(t, rp)
	b := batch(t, frame, 1460, 2)
	r.split(time.Now(), b, 1472)
	cut := 4 * 1472
	b2 := batch(t, frame, 1460, 4)
	r.split(time.Now(), b2[:cut], 1472)
	r.split(time.Now(), b2[cut:], 1472)
	st := r.w.Stats()
	if len(rp.frames) != 2 || !bytes.Equal(rp.frames[0], frame) || !bytes.Equal(rp.frames[1], frame) || st.ZeroCopy != 1 {
		t.Fatalf("%d frames, zero-copy %d", len(rp.frames), st.ZeroCopy)
	}
	if st.Reassembly.Completed != 2 {
		t.Fatalf("completed %d, want 2 (zero-copy included)", st.Reassembly.Completed)
	}
}

// FuzzSplit feeds arbitrary batches: no panic, and whatever is delivered is a whole frame
// whose length matches what its first segment announced.
func FuzzSplit(f *testing.F) {
	f.Add(batch(f, testTCPFrame(5000), 1460, 2), uint16(1472))
	f.Add(batch(f, testTCPFrame(200), 1460, 2), uint16(1472))
	f.Fuzz(func(t *testing.T, b []byte, gso uint16) {
		if gso == 0 {
			gso = 1472
		}
		rp := &recordPort{}
		r := splitWorker(t, rp)
		r.split(time.Now(), b, int(gso))
		st := r.w.Stats()
		if uint64(len(rp.frames)) != st.InjectedFrames {
			t.Fatalf("%d frames recorded, %d counted", len(rp.frames), st.InjectedFrames)
		}
	})
}
