#include "textflag.h"

// func sumBlocks(b []byte) uint64
//
// Sums the little-endian 16-bit words of b, which must hold a multiple of 64 bytes and at
// most maxBlocksBytes, into 32-bit lanes with SSE2 (baseline on amd64), and returns the lane
// total. The result is congruent modulo 0xFFFF to the little-endian one's-complement sum.
TEXT ·sumBlocks(SB), NOSPLIT, $0-32
	MOVQ b_base+0(FP), SI
	MOVQ b_len+8(FP), CX
	PXOR X0, X0
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X15, X15
	SHRQ $6, CX
	JZ   fold

loop:
	MOVOU 0(SI), X4
	MOVOU 16(SI), X5
	MOVOU 32(SI), X6
	MOVOU 48(SI), X7
	MOVO  X4, X8
	MOVO  X5, X9
	MOVO  X6, X10
	MOVO  X7, X11
	PUNPCKLWL X15, X4
	PUNPCKHWL X15, X8
	PUNPCKLWL X15, X5
	PUNPCKHWL X15, X9
	PUNPCKLWL X15, X6
	PUNPCKHWL X15, X10
	PUNPCKLWL X15, X7
	PUNPCKHWL X15, X11
	PADDL X4, X0
	PADDL X8, X1
	PADDL X5, X2
	PADDL X9, X3
	PADDL X6, X0
	PADDL X10, X1
	PADDL X7, X2
	PADDL X11, X3
	ADDQ  $64, SI
	DECQ  CX
	JNZ   loop

fold:
	// Widen the 16 32-bit lanes to 64 bits and add them up.
	MOVO X0, X4
	PUNPCKLLQ X15, X0
	PUNPCKHLQ X15, X4
	PADDQ X4, X0
	MOVO X1, X4
	PUNPCKLLQ X15, X1
	PUNPCKHLQ X15, X4
	PADDQ X4, X1
	MOVO X2, X4
	PUNPCKLLQ X15, X2
	PUNPCKHLQ X15, X4
	PADDQ X4, X2
	MOVO X3, X4
	PUNPCKLLQ X15, X3
	PUNPCKHLQ X15, X4
	PADDQ X4, X3
	PADDQ X1, X0
	PADDQ X3, X2
	PADDQ X2, X0
	MOVQ  X0, AX
	PSRLO $8, X0
	MOVQ  X0, BX
	ADDQ  BX, AX
	MOVQ  AX, ret+24(FP)
	RET

// func copySumBlocks(dst, src []byte) uint64
//
// Copies len(src) bytes (a multiple of 64, at most maxBlocksBytes; dst at least as long) from
// src to dst and returns their sum as sumBlocks does, in one pass.
TEXT ·copySumBlocks(SB), NOSPLIT, $0-56
	MOVQ dst_base+0(FP), DI
	MOVQ src_base+24(FP), SI
	MOVQ src_len+32(FP), CX
	PXOR X0, X0
	PXOR X1, X1
	PXOR X2, X2
	PXOR X3, X3
	PXOR X15, X15
	SHRQ $6, CX
	JZ   cfold

cloop:
	MOVOU 0(SI), X4
	MOVOU 16(SI), X5
	MOVOU 32(SI), X6
	MOVOU 48(SI), X7
	MOVOU X4, 0(DI)
	MOVOU X5, 16(DI)
	MOVOU X6, 32(DI)
	MOVOU X7, 48(DI)
	MOVO  X4, X8
	MOVO  X5, X9
	MOVO  X6, X10
	MOVO  X7, X11
	PUNPCKLWL X15, X4
	PUNPCKHWL X15, X8
	PUNPCKLWL X15, X5
	PUNPCKHWL X15, X9
	PUNPCKLWL X15, X6
	PUNPCKHWL X15, X10
	PUNPCKLWL X15, X7
	PUNPCKHWL X15, X11
	PADDL X4, X0
	PADDL X8, X1
	PADDL X5, X2
	PADDL X9, X3
	PADDL X6, X0
	PADDL X10, X1
	PADDL X7, X2
	PADDL X11, X3
	ADDQ  $64, SI
	ADDQ  $64, DI
	DECQ  CX
	JNZ   cloop

cfold:
	MOVO X0, X4
	PUNPCKLLQ X15, X0
	PUNPCKHLQ X15, X4
	PADDQ X4, X0
	MOVO X1, X4
	PUNPCKLLQ X15, X1
	PUNPCKHLQ X15, X4
	PADDQ X4, X1
	MOVO X2, X4
	PUNPCKLLQ X15, X2
	PUNPCKHLQ X15, X4
	PADDQ X4, X2
	MOVO X3, X4
	PUNPCKLLQ X15, X3
	PUNPCKHLQ X15, X4
	PADDQ X4, X3
	PADDQ X1, X0
	PADDQ X3, X2
	PADDQ X2, X0
	MOVQ  X0, AX
	PSRLO $8, X0
	MOVQ  X0, BX
	ADDQ  BX, AX
	MOVQ  AX, ret+48(FP)
	RET
