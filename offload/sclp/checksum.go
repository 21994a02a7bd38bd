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
// The sum runs over little-endian words in independent accumulators, 64 bytes per
// iteration, without a carry chain: on amd64 SSE2 adds 16-bit words into 32-bit lanes
// (sum_amd64.s), elsewhere Go adds 32-bit words into four 64-bit accumulators (2^16 and 2^32
// are 1 modulo 0xFFFF, so wider sums stay congruent). The one's-complement sum is byte-order
// independent up to a final byte swap (RFC 1071 section 2).
func Sum(b []byte, initial uint64) uint64 {
	return addSums(initial, uint64(bits.ReverseBytes16(foldLE(sumLE(b)))))
}

// maxBlocksBytes bounds one sumBlocks call so that its 32-bit lanes cannot overflow (each
// lane gains at most 2 * 0xFFFF per 64-byte block).
const maxBlocksBytes = 1 << 20

// sumLE returns a value congruent modulo 0xFFFF to the one's-complement sum of b taken as
// little-endian 16-bit words (a trailing odd byte is the low byte of a final word).
func sumLE(b []byte) uint64 {
	var s uint64
	for len(b) >= 64 {
		n := min(len(b), maxBlocksBytes) &^ 63
		s += sumBlocks(b[:n])
		b = b[n:]
	}
	for len(b) >= 8 {
		w := binary.LittleEndian.Uint64(b)
		s += w&0xFFFFFFFF + w>>32
		b = b[8:]
	}
	return s + tailLE(b)
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
// Sum of the copied bytes added to initial, in one pass over the data (on amd64 the SSE2 loop
// of sum_amd64.s stores each 16-byte load as it adds it).
func CopyAndSum(dst, src []byte, initial uint64) uint64 {
	n := min(len(dst), len(src))
	dst, src = dst[:n], src[:n]
	var s uint64
	for len(src) >= 64 {
		m := min(len(src), maxBlocksBytes) &^ 63
		s += copySumBlocks(dst[:m], src[:m])
		dst, src = dst[m:], src[m:]
	}
	copy(dst, src)
	s += sumLE(dst)
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
