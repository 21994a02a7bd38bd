package fallback

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// fakePort records injected frames.
type fakePort struct{ frames [][]byte }

func (f *fakePort) Inject(b []byte) error {
	f.frames = append(f.frames, append([]byte(nil), b...))
	return nil
}

// countPort counts without keeping anything (allocation-free).
type countPort struct{ n, bytes int }

func (c *countPort) Inject(b []byte) error { c.n++; c.bytes += len(b); return nil }

var (
	peerA = netip.MustParseAddr("10.0.0.1")
	local = netip.MustParseAddr("10.0.0.2")
)

// pieces segments a VXLAN message carrying frame into pieces of mss bytes.
func pieces(tb testing.TB, vni uint32, frame []byte, mss int, id uint32) []sclp.Piece {
	tb.Helper()
	msg := make([]byte, sclp.VXLANHeaderLen+len(frame))
	sclp.PutVXLAN(msg, vni)
	copy(msg[sclp.VXLANHeaderLen:], frame)
	var s sclp.Segmenter
	s.NoChecksum = true
	if err := s.Reset(msg, mss, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	var ps []sclp.Piece
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return ps
		}
		ps = append(ps, sclp.Piece{Key: sclp.Key{Src: peerA, Dst: local, OuterSrcPort: 50000, OuterDstPort: 4795,
			SrcPort: h.SrcPort, DstPort: h.DstPort, ID: h.ID}, First: h.First, Remaining: int(h.Remaining), Payload: chunk})
	}
}

func TestWorkerReordered(t *testing.T) {
	ports := new(PortTable)
	fp := &fakePort{}
	ports.Set(PortKey{Peer: peerA, VNI: 42}, fp)
	w, err := NewWorker(sclp.Config{}, ports)
	if err != nil {
		t.Fatal(err)
	}
	frame := testFrame(protoTCP, 20000, 0)
	ps := pieces(t, 42, frame, 1460, 2)
	now := time.Unix(100, 0)
	// Reverse order plus a duplicate of the middle piece.
	for i := len(ps) - 1; i >= 0; i-- {
		w.Handle(now, ps[i])
		if i == len(ps)/2 {
			w.Handle(now, ps[i])
		}
	}
	if len(fp.frames) != 1 || !bytes.Equal(fp.frames[0], frame) {
		t.Fatalf("injected %d frames; first equal: %v", len(fp.frames), len(fp.frames) == 1 && bytes.Equal(fp.frames[0], frame))
	}
	st := w.Stats()
	if st.InjectedFrames != 1 || st.Reassembly.Drops[sclp.DropDuplicate] != 1 || st.Pieces != uint64(len(ps)+1) {
		t.Fatalf("stats %+v", st)
	}
	// Unknown VNI: counted, not injected.
	for _, p := range pieces(t, 7, frame, 1460, 4) {
		w.Handle(now, p)
	}
	if st := w.Stats(); st.UnknownPort != 1 || st.Reassembly.Drops[sclp.DropUnknownPeer] != 1 {
		t.Fatalf("unknown port stats %+v", st)
	}
	// A partial message is lost on stop and reported.
	w.Handle(now, pieces(t, 42, frame, 1460, 6)[0])
	if lost := w.Stop(); lost != 1 || w.Stats().LostOnStop != 1 {
		t.Fatalf("stop lost %d", lost)
	}
}

func TestWorkerExpire(t *testing.T) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 1}, &countPort{})
	w, _ := NewWorker(sclp.Config{Timeout: time.Second}, ports)
	ps := pieces(t, 1, testFrame(protoTCP, 5000, 0), 1460, 8)
	now := time.Unix(100, 0)
	w.Handle(now, ps[0])
	w.Handle(now, ps[2])
	if n := w.Expire(now.Add(2 * time.Second)); n != 1 {
		t.Fatalf("expired %d", n)
	}
	if st := w.Stats(); st.TimedOut() != 1 || st.Reassembly.BufferedEntries != 0 {
		t.Fatalf("stats %+v", st)
	}
}

func TestWorkerAllocs(t *testing.T) {
	ports := new(PortTable)
	cp := &countPort{}
	ports.Set(PortKey{Peer: peerA, VNI: 1}, cp)
	w, _ := NewWorker(sclp.Config{}, ports)
	frame := testFrame(protoTCP, 63000, 0)
	ps := pieces(t, 1, frame, 1460, 10)
	now := time.Unix(100, 0)
	id := uint32(10)
	n := testing.AllocsPerRun(100, func() {
		id += 2
		for i := range ps {
			ps[i].Key.ID = id
			w.Handle(now, ps[i])
		}
	})
	if n != 0 {
		t.Fatalf("Handle allocates %v times per 64 KB message", n)
	}
	if cp.n < 100 {
		t.Fatalf("only %d messages delivered", cp.n)
	}
}

// BenchmarkWorkerMessage measures reassembly of one 64 KB message from 1460-byte pieces.
func BenchmarkWorkerMessage(b *testing.B) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 1}, &countPort{})
	w, _ := NewWorker(sclp.Config{}, ports)
	ps := pieces(b, 1, testFrame(protoTCP, 63000, 0), 1460, 10)
	now := time.Unix(100, 0)
	b.SetBytes(63000)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		for j := range ps {
			ps[j].Key.ID = uint32(i) << 1
			w.Handle(now, ps[j])
		}
	}
}
