package bpf

import (
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// onOneCPU runs fn on a thread pinned to CPU 0: the merge slot is per CPU, so every
// BPF_PROG_TEST_RUN of one test must run on the same CPU.
func onOneCPU(t *testing.T, fn func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		runtime.LockOSThread()
		defer runtime.UnlockOSThread()
		var set unix.CPUSet
		set.Set(0)
		if err := unix.SchedSetaffinity(0, &set); err != nil {
			t.Error(err)
			return
		}
		fn()
	}()
	<-done
}

// mergeIdle is the merge slot idle timeout the tests load (the default 20 ms is too close to
// scheduling noise on a loaded test machine).
const mergeIdle = 300 * time.Millisecond

func mergeBed(t *testing.T) (*SclpObjects, *ringbuf.Reader) {
	o := loadObjectsWith(t, func(s *ebpf.CollectionSpec) error {
		return s.Variables[VarMergeTimeout].Set(uint64(mergeIdle))
	})
	addRxPortFlags(t, o, peerA, testVNI, 77, 9000, RxFlagMerge)
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rd.Close() })
	return o, rd
}

func TestRxMergeInOrder(t *testing.T) {
	o, _ := mergeBed(t)
	r := rand.New(rand.NewPCG(20, 21))
	for _, n := range []int{1461, 3000, 5000, 9018} { // up to port MTU 9000 + 18
		frame := innerFrame(r, n)
		segs := segments(t, peerA, localB, uint32(n)*2, message(testVNI, frame), 1468)
		onOneCPU(t, func() {
			before := stats(t, o)
			for i, s := range segs {
				ret, out := run(t, o.SclpRx, s)
				if i < len(segs)-1 {
					if ret != actShot {
						t.Fatalf("frame %d segment %d: verdict %d", n, i, ret)
					}
					continue
				}
				if ret != actRedirect {
					t.Fatalf("frame %d last segment: verdict %d; %+v", n, ret, stats(t, o).Sub(before))
				}
				equalBytes(t, "merged frame", out, frame)
			}
			wire := 0
			for _, s := range segs {
				wire += len(s)
			}
			onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
				"rx_segments": uint64(len(segs)), "rx_bytes": uint64(wire), "rx_merge_segments": uint64(len(segs)),
				"rx_merged": 1, "rx_merged_bytes": uint64(n),
			})
		})
	}
}

