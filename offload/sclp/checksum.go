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
// The loop adds little-endian 32-bit words into four independent 64-bit accumulators, 64
// bytes per iteration (no carry chain, so the adds run in parallel; 2^32 = 1 modulo 0xFFFF
// makes the 32-bit sums congruent to the 16-bit ones). The one's-complement sum is byte-order
// independent up to a final byte swap (RFC 1071 section 2).
func Sum(b []byte, initial uint64) uint64 {
	return addSums(initial, uint64(bits.ReverseBytes16(foldLE(sumLE(b)))))
}

// sumLE returns a value congruent modulo 0xFFFF to the one's-complement sum of b taken as
// little-endian 16-bit words (a trailing odd byte is the low byte of a final word). It does
// not overflow for any b shorter than 2^34 bytes.
func sumLE(b []byte) uint64 {
	var a0, a1, a2, a3 uint64
	for len(b) >= 64 {
		_ = b[63]
		a0 += uint64(binary.LittleEndian.Uint32(b[0:]))
		a1 += uint64(binary.LittleEndian.Uint32(b[4:]))
		a2 += uint64(binary.LittleEndian.Uint32(b[8:]))
		a3 += uint64(binary.LittleEndian.Uint32(b[12:]))
		a0 += uint64(binary.LittleEndian.Uint32(b[16:]))
		a1 += uint64(binary.LittleEndian.Uint32(b[20:]))
		a2 += uint64(binary.LittleEndian.Uint32(b[24:]))
		a3 += uint64(binary.LittleEndian.Uint32(b[28:]))
		a0 += uint64(binary.LittleEndian.Uint32(b[32:]))
		a1 += uint64(binary.LittleEndian.Uint32(b[36:]))
		a2 += uint64(binary.LittleEndian.Uint32(b[40:]))
		a3 += uint64(binary.LittleEndian.Uint32(b[44:]))
		a0 += uint64(binary.LittleEndian.Uint32(b[48:]))
		a1 += uint64(binary.LittleEndian.Uint32(b[52:]))
		a2 += uint64(binary.LittleEndian.Uint32(b[56:]))
		a3 += uint64(binary.LittleEndian.Uint32(b[60:]))
		b = b[64:]
	}
	for len(b) >= 4 {
		a0 += uint64(binary.LittleEndian.Uint32(b))
		b = b[4:]
	}
	return a0 + a1 + a2 + a3 + tailLE(b)
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

// copyBlock is the block size of CopyAndSum: small enough that a copied block is still in
// the L1 cache when it is summed.
const copyBlock = 2048

// CopyAndSum copies src into dst (as copy does: min(len(dst), len(src)) bytes) and returns
// Sum of the copied bytes added to initial. It works block by block: the runtime's vectorised
// memmove copies a block and the sum reads it back while it is in the L1 cache, which
// measured faster than a fused scalar load/store/add loop.
func CopyAndSum(dst, src []byte, initial uint64) uint64 {
	n := min(len(dst), len(src))
	dst = dst[:n]
	var s uint64
	for len(dst) > copyBlock {
		copy(dst[:copyBlock], src)
		s += sumLE(dst[:copyBlock])
		dst, src = dst[copyBlock:], src[copyBlock:]
	}
	copy(dst, src)
	s = addSums(s, sumLE(dst))
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
