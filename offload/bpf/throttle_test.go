package bpf

import (
	"errors"
	"math/rand/v2"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
)

// throttle sets peer's throttled entry to expire d from now (d < 0: already expired).
func throttle(tb testing.TB, o *SclpObjects, d time.Duration) {
	tb.Helper()
	now, err := MonotonicNow()
	if err != nil {
		tb.Fatal(err)
	}
	if err := Throttle(o.Throttled, peerA, now+d); err != nil {
		tb.Fatal(err)
	}
}

// TestRxThrottled: while a peer's throttled entry runs, its first segments of multi-segment
// messages are dropped (rx_throttled) where they would go to the ring buffer, after every
// check (a bad checksum is still counted as one); its single-segment messages still take the
// fast path and later segments of messages still go to the ring. On a jumbo port (merge
// slot) its in-order messages are still merged and delivered by BPF; only a first segment
// that finds the slot busy (and would go up as busy) is throttled, and it leaves no busy mark,
// so the same message sent again later merges; and a lone first segment of the throttled
// peer in the slot (a flood's) yields it to the next first segment. An expired entry
// throttles nothing.
func TestRxThrottled(t *testing.T) {
	o := loadObjectsWith(t, func(s *ebpf.CollectionSpec) error {
		return s.Variables[VarMergeTimeout].Set(uint64(mergeIdle))
	})
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	addRxPortFlags(t, o, peerA, testVNI+1, 78, 9000, RxFlagMerge)
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rand.New(rand.NewPCG(40, 41))
	single := segments(t, peerA, localB, 900, message(testVNI, innerFrame(r, 1000)), 1468)[0]
	multi := segments(t, peerA, localB, 902, message(testVNI, innerFrame(r, 4000)), 1468)
	bad := append([]byte(nil), multi[0]...)
	bad[len(bad)-1] ^= 0xff // a bad checksum: summed (and dropped as such) before the throttle

	throttle(t, o, time.Hour)
	before := stats(t, o)
	for i, p := range [][]byte{multi[0], bad, multi[1], multi[2], single} {
		want := uint32(actShot)
		if i == 4 {
			want = actRedirect
		}
		if ret, _ := run(t, o.SclpRx, p); ret != want {
			t.Fatalf("packet %d: verdict %d, want %d", i, ret, want)
		}
	}
	wire := uint64(len(multi[0]) + len(bad) + len(multi[1]) + len(multi[2]) + len(single))
	onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
		"rx_segments": 5, "rx_bytes": wire, "rx_throttled": 1, "rx_drop_bad_checksum": 1,
		"rx_exc_multi": 2, "rx_fast": 1, "rx_fast_bytes": 1000,
	})
	if recs := readRecords(t, rd, 2); recs[0].Reason != ReasonMultiSegment {
		t.Fatalf("records %+v", recs)
	}

	// Jumbo port: X merges while throttled; Y's first segment finds the slot busy and is
	// throttled instead of going up as busy; Y sent again after X merges too. A lone first
	// segment of the throttled peer (F: a flood's) yields the slot to the next first segment
	// (Z's), so a flood cannot hold the slot for the merge timeout.
	frameX, frameY, frameZ := innerFrame(r, 5000), innerFrame(r, 3000), innerFrame(r, 4000)
	x := segments(t, peerA, localB, 910, message(testVNI+1, frameX), 1468)
	y := segments(t, peerA, localB, 912, message(testVNI+1, frameY), 1468)
	f := segments(t, peerA, localB, 914, message(testVNI+1, innerFrame(r, 5000)), 1468)[0]
	z := segments(t, peerA, localB, 916, message(testVNI+1, frameZ), 1468)
	onOneCPU(t, func() {
		for _, c := range []struct {
			name  string
			pkts  [][]byte
			frame []byte // delivered by the last packet
			exp   map[string]uint64
		}{
			{"X with Y's first segment inside", [][]byte{x[0], x[1], y[0], x[2], x[3]}, frameX,
				map[string]uint64{"rx_merge_segments": 4, "rx_merged": 1, "rx_merged_bytes": 5000, "rx_throttled": 1}},
			{"Y again", y, frameY,
				map[string]uint64{"rx_merge_segments": 3, "rx_merged": 1, "rx_merged_bytes": 3000}},
			{"Z after a lone first segment", append([][]byte{f}, z...), frameZ,
				map[string]uint64{"rx_merge_segments": 1 + uint64(len(z)), "rx_merged": 1, "rx_merged_bytes": 4000, "rx_throttled": 1}},
		} {
			before := stats(t, o)
			wire := 0
			for i, p := range c.pkts {
				wire += len(p)
				ret, out := run(t, o.SclpRx, p)
				if i < len(c.pkts)-1 {
					if ret != actShot {
						t.Fatalf("%s: packet %d: verdict %d", c.name, i, ret)
					}
					continue
				}
				if ret != actRedirect {
					t.Fatalf("%s: last packet: verdict %d; %+v", c.name, ret, stats(t, o).Sub(before))
				}
				equalBytes(t, c.name, out, c.frame)
			}
			c.exp["rx_segments"], c.exp["rx_bytes"] = uint64(len(c.pkts)), uint64(wire)
			onlyCounter(t, stats(t, o).Sub(before), c.exp)
			if t.Failed() {
				t.FailNow()
			}
		}
	})
	rd.SetDeadline(time.Now().Add(100 * time.Millisecond))
	if rec, err := rd.Read(); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a ring record from the jumbo port: %v %v", rec, err)
	}
	rd.SetDeadline(time.Time{})

	throttle(t, o, -time.Millisecond) // expired
	before = stats(t, o)
	if ret, _ := run(t, o.SclpRx, multi[0]); ret != actShot {
		t.Fatalf("verdict %d", ret)
	}
	onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
		"rx_segments": 1, "rx_bytes": uint64(len(multi[0])), "rx_exc_multi": 1,
	})
	readRecords(t, rd, 1)
}
