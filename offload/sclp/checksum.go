package sclp

import (
	"encoding/binary"
	"math/bits"
)

// Sum returns the one's-complement sum (RFC 1071) of b added to initial, unfolded: the result
// is congruent modulo 0xFFFF to the sum of b's big-endian 16-bit words plus initial. A trailing
// odd byte counts as the high byte of a final word, so when a buffer is summed in pieces every
// piece but the last must have an even length. Fold reduces the result to 16 bits.
//
// The loop loads 64-bit little-endian words and adds them with carry, 32 bytes per iteration;
// the one's-complement sum is byte-order independent up to a final byte swap.
func Sum(b []byte, initial uint64) uint64 {
	return addSums(initial, uint64(bits.ReverseBytes16(foldLE(sumLE(b)))))
}

// sumLE returns the one's-complement sum of b taken as little-endian 64-bit words (a trailing
// odd byte is the low byte of a final 16-bit word).
func sumLE(b []byte) uint64 {
	var s, c uint64
	for len(b) >= 32 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[0:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[8:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[16:]), c)
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b[24:]), c)
		b = b[32:]
	}
	for len(b) >= 8 {
		s, c = bits.Add64(s, binary.LittleEndian.Uint64(b), c)
		b = b[8:]
	}
	s, c = bits.Add64(s, tailLE(b), c)
	return s + c // s + c cannot overflow: when c is 1, s is at most 2^64 - 2
}

// tailLE returns the last 0..7 bytes of a buffer as a little-endian word.
func tailLE(b []byte) uint64 {
	var t uint64
	for i, x := range b {
		t |= uint64(x) << (8 * uint(i&7))
	}
	return t
}

// foldLE folds a 64-bit one's-complement sum to 16 bits.
func foldLE(s uint64) uint16 {
	s = (s >> 32) + (s & 0xFFFFFFFF)
	s = (s >> 32) + (s & 0xFFFFFFFF)
	s = (s >> 16) + (s & 0xFFFF)
	s = (s >> 16) + (s & 0xFFFF)
	s = (s >> 16) + (s & 0xFFFF)
	return uint16(s)
}

// addSums adds two partial sums with end-around carry.
func addSums(a, b uint64) uint64 {
	s, c := bits.Add64(a, b, 0)
	return s + c
}

// CopyAndSum copies src into dst (as copy does: min(len(dst), len(src)) bytes) and returns
// Sum of the copied bytes added to initial. Copy and sum happen in one pass over the data.
func CopyAndSum(dst, src []byte, initial uint64) uint64 {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	var s, c uint64
	for len(src) >= 32 && len(dst) >= 32 {
		w0 := binary.LittleEndian.Uint64(src[0:])
		w1 := binary.LittleEndian.Uint64(src[8:])
		w2 := binary.LittleEndian.Uint64(src[16:])
		w3 := binary.LittleEndian.Uint64(src[24:])
		binary.LittleEndian.PutUint64(dst[0:], w0)
		binary.LittleEndian.PutUint64(dst[8:], w1)
		binary.LittleEndian.PutUint64(dst[16:], w2)
		binary.LittleEndian.PutUint64(dst[24:], w3)
		s, c = bits.Add64(s, w0, c)
		s, c = bits.Add64(s, w1, c)
		s, c = bits.Add64(s, w2, c)
		s, c = bits.Add64(s, w3, c)
		src, dst = src[32:], dst[32:]
	}
	copy(dst, src)
	s, c = bits.Add64(s, sumLE(src), c)
	s += c
	return addSums(initial, uint64(bits.ReverseBytes16(foldLE(s))))
}

// Fold reduces a partial sum from Sum to 16 bits. The result is the folded one's-complement
// sum, NOT its complement: a packet verifies when Fold of the sum over it (stored checksum
// included) is 0xFFFF.
func Fold(sum uint64) uint16 {
	return foldLE(sum)
}

// Checksum returns the RFC 1071 Internet checksum of b: ^Fold(Sum(b, 0)).
func Checksum(b []byte) uint16 {
	return ^Fold(Sum(b, 0))
}

// SegmentChecksum returns the SCLP checksum of a segment with header h (its Checksum field is
// ignored and taken as zero) and payload chunk.
func SegmentChecksum(h Header, chunk []byte) uint16 {
	return ^Fold(Sum(chunk, h.sum()))
}

// VerifySegment reports whether h.Checksum is the correct SCLP checksum of h and chunk.
func VerifySegment(h Header, chunk []byte) bool {
	return Fold(Sum(chunk, addSums(h.sum(), uint64(h.Checksum)))) == 0xFFFF
}
