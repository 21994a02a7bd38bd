//go:build !amd64

package sclp

import "encoding/binary"

// sumBlocks sums the little-endian 32-bit words of b (a multiple of 64 bytes) into four
// independent accumulators; the result is congruent modulo 0xFFFF to the little-endian
// one's-complement sum.
func sumBlocks(b []byte) uint64 {
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
	return a0 + a1 + a2 + a3
}

// copySumBlocks copies src (a multiple of 64 bytes) into dst and returns sumBlocks(src).
func copySumBlocks(dst, src []byte) uint64 {
	copy(dst, src)
	return sumBlocks(dst[:len(src)])
}
