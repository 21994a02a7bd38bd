package fallback

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Records are parsed with bpf.ParseRecord (offload/bpf/record.go, the shared contract):
// reason, length, ifindex, flags (bit 0: SCLP checksum verified by BPF), then the IPv4 packet.

// numReasons bounds the per-reason counters (reasons 1-5; anything else counts at 0).
const numReasons = 6

// RingSource is what a RingReader reads; *ringbuf.Reader implements it.
type RingSource interface {
	ReadInto(*ringbuf.Record) error
	SetDeadline(time.Time)
}

// RingStats are a RingReader's counters.
type RingStats struct {
	// Records and Bytes count records read; ByReason by bpf.Reason (index 0: unknown).
	Records, Bytes uint64
	ByReason       [numReasons]uint64
	// BadRecords counts records that failed to parse (layout, IPv4 or SCLP header);
	// BadChecksum those whose SCLP checksum failed in userspace.
	BadRecords, BadChecksum uint64
}

// RingReaderOptions configure a RingReader.
type RingReaderOptions struct {
	// ExpireInterval is how often the worker's partial messages are expired while the ring
	// is idle or busy (default 100 ms).
	ExpireInterval time.Duration
	// OnRefused, if set, is called (on the reader's goroutine) with the source of each first
	// piece of a multi-segment message that the reassembler refused for lack of room for a
	// new partial message (sclp.DropOverLimit): with the credit rules of offload/sclp, a peer
	// at its cap that is not completing messages. offload.Throttler.Refused throttles that
	// peer in BPF (docs/datapath.md, "Throttled peers"). It must not block.
	OnRefused func(src netip.Addr)
}

// RingReader feeds the rx program's exception records to one Worker. ReadInto copies each
// sample once from the ring into a reused buffer (cilium/ebpf has no zero-copy read); the
// piece handed to the reassembler aliases that buffer, so there is no further copy per
// record besides the reassembler's own placement copy. It allocates nothing per record.
type RingReader struct {
	src      RingSource
	w        *Worker
	interval time.Duration
	refused  func(netip.Addr)
	rec      ringbuf.Record

	records, bytes, bad, badSum atomic.Uint64
	byReason                    [numReasons]atomic.Uint64
}

// NewRingReader returns a reader of src feeding w.
func NewRingReader(src RingSource, w *Worker, opts RingReaderOptions) *RingReader {
	if opts.ExpireInterval <= 0 {
		opts.ExpireInterval = 100 * time.Millisecond
	}
	return &RingReader{src: src, w: w, interval: opts.ExpireInterval, refused: opts.OnRefused}
}

// Run reads records until ctx ends or the source is closed (then it returns nil).
func (r *RingReader) Run(ctx context.Context) error {
	next := time.Now().Add(r.interval)
	r.src.SetDeadline(next)
	for ctx.Err() == nil {
		err := r.src.ReadInto(&r.rec)
		now := time.Now()
		if !now.Before(next) {
			r.w.Expire(now)
			next = now.Add(r.interval)
			r.src.SetDeadline(next)
		}
		switch {
		case err == nil:
			r.Handle(now, r.rec.RawSample)
		case errors.Is(err, os.ErrDeadlineExceeded):
		case errors.Is(err, ringbuf.ErrClosed):
			return nil
		default:
			return fmt.Errorf("read ring buffer: %w", err)
		}
	}
	return nil
}

// Handle processes one record (exported for tests and benchmarks).
func (r *RingReader) Handle(now time.Time, rec []byte) {
	r.records.Add(1)
	r.bytes.Add(uint64(len(rec)))
	h, err := bpf.ParseRecord(rec)
	if err != nil {
		r.bad.Add(1)
		r.w.Count(sclp.DropShort)
		return
	}
	if h.Reason < numReasons {
		r.byReason[h.Reason].Add(1)
	} else {
		r.byReason[0].Add(1)
	}
	verify := !h.ChecksumVerified() && h.Reason != bpf.ReasonMergedRun
	src, dst, sh, payload, err := sclp.ParseIPv4(h.Packet, verify)
	if err != nil {
		if errors.Is(err, sclp.ErrChecksum) {
			r.badSum.Add(1)
			r.w.Count(sclp.DropBadChecksum)
			return
		}
		r.bad.Add(1)
		r.w.Count(sclp.DropShort)
		return
	}
	res := r.w.Handle(now, sclp.Piece{Key: sclp.Key{Src: src, Dst: dst, SrcPort: sh.SrcPort, DstPort: sh.DstPort,
		ID: sh.ID}, First: sh.First, Remaining: int(sh.Remaining), Payload: payload})
	if r.refused != nil && sh.First && sh.Remaining > 0 && res.Status == sclp.Dropped && res.Reason == sclp.DropOverLimit {
		r.refused(src)
	}
}

// Stats returns the reader's counters.
func (r *RingReader) Stats() RingStats {
	s := RingStats{Records: r.records.Load(), Bytes: r.bytes.Load(), BadRecords: r.bad.Load(),
		BadChecksum: r.badSum.Load()}
	for i := range s.ByReason {
		s.ByReason[i] = r.byReason[i].Load()
	}
	return s
}
