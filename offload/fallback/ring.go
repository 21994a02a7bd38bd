package fallback

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Exception record of the BPF rx program (shared contract; host byte order):
//
//	 0               4               8               12              16
//	+---------------+---------------+---------------+---------------+---------------------+
//	|    reason     |    length     |    ifindex    |     flags     | IPv4 packet (length)|
//	+---------------+---------------+---------------+---------------+---------------------+
//
// TODO(bpf): switch to offload/bpf/record.go once the BPF helper lands it; the layout is the
// documented contract and is parsed here meanwhile.
const RecordHeaderLen = 16

// RecordReason says why the rx program handed a packet to userspace.
type RecordReason uint32

// Record reasons.
const (
	ReasonMultiSegment RecordReason = 1 // a segment of a multi-segment message
	ReasonOutOfOrder   RecordReason = 2 // arrived out of order
	ReasonTooLarge     RecordReason = 3 // message too large to rebuild in BPF
	ReasonBuffersFull  RecordReason = 4 // BPF reassembly buffers full
	ReasonMergedRun    RecordReason = 5 // a run merged in BPF (synthetic SCLP header, no checksum)
	NumRecordReasons                = 6
)

// RecordFlagVerified: the SCLP checksum was already verified by BPF.
const RecordFlagVerified = 1

// ErrBadRecord is returned (wrapped) for a record that does not follow the layout.
var ErrBadRecord = errors.New("bad exception record")

// RecordHeader is the 16-byte header of an exception record.
type RecordHeader struct {
	Reason  RecordReason
	Length  uint32
	Ifindex uint32
	Flags   uint32
}

// ParseRecord splits a record into its header and IPv4 packet. Length is checked against the
// record; nothing is copied.
func ParseRecord(b []byte) (RecordHeader, []byte, error) {
	if len(b) < RecordHeaderLen {
		return RecordHeader{}, nil, io.ErrUnexpectedEOF
	}
	h := RecordHeader{
		Reason:  RecordReason(binary.NativeEndian.Uint32(b[0:])),
		Length:  binary.NativeEndian.Uint32(b[4:]),
		Ifindex: binary.NativeEndian.Uint32(b[8:]),
		Flags:   binary.NativeEndian.Uint32(b[12:]),
	}
	if int(h.Length) > len(b)-RecordHeaderLen || h.Reason == 0 || h.Reason >= NumRecordReasons {
		return h, nil, ErrBadRecord
	}
	return h, b[RecordHeaderLen : RecordHeaderLen+int(h.Length)], nil
}

// RingSource is what a RingReader reads; *ringbuf.Reader implements it.
type RingSource interface {
	ReadInto(*ringbuf.Record) error
	SetDeadline(time.Time)
}

// RingStats are a RingReader's counters.
type RingStats struct {
	// Records and Bytes count records read; ByReason by RecordReason.
	Records, Bytes uint64
	ByReason       [NumRecordReasons]uint64
	// BadRecords counts records that failed to parse (layout, IPv4 or SCLP header);
	// BadChecksum those whose SCLP checksum failed in userspace.
	BadRecords, BadChecksum uint64
}

// RingReaderOptions configure a RingReader.
type RingReaderOptions struct {
	// ExpireInterval is how often the worker's partial messages are expired while the ring
	// is idle or busy (default 100 ms).
	ExpireInterval time.Duration
}

// RingReader feeds the rx program's exception records to one Worker. ReadInto copies each
// sample once from the ring into a reused buffer (cilium/ebpf has no zero-copy read); the
// piece handed to the reassembler aliases that buffer, so there is no further copy per
// record besides the reassembler's own placement copy. It allocates nothing per record.
type RingReader struct {
	src      RingSource
	w        *Worker
	interval time.Duration
	rec      ringbuf.Record

	records, bytes, bad, badSum atomic.Uint64
	byReason                    [NumRecordReasons]atomic.Uint64
}

// NewRingReader returns a reader of src feeding w.
func NewRingReader(src RingSource, w *Worker, opts RingReaderOptions) *RingReader {
	if opts.ExpireInterval <= 0 {
		opts.ExpireInterval = 100 * time.Millisecond
	}
	return &RingReader{src: src, w: w, interval: opts.ExpireInterval}
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
	h, pkt, err := ParseRecord(rec)
	if err != nil {
		r.bad.Add(1)
		r.w.Count(sclp.DropShort)
		return
	}
	r.byReason[h.Reason].Add(1)
	verify := h.Flags&RecordFlagVerified == 0 && h.Reason != ReasonMergedRun
	src, dst, sh, payload, err := sclp.ParseIPv4(pkt, verify)
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
	r.w.Handle(now, sclp.Piece{Key: sclp.Key{Src: src, Dst: dst, SrcPort: sh.SrcPort, DstPort: sh.DstPort,
		ID: sh.ID}, First: sh.First, Remaining: int(sh.Remaining), Payload: payload})
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
