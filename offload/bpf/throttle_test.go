package bpf

import (
	"math/rand/v2"
	"testing"
	"time"

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
// messages are dropped (rx_throttled) before the checksum and the ring; its single-segment
// messages still take the fast path and later segments of messages still go to the ring.
// An expired entry throttles nothing.
func TestRxThrottled(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rand.New(rand.NewPCG(40, 41))
	single := segments(t, peerA, localB, 900, message(testVNI, innerFrame(r, 1000)), 1468)[0]
	multi := segments(t, peerA, localB, 902, message(testVNI, innerFrame(r, 4000)), 1468)
	bad := append([]byte(nil), multi[0]...)
	bad[len(bad)-1] ^= 0xff // a bad checksum: a throttled first segment is not even summed

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
		"rx_segments": 5, "rx_bytes": wire, "rx_throttled": 2, "rx_exc_multi": 2,
		"rx_fast": 1, "rx_fast_bytes": 1000,
	})
	if recs := readRecords(t, rd, 2); recs[0].Reason != ReasonMultiSegment {
		t.Fatalf("records %+v", recs)
	}

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
