package sclp

import (
	"math/rand/v2"
	"testing"
)

// The benchmarks report throughput (b.SetBytes) and allocations; BenchmarkCopy64K is the
// memory-speed baseline for the same bytes in the same run. docs/performance.md has the table.

const benchMsg = 65000

func BenchmarkCopy64K(b *testing.B) {
	src := make([]byte, benchMsg)
	dst := make([]byte, benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		copy(dst, src)
	}
}

func BenchmarkChecksum64K(b *testing.B) {
	src := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		_ = Checksum(src)
	}
}

func BenchmarkChecksum1468(b *testing.B) {
	src := randBytes(rand.New(rand.NewPCG(1, 1)), 1468)
	b.SetBytes(1468)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		_ = Checksum(src)
	}
}

// BenchmarkSegment64K cuts a 64 KB message at MSS 1468 into [header|chunk] buffers with the
// fused copy and checksum (what a sender that builds packets does).
func BenchmarkSegment64K(b *testing.B) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	bufs := make([][]byte, SegmentCount(benchMsg, 1468))
	for i := range bufs {
		bufs[i] = make([]byte, 1480)
	}
	var s Segmenter
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		_ = s.Reset(msg, 1468, Header{SrcPort: 50000, DstPort: VXLANPort, ID: 2})
		for i := 0; ; i++ {
			if _, err := s.NextInto(bufs[i%len(bufs)]); err != nil {
				break
			}
		}
	}
}

// BenchmarkSegmentHeaders64K iterates headers with checksums over sub-slices (iovec senders).
func BenchmarkSegmentHeaders64K(b *testing.B) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	var s Segmenter
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		_ = s.Reset(msg, 1468, Header{SrcPort: 50000, DstPort: VXLANPort, ID: 2})
		for {
			if _, _, ok := s.Next(); !ok {
				break
			}
		}
	}
}

// benchReassemble feeds the segments of one 64 KB message per iteration, in the given order.
func benchReassemble(b *testing.B, order func(n int) []int) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	pieces := segmentPieces(b, testKey(1, 2), msg, 1468)
	idx := order(len(pieces))
	r := newTestReassembler(b, Config{})
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	id := uint32(0)
	now := t0
	for b.Loop() {
		id += 2
		for _, i := range idx {
			p := &pieces[i]
			p.Key.ID = id
			m, res := r.AddPiece(now, p)
			if res.Status == Completed {
				r.Release(m)
			} else if res.Status == Dropped {
				b.Fatalf("dropped: %v", res.Reason)
			}
		}
	}
	if s := r.Stats(); s.BufferedEntries != 0 {
		b.Fatalf("left %d partial", s.BufferedEntries)
	}
}

func BenchmarkReassemble64KInOrder(b *testing.B) {
	benchReassemble(b, func(n int) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = i
		}
		return idx
	})
}

func BenchmarkReassemble64KReordered(b *testing.B) {
	benchReassemble(b, func(n int) []int {
		return rand.New(rand.NewPCG(2, 2)).Perm(n)
	})
}

func BenchmarkReassemble64KReversed(b *testing.B) {
	benchReassemble(b, func(n int) []int {
		idx := make([]int, n)
		for i := range idx {
			idx[i] = n - 1 - i
		}
		return idx
	})
}

// BenchmarkCopySegments64K is the reassembly floor: copy()ing the 1468-byte segment payloads
// of a 64 KB message, held in separate buffers, into one message buffer.
func BenchmarkCopySegments64K(b *testing.B) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	pieces := segmentPieces(b, testKey(1, 2), msg, 1468)
	dst := make([]byte, benchMsg)
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	for b.Loop() {
		off := 0
		for _, p := range pieces {
			off += copy(dst[off:], p.Payload)
		}
	}
}

// BenchmarkReassemble64KInOrderByValue is the in-order case through the contract's
// Add(now, Piece), which copies the 104-byte piece per call.
func BenchmarkReassemble64KInOrderByValue(b *testing.B) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), benchMsg)
	pieces := segmentPieces(b, testKey(1, 2), msg, 1468)
	r := newTestReassembler(b, Config{})
	b.SetBytes(benchMsg)
	b.ReportAllocs()
	defer cpuMetric(b)()
	id := uint32(0)
	for b.Loop() {
		id += 2
		for _, p := range pieces {
			p.Key.ID = id
			if m, res := r.Add(t0, p); res.Status == Completed {
				r.Release(m)
			}
		}
	}
}
