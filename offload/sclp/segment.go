package sclp

import (
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
	return nil
}

// Len returns the number of segments of the current message (0 after a failed Reset).
func (s *Segmenter) Len() int {
	if s.msg == nil && s.done {
		return 0
	}
	return SegmentCount(len(s.msg), s.mss)
}

// header returns the header and chunk of the next segment and advances.
func (s *Segmenter) advance() (Header, []byte) {
	end := min(s.off+s.mss, len(s.msg))
	h := s.base
	h.First = s.off == 0
	h.Remaining = uint16(len(s.msg) - end)
	h.Checksum = 0
	chunk := s.msg[s.off:end]
	s.off = end
	s.done = end == len(s.msg)
	return h, chunk
}

// Next returns the next segment's header, with its checksum unless NoChecksum is set, and
// its chunk, a sub-slice of the message. ok is false when the message is exhausted.
func (s *Segmenter) Next() (h Header, chunk []byte, ok bool) {
	if s.done {
		return Header{}, nil, false
	}
	h, chunk = s.advance()
	if !s.NoChecksum {
		h.Checksum = SegmentChecksum(h, chunk)
	}
	return h, chunk, true
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
		return 0, fmt.Errorf("segment: %d-byte buffer for a %d-byte segment: %w", len(b), n, ErrShortBuffer)
	}
	h, chunk := s.advance()
	if s.NoChecksum {
		copy(b[HeaderLen:], chunk)
	} else {
		h.Checksum = ^Fold(CopyAndSum(b[HeaderLen:n], chunk, h.sum()))
	}
	h.Put(b)
	return n, nil
}
