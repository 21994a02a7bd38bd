package bpf

import (
	"fmt"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
)

// runTimed runs prog once on a fresh copy of in (BPF_PROG_TEST_RUN with repeat 1) and
// returns the kernel-measured run time. Repeat mode would run the program again on the skb
// it just rewrote, so every iteration is a separate run and only the in-kernel time counts.
func runTimed(prog *ebpf.Program, in []byte) (uint32, time.Duration, error) {
	return prog.Benchmark(in, 1, nil)
}

// BenchmarkTxSegment: ns per transmitted segment for frames of 1, 2 and 3 segments (MSS
// 1468; BPF_PROG_TEST_RUN takes at most ~3.7 KB), clones really sent out of a veth in a
// private namespace.
func BenchmarkTxSegment(b *testing.B) {
	for _, n := range []int{64, 1460, 2900, 3600} {
		segs := (n + 8 + 1467) / 1468
		b.Run(fmt.Sprintf("frame%d_segs%d", n, segs), func(b *testing.B) {
			bed := newTxBed(b, 1468)
			frame := innerFrame(rand.New(rand.NewPCG(1, 1)), max(n, 42))[:n]
			var total time.Duration
			err := bed.ns.Do(func() error {
				b.ResetTimer()
				for range b.N {
					ret, d, err := runTimed(bed.o.SclpTx, frame)
					if err != nil || ret != actRedirect {
						return fmt.Errorf("verdict %d: %v", ret, err)
					}
					total += d
				}
				return nil
			})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(int64(n))
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N*segs), "ns/segment")
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "kernel-ns/op")
		})
	}
}

// BenchmarkRxSegment: ns per received segment on the fast path (single-segment message,
// decapsulated and redirected), on the exception path (a first segment of a multi-segment
// message, copied into the ring buffer), for the same first segment from a throttled peer
// (dropped after the checksum, before the ring) and from a non-peer (dropped after the peer
// lookup).
func BenchmarkRxSegment(b *testing.B) {
	o := loadObjects(b)
	addRxPort(b, o, peerA, testVNI, 77, 1500)
	peerT, nonPeer := netip.MustParseAddr("10.0.0.7"), netip.MustParseAddr("10.0.0.8")
	addRxPort(b, o, peerT, testVNI, 78, 1500)
	now, err := MonotonicNow()
	if err != nil {
		b.Fatal(err)
	}
	if err := Throttle(o.Throttled, peerT, now+time.Hour); err != nil {
		b.Fatal(err)
	}
	r := rand.New(rand.NewPCG(2, 2))
	fast := segments(b, peerA, localB, 100, message(testVNI, innerFrame(r, 1460)), 1468)[0]
	msg := message(testVNI, innerFrame(r, 3000))
	multi := segments(b, peerA, localB, 102, msg, 1468)[0]
	throttledFirst := segments(b, peerT, localB, 102, msg, 1468)[0]
	nonPeerFirst := segments(b, nonPeer, localB, 102, msg, 1468)[0]
	for _, c := range []struct {
		name string
		pkt  []byte
		want uint32
	}{{"fast_1514B", fast, actRedirect}, {"ring_1514B", multi, actShot},
		{"throttled_1514B", throttledFirst, actShot}, {"nonpeer_1514B", nonPeerFirst, actShot}} {
		b.Run(c.name, func(b *testing.B) {
			var total time.Duration
			b.ResetTimer()
			for i := range b.N {
				if c.want == actShot && i%2000 == 1999 {
					drainRing(b, o) // keep the ring from filling
				}
				ret, d, err := runTimed(o.SclpRx, c.pkt)
				if err != nil || ret != c.want {
					b.Fatalf("verdict %d: %v", ret, err)
				}
				total += d
			}
			b.SetBytes(int64(len(c.pkt)))
			b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/segment")
		})
	}
}

// BenchmarkRxSegmentRepeat measures the rx exception path in BPF_PROG_TEST_RUN's repeat
// mode (valid there: that path does not rewrite the skb), 1000 runs per call.
func BenchmarkRxSegmentRepeat(b *testing.B) {
	o := loadObjects(b)
	addRxPort(b, o, peerA, testVNI, 77, 1500)
	r := rand.New(rand.NewPCG(3, 3))
	pkt := segments(b, peerA, localB, 104, message(testVNI, innerFrame(r, 3000)), 1468)[0]
	var total time.Duration
	b.ResetTimer()
	for range b.N {
		drainRing(b, o)
		ret, d, err := o.SclpRx.Benchmark(pkt, 1000, nil)
		if err != nil || ret != actShot {
			b.Fatalf("verdict %d: %v", ret, err)
		}
		total += d
	}
	b.ReportMetric(float64(total.Nanoseconds())/float64(b.N), "ns/segment")
}
