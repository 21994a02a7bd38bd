package fallback

import (
	"bytes"
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// records builds exception records (reason 1, checksum not verified) for a message.
func records(tb testing.TB, vni uint32, frame []byte, id uint32) [][]byte {
	tb.Helper()
	var out [][]byte
	msg := make([]byte, 8+len(frame))
	sclp.PutVXLAN(msg, vni)
	copy(msg[8:], frame)
	var s sclp.Segmenter
	if err := s.Reset(msg, 1468, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return out
		}
		rec := make([]byte, bpf.RecordHeaderLen)
		pkt, err := sclp.AppendPacket(nil, sclp.PacketOptions{NoEthernet: true, Src: peerA, Dst: local}, h, chunk)
		if err != nil {
			tb.Fatal(err)
		}
		binary.NativeEndian.PutUint32(rec[0:], uint32(bpf.ReasonMultiSegment))
		binary.NativeEndian.PutUint32(rec[4:], uint32(len(pkt)))
		binary.NativeEndian.PutUint32(rec[8:], 3)
		out = append(out, append(rec, pkt...))
	}
}

// fakeRing replays records, then reports deadlines, then closed.
type fakeRing struct {
	recs [][]byte
	idle int
}

func (f *fakeRing) SetDeadline(time.Time) {}
func (f *fakeRing) ReadInto(r *ringbuf.Record) error {
	if len(f.recs) == 0 {
		if f.idle--; f.idle >= 0 {
			return os.ErrDeadlineExceeded
		}
		return ringbuf.ErrClosed
	}
	r.RawSample = append(r.RawSample[:0], f.recs[0]...)
	f.recs = f.recs[1:]
	return nil
}

func TestRingReader(t *testing.T) {
	ports := new(PortTable)
	fp := &fakePort{}
	ports.Set(PortKey{Peer: peerA, VNI: 3}, fp)
	w, _ := NewWorker(sclp.Config{}, ports)
	frame := testFrame(protoTCP, 10000, 0)
	recs := records(t, 3, frame, 2)
	// Out of order, one corrupted copy, one truncated record.
	recs[0], recs[2] = recs[2], recs[0]
	bad := append([]byte(nil), recs[1]...)
	bad[len(bad)-1] ^= 0xff
	recs = append(recs, bad, recs[1][:10])
	rr := NewRingReader(&fakeRing{recs: recs, idle: 2}, w, RingReaderOptions{})
	if err := rr.Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fp.frames) != 1 || !bytes.Equal(fp.frames[0], frame) {
		t.Fatalf("injected %d frames", len(fp.frames))
	}
	st := rr.Stats()
	if st.Records != uint64(len(recs)) || st.BadChecksum != 1 || st.BadRecords != 1 {
		t.Fatalf("ring stats %+v", st)
	}
}

func TestRingReaderAllocs(t *testing.T) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 3}, &countPort{})
	w, _ := NewWorker(sclp.Config{}, ports)
	recs := records(t, 3, testFrame(protoTCP, 60000, 0), 2)
	for _, r := range recs { // ids change below, so the checksums no longer hold: "verified by BPF"
		binary.NativeEndian.PutUint32(r[12:], bpf.FlagChecksumVerified)
	}
	rr := NewRingReader(&fakeRing{}, w, RingReaderOptions{})
	now := time.Unix(1, 0)
	id := uint32(2)
	n := testing.AllocsPerRun(50, func() {
		id += 2
		for _, r := range recs {
			binary.BigEndian.PutUint32(r[bpf.RecordHeaderLen+20+4:], id)
		}
		recs[0][bpf.RecordHeaderLen+20+7] |= 1 // F bit on the first segment
		for _, r := range recs {
			rr.Handle(now, r)
		}
	})
	if n != 0 {
		t.Fatalf("Handle allocates %v per message", n)
	}
}

// BenchmarkRingRecord measures ns per record: parse, checksum verify, reassemble, deliver.
func BenchmarkRingRecord(b *testing.B) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 3}, &countPort{})
	w, _ := NewWorker(sclp.Config{}, ports)
	recs := records(b, 3, testFrame(protoTCP, 60000, 0), 2)
	rr := NewRingReader(&fakeRing{}, w, RingReaderOptions{})
	now := time.Unix(1, 0)
	b.SetBytes(int64(len(recs[1])))
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rr.Handle(now, recs[i%len(recs)])
		i++
	}
}

// TestRingReaderOnRefused: OnRefused hears of exactly the first pieces of multi-segment
// messages that the reassembler refused at the peer's cap (not of single-segment messages,
// continuation pieces, or first pieces it took).
func TestRingReaderOnRefused(t *testing.T) {
	cfg := sclp.DefaultConfig()
	cfg.MaxPeerEntries = 2
	w, err := NewWorker(cfg, new(PortTable))
	if err != nil {
		t.Fatal(err)
	}
	var refused []netip.Addr
	rr := NewRingReader(&fakeRing{}, w, RingReaderOptions{OnRefused: func(a netip.Addr) { refused = append(refused, a) }})
	now := time.Now()
	var firsts, rests [][]byte
	for id := uint32(2); id < 12; id += 2 {
		recs := records(t, 3, testFrame(protoTCP, 4000, 0), id)
		firsts, rests = append(firsts, recs[0]), append(rests, recs[1])
	}
	single := records(t, 3, testFrame(protoTCP, 1000, 0), 40)
	rr.Handle(now, firsts[0])
	rr.Handle(now, firsts[1]) // the peer's cap: 2 partial messages
	rr.Handle(now, single[0]) // complete at once: no partial message
	rr.Handle(now, rests[2])  // refused, but not a first piece
	if len(refused) != 0 {
		t.Fatalf("refused %v before any first piece was refused", refused)
	}
	// No credit (nothing completed through the reassembler), no spare eviction yet: every
	// further first piece is refused, and each refusal is reported.
	for _, rec := range firsts[2:] {
		rr.Handle(now, rec)
	}
	st := w.Stats().Reassembly
	if n := st.Drops[sclp.DropOverLimit]; len(refused) != 3 || n != 4 || st.Drops[sclp.DropEvicted] != 0 {
		t.Fatalf("OnRefused got %v; reassembler over_limit %d (want 3 first pieces + 1 continuation), evicted %d",
			refused, n, st.Drops[sclp.DropEvicted])
	}
	for _, a := range refused {
		if a != peerA {
			t.Fatalf("OnRefused got %v, want %v", refused, peerA)
		}
	}
}
