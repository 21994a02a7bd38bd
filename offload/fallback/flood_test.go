package fallback

import (
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// BenchmarkFloodFirstSegments measures the cost of one first segment of a message that never
// finishes, from a peer at its per-peer cap that completes nothing, arriving 1 us apart (a
// million a second): each is refused but for the peer's spare eviction every 100 us (before
// the refusal policy, each evicted the peer's oldest).
func BenchmarkFloodFirstSegments(b *testing.B) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 1}, &countPort{})
	w, _ := NewWorker(sclp.Config{MaxBytes: 8 << 20, MaxPeerBytes: 4 << 20}, ports)
	chunk := make([]byte, 1460)
	now := time.Unix(100, 0)
	p := sclp.Piece{Key: sclp.Key{Src: peerA, Dst: local, OuterSrcPort: 50001, OuterDstPort: 4795,
		SrcPort: 50001, DstPort: sclp.VXLANPort}, First: true, Remaining: 60000, Payload: chunk}
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Key.ID = uint32(i) << 1
		now = now.Add(time.Microsecond)
		w.Handle(now, p)
	}
	st := w.Stats()
	b.ReportMetric(float64(st.Reassembly.BufferedBytes), "buffered_bytes")
	b.ReportMetric(float64(st.Reassembly.Drops[sclp.DropEvicted])/float64(b.N), "evicted/op")
}

// chunkCountPort is a countPort that also takes scatter writes, as a zero-copy port does.
type chunkCountPort struct{ countPort }

func (c *chunkCountPort) InjectChunks(chunks [][]byte) error {
	c.n++
	for _, ch := range chunks {
		c.bytes += len(ch)
	}
	return nil
}

// BenchmarkFloodWithCompletions is BenchmarkFloodFirstSegments with a peer that fakes
// eviction credit the cheap way (the reviewer's attack on the per-message credit): after
// every 4 flood first segments it completes one small in-order two-segment message (1.5 KB)
// through the zero-copy path (HandleRun, which reports it with NoteCompleted). One op is one
// flood segment (plus a quarter of that completion). With credit per message each
// completion paid for 4 evictions of 64 KB-class flood entries, so every flood segment
// evicted one; with credit by bytes it buys 6 KB, a tenth of one such eviction.
func BenchmarkFloodWithCompletions(b *testing.B) {
	ports := new(PortTable)
	ports.Set(PortKey{Peer: peerA, VNI: 1}, &chunkCountPort{})
	w, _ := NewWorker(sclp.Config{MaxBytes: 8 << 20, MaxPeerBytes: 4 << 20}, ports)
	chunk := make([]byte, 1460)
	now := time.Unix(100, 0)
	p := sclp.Piece{Key: sclp.Key{Src: peerA, Dst: local, OuterSrcPort: 50001, OuterDstPort: 4795,
		SrcPort: 50001, DstPort: sclp.VXLANPort}, First: true, Remaining: 60000, Payload: chunk}
	msg := make([]byte, 1500)
	sclp.PutVXLAN(msg, 1)
	run := p.Key
	chunks := make([][]byte, 2)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		p.Key.ID = uint32(i) << 1
		now = now.Add(time.Microsecond)
		w.Handle(now, p)
		if i%4 == 3 {
			run.ID = p.Key.ID | 1<<31
			chunks[0], chunks[1] = msg[:750], msg[750:]
			if !w.HandleRun(run, chunks) {
				b.Fatal("run not taken")
			}
		}
	}
	st := w.Stats()
	b.ReportMetric(float64(st.Reassembly.BufferedBytes), "buffered_bytes")
	b.ReportMetric(float64(st.Reassembly.Drops[sclp.DropEvicted])/float64(b.N), "evicted/op")
}
