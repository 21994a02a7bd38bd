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
