package sclp

// sumBlocks sums the little-endian 16-bit words of b (a multiple of 64 bytes, at most
// maxBlocksBytes) with SSE2; see sum_amd64.s.
//
//go:noescape
func sumBlocks(b []byte) uint64

// copySumBlocks copies src (a multiple of 64 bytes, at most maxBlocksBytes) into dst (at
// least as long) and returns the sum sumBlocks would, in one pass; see sum_amd64.s.
//
//go:noescape
func copySumBlocks(dst, src []byte) uint64