// feed parses ring records into pieces and returns the message the Go reassembler completes.
func feed(t *testing.T, rd *ringbuf.Reader, n int, want map[Reason]int) []byte {
	t.Helper()
	ra, err := sclp.NewReassembler(sclp.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var msg []byte
	got := map[Reason]int{}
	for _, rec := range readRecords(t, rd, n) {
		got[rec.Reason]++
		p, err := sclp.ParsePacket(rec.Packet, sclp.ParseOptions{Verify: rec.ChecksumVerified()})
		if err != nil {
			t.Fatalf("record %v: %v", rec.Reason, err)
		}
		m, res := ra.Add(time.Now(), p.Piece())
		if res.Status == sclp.Completed {
			msg = append([]byte(nil), m.Payload...)
			ra.Release(m)
		}
	}
	for r, c := range want {
		if got[r] != c {
			t.Fatalf("records by reason %v, want %v", got, want)
		}
	}
	return msg
}

func TestRxMergeOutOfOrderFlushes(t *testing.T) {
	o, rd := mergeBed(t)
	frame := innerFrame(rand.New(rand.NewPCG(22, 23)), 5000)
	msg := message(testVNI, frame)
	segs := segments(t, peerA, localB, 500, msg, 1468) // 4 segments
	onOneCPU(t, func() {
		before := stats(t, o)
		for _, i := range []int{0, 2, 1, 3} {
			if ret, _ := run(t, o.SclpRx, segs[i]); ret != actShot {
				t.Fatalf("segment %d: verdict %d", i, ret)
			}
		}
		d := stats(t, o).Sub(before)
		if d.RxMergeSegments != 1 || d.RxExcMergedRun != 1 || d.RxExcOutOfOrder != 1 || d.RxExcMulti != 2 || d.RxMerged != 0 {
			t.Fatalf("counters %+v", d)
		}
	})
	got := feed(t, rd, 4, map[Reason]int{ReasonMergedRun: 1, ReasonOutOfOrder: 1, ReasonMultiSegment: 2})
	equalBytes(t, "message completed in userspace", got, msg)
}

func TestRxMergeBusyAndTimeout(t *testing.T) {
	o, rd := mergeBed(t)
	r := rand.New(rand.NewPCG(24, 25))
	a := segments(t, peerA, localB, 600, message(testVNI, innerFrame(r, 3000)), 1468)
	bmsg := message(testVNI, innerFrame(r, 3000))
	b := segments(t, peerA, localB, 602, bmsg, 1468)
	onOneCPU(t, func() {
		before := stats(t, o)
		run(t, o.SclpRx, a[0]) // A takes the slot
		run(t, o.SclpRx, b[0]) // busy: B's first segment goes to the ring (reason 4)
		time.Sleep(mergeIdle + 50*time.Millisecond)
		c := segments(t, peerA, localB, 604, message(testVNI, innerFrame(r, 3000)), 1468)
		run(t, o.SclpRx, c[0]) // A idle past the timeout: flushed as a merged run, C takes the slot
		run(t, o.SclpRx, b[1]) // not the slot's message: reason 1
		run(t, o.SclpRx, b[2])
		d := stats(t, o).Sub(before)
		if d.RxExcBusy != 1 || d.RxExcMergedRun != 1 || d.RxMergeSegments != 2 || d.RxExcMulti != 2 {
			t.Fatalf("counters %+v", d)
		}
	})
	// Records: B0 (busy), A's run, B1, B2. B completes in userspace; A's run stays partial.
	got := feed(t, rd, 4, map[Reason]int{ReasonBuffersFull: 1, ReasonMergedRun: 1, ReasonMultiSegment: 2})
	equalBytes(t, "B completed in userspace", got, bmsg)
}

// TestRxMergeIdleSlotFlushedByAnySegment: a slot whose message lost its next segment is
// flushed to userspace by whatever segment arrives on the CPU after the idle timeout.
func TestRxMergeIdleSlotFlushedByAnySegment(t *testing.T) {
	o, rd := mergeBed(t)
	r := rand.New(rand.NewPCG(26, 27))
	a := segments(t, peerA, localB, 700, message(testVNI, innerFrame(r, 3000)), 1468)
	b := segments(t, peerA, localB, 702, message(testVNI, innerFrame(r, 3000)), 1468)
	onOneCPU(t, func() {
		before := stats(t, o)
		run(t, o.SclpRx, a[0])
		time.Sleep(mergeIdle + 50*time.Millisecond)
		run(t, o.SclpRx, b[1])
		d := stats(t, o).Sub(before)
		if d.RxExcMergedRun != 1 || d.RxExcMulti != 1 || d.RxMergeSegments != 1 {
			t.Fatalf("counters %+v", d)
		}
	})
	feed(t, rd, 2, map[Reason]int{ReasonMergedRun: 1, ReasonMultiSegment: 1})
}

// TestRxMergeDuplicates: a segment whose bytes the merge slot holds, delivered or handed to
// userspace is dropped and counted as a duplicate, never sent up: a run the slot flushes
// later can then never cover a piece the reassembler already holds (which it would drop as
// an overlap, losing the message). Each case ends with the message complete, in BPF or in
// the Go reassembler fed the ring records.
func TestRxMergeDuplicates(t *testing.T) {
	r := rand.New(rand.NewPCG(28, 29))
	t.Run("first duplicated, then reordered", func(t *testing.T) {
		o, rd := mergeBed(t)
		msg := message(testVNI, innerFrame(r, 7992))
		segs := segments(t, peerA, localB, 800, msg, 1468) // 6 segments
		onOneCPU(t, func() {
			before := stats(t, o)
			// The duplicate first segment while the slot holds the original, the held-back
			// third after the fourth, and the first again after the flush.
			for _, i := range []int{0, 0, 1, 3, 2, 0, 4, 5} {
				if ret, _ := run(t, o.SclpRx, segs[i]); ret != actShot {
					t.Fatalf("segment %d: verdict %d", i, ret)
				}
			}
			d := stats(t, o).Sub(before)
			if d.RxDuplicate != 2 || d.RxMergeSegments != 2 || d.RxExcMergedRun != 1 || d.RxExcOutOfOrder != 1 || d.RxExcMulti != 3 || d.RxExcBusy != 0 {
				t.Fatalf("counters %+v", d)
			}
		})
		got := feed(t, rd, 5, map[Reason]int{ReasonMergedRun: 1, ReasonOutOfOrder: 1, ReasonMultiSegment: 3})
		equalBytes(t, "message completed in userspace", got, msg)
	})
	t.Run("held and delivered segments duplicated", func(t *testing.T) {
		o, _ := mergeBed(t)
		frame := innerFrame(r, 5000)
		segs := segments(t, peerA, localB, 802, message(testVNI, frame), 1468) // 4 segments
		onOneCPU(t, func() {
			before := stats(t, o)
			for _, i := range []int{0, 1, 1, 0, 2, 3, 3, 1, 0} {
				ret, out := run(t, o.SclpRx, segs[i])
				if ret == actRedirect {
					equalBytes(t, "merged frame", out, frame)
				}
			}
			d := stats(t, o).Sub(before)
			if d.RxDuplicate != 5 || d.RxMergeSegments != 4 || d.RxMerged != 1 || d.RxExcMulti+d.RxExcOutOfOrder+d.RxExcBusy+d.RxExcMergedRun != 0 {
				t.Fatalf("counters %+v", d)
			}
		})
	})
	t.Run("busy first duplicated after the slot frees", func(t *testing.T) {
		o, rd := mergeBed(t)
		a := segments(t, peerA, localB, 804, message(testVNI, innerFrame(r, 3000)), 1468)
		bmsg := message(testVNI, innerFrame(r, 3000))
		b := segments(t, peerA, localB, 806, bmsg, 1468)
		onOneCPU(t, func() {
			before := stats(t, o)
			run(t, o.SclpRx, a[0])
			run(t, o.SclpRx, b[0]) // busy: to userspace
			run(t, o.SclpRx, a[1])
			if ret, _ := run(t, o.SclpRx, a[2]); ret != actRedirect {
				t.Fatalf("A not delivered: %d", ret)
			}
			run(t, o.SclpRx, b[0]) // duplicate of what userspace holds: must not take the slot
			run(t, o.SclpRx, b[1])
			run(t, o.SclpRx, b[2])
			d := stats(t, o).Sub(before)
			if d.RxDuplicate != 1 || d.RxExcBusy != 1 || d.RxMerged != 1 || d.RxExcMulti != 2 || d.RxExcMergedRun != 0 {
				t.Fatalf("counters %+v", d)
			}
		})
		got := feed(t, rd, 3, map[Reason]int{ReasonBuffersFull: 1, ReasonMultiSegment: 2})
		equalBytes(t, "B completed in userspace", got, bmsg)
	})
}
