package sclp

import (
	"encoding/binary"
	"fmt"
	"io"
)

// MinMSS is the smallest MSS the Segmenter accepts. It keeps every remaining count of a
// MaxMessageLen message within 16 bits (MaxMessageLen - MinMSS <= MaxRemaining).
const MinMSS = MaxMessageLen - MaxRemaining

// SegmentCount returns the number of segments a message of msgLen bytes needs at the given
// MSS: 1 for msgLen <= mss (an empty message is one segment too), else ceil(msgLen/mss). It
// returns 0 if mss < 1 or msgLen < 0.
func SegmentCount(msgLen, mss int) int {
	if mss < 1 || msgLen < 0 {
		return 0
	}
	if msgLen <= mss {
		return 1
	}
	return (msgLen + mss - 1) / mss
}

// Segmenter iterates over the segments of one message without allocating. Reset starts a
// message; Next returns each segment as a header (checksum filled in) and a sub-slice of the
// message, for senders that pass [header|chunk] as an iovec; NextInto instead writes
// [header|chunk] into a caller's buffer with a fused copy and checksum.
//
// Segment k (1-based) of a message of P bytes carries bytes [(k-1)*MSS, min(k*MSS, P)),
// remaining = max(0, P-k*MSS), F on k = 1 only, and the identification of the base header.
// The zero value is an exhausted segmenter; it is not safe for concurrent use.
type Segmenter struct {
	// NoChecksum makes Next and NextInto leave the checksum field zero, as SCLP inside UDP
	// sends it. Set it before Reset.
	NoChecksum bool

	msg  []byte
	mss  int
	base Header
	sum  uint64 // partial sum of the base header fields that every segment shares
	off  int
	done bool
}

// Reset starts segmenting msg at the given MSS with the ports and identification of base
// (its First, Remaining and Checksum fields are ignored). It returns ErrTooLarge if msg is
// longer than MaxMessageLen or its remaining count would not fit 16 bits, and ErrBadMSS if
// mss < MinMSS; then the segmenter yields nothing.
func (s *Segmenter) Reset(msg []byte, mss int, base Header) error {
	s.msg, s.off, s.done = nil, 0, true
	switch {
	case mss < MinMSS:
		return fmt.Errorf("segment: mss %d below %d: %w", mss, MinMSS, ErrBadMSS)
	case len(msg) > MaxMessageLen || len(msg)-mss > MaxRemaining:
		return fmt.Errorf("segment: %d bytes at mss %d: %w", len(msg), mss, ErrTooLarge)
	}
	s.msg, s.mss, s.base, s.done = msg, mss, base, false
	s.base.First, s.base.Remaining, s.base.Checksum = false, 0, 0
	s.sum = s.base.sum()
	return nil
}

// Len returns the number of segments of the current message (0 after a failed Reset).
func (s *Segmenter) Len() int {
	if s.msg == nil && s.done {
		return 0
	}
	return SegmentCount(len(s.msg), s.mss)
}

// advance moves past the next segment and returns its chunk, its remaining count, whether it
// is the first, and the partial sum of its header (checksum field zero). It returns scalars,
// not a Header: a Header has too many fields to live in registers, and patching one in
// memory costs store-forwarding stalls on every segment.
func (s *Segmenter) advance() (chunk []byte, rem uint16, first bool, sum uint64) {
	off := s.off
	end := min(off+s.mss, len(s.msg))
	rem = uint16(len(s.msg) - end)
	first = off == 0
	sum = s.sum + uint64(rem)
	if first {
		sum++
	}
	s.off = end
	s.done = end == len(s.msg)
	return s.msg[off:end], rem, first, sum
}

// Next returns the next segment's header, with its checksum unless NoChecksum is set, and
// its chunk, a sub-slice of the message. ok is false when the message is exhausted.
func (s *Segmenter) Next() (h Header, chunk []byte, ok bool) {
	if s.done {
		return Header{}, nil, false
	}
	chunk, rem, first, sum := s.advance()
	var c uint16
	if !s.NoChecksum {
		c = ^Fold(Sum(chunk, sum))
	}
	return Header{SrcPort: s.base.SrcPort, DstPort: s.base.DstPort, ID: s.base.ID, First: first, Remaining: rem, Checksum: c}, chunk, true
}

// NextInto writes the next segment, header then chunk, into b and returns its length,
// copying and checksumming the chunk in one pass. It returns io.EOF when the message is
// exhausted and ErrShortBuffer (without advancing) if b cannot hold the segment.
func (s *Segmenter) NextInto(b []byte) (int, error) {
	if s.done {
		return 0, io.EOF
	}
	n := HeaderLen + min(s.mss, len(s.msg)-s.off)
	if len(b) < n {
		return 0, shortBuffer(len(b), n)
	}
	chunk, rem, first, sum := s.advance()
	var c uint16
	if s.NoChecksum {
		copy(b[HeaderLen:n], chunk)
	} else {
		c = ^Fold(CopyAndSum(b[HeaderLen:n], chunk, sum))
	}
	w := s.base.ID &^ 1
	if first {
		w |= 1
	}
	binary.BigEndian.PutUint16(b[0:], s.base.SrcPort)
	binary.BigEndian.PutUint16(b[2:], s.base.DstPort)
	binary.BigEndian.PutUint32(b[4:], w)
	binary.BigEndian.PutUint16(b[8:], rem)
	binary.BigEndian.PutUint16(b[10:], c)
	return n, nil
}

// shortBuffer builds NextInto's error out of line, keeping the hot path small.
//
//go:noinline
func shortBuffer(have, need int) error {
	return fmt.Errorf("segment: %d-byte buffer for a %d-byte segment: %w", have, need, ErrShortBuffer)
}
