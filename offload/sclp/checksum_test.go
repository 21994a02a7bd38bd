package sclp

import (
	"bytes"
	"math/rand/v2"
	"testing"
)

func TestSumMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 300; n++ {
		b := randBytes(rng, n)
		if got, want := Fold(Sum(b, 0)), uint16(refSum(b)); got != want {
			t.Fatalf("len %d: Fold(Sum) %#04x, want %#04x", n, got, want)
		}
		dst := make([]byte, n)
		if got, want := Fold(CopyAndSum(dst, b, 0)), uint16(refSum(b)); got != want || !bytes.Equal(dst, b) {
			t.Fatalf("len %d: CopyAndSum %#04x, want %#04x (copy ok %v)", n, got, want, bytes.Equal(dst, b))
		}
	}
	// Pieces with even lengths chain through initial.
	b := randBytes(rng, 4001)
	s := Sum(b[:1000], 0)
	s = Sum(b[1000:3000], s)
	s = CopyAndSum(make([]byte, 1001), b[3000:], s)
	if Fold(s) != uint16(refSum(b)) {
		t.Fatalf("chained sum %#04x, want %#04x", Fold(s), refSum(b))
	}
	// All-ones data: the sum is 0xFFFF (never folds to 0).
	ff := bytes.Repeat([]byte{0xFF}, 64)
	if Fold(Sum(ff, 0)) != 0xFFFF || Checksum(ff) != 0 {
		t.Fatalf("all ones: %#04x", Fold(Sum(ff, 0)))
	}
	// RFC 1071 section 3 example.
	ex := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if Fold(Sum(ex, 0)) != 0xddf2 {
		t.Fatalf("rfc1071 example %#04x", Fold(Sum(ex, 0)))
	}
}

func TestSegmentChecksumVerifies(t *testing.T) {
	rng := rand.New(rand.NewPCG(3, 4))
	for n := 0; n < 100; n++ {
		chunk := randBytes(rng, n*13)
		h := Header{SrcPort: uint16(rng.Uint32()), DstPort: VXLANPort, ID: rng.Uint32(), First: n%2 == 0, Remaining: uint16(rng.Uint32())}
		h.Checksum = SegmentChecksum(h, chunk)
		pkt, _ := h.AppendBinary(nil)
		pkt = append(pkt, chunk...)
		if Fold(Sum(pkt, 0)) != 0xFFFF || !VerifySegment(h, chunk) {
			t.Fatalf("segment %d does not verify", n)
		}
		pkt[HeaderLen/2] ^= 0x40
		if Fold(Sum(pkt, 0)) == 0xFFFF {
			t.Fatalf("corrupted segment %d verifies", n)
		}
	}
}

func TestChecksumAllocs(t *testing.T) {
	b := make([]byte, 1500)
	d := make([]byte, 1500)
	if n := testing.AllocsPerRun(100, func() { _ = Sum(b, 0); _ = CopyAndSum(d, b, 0) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// TestSumLargeAndUnaligned checks the block loops (SSE2 on amd64) against the reference for
// every alignment, lengths around the 64-byte blocks and beyond maxBlocksBytes, and all-0xFF
// data (the largest lane values).
func TestSumLargeAndUnaligned(t *testing.T) {
	rng := rand.New(rand.NewPCG(21, 22))
	big := randBytes(rng, 3*maxBlocksBytes+77)
	ff := bytes.Repeat([]byte{0xFF}, 2*maxBlocksBytes+130)
	for _, src := range [][]byte{big, ff} {
		for _, n := range []int{63, 64, 65, 127, 128, 1468, 65553, maxBlocksBytes - 1, maxBlocksBytes + 64, len(src) - 16} {
			for off := 0; off < 16; off += 5 {
				b := src[off : off+n]
				want := uint16(refSum(b))
				if got := Fold(Sum(b, 0)); got != want {
					t.Fatalf("len %d off %d: Sum %#04x, want %#04x", n, off, got, want)
				}
				dst := make([]byte, n+3)
				if got := Fold(CopyAndSum(dst[3:], b, 0)); got != want || !bytes.Equal(dst[3:], b) {
					t.Fatalf("len %d off %d: CopyAndSum %#04x, want %#04x", n, off, got, want)
				}
			}
		}
	}
}
