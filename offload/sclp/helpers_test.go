package sclp

import (
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// refChecksum is a plain RFC 1071 implementation, 16 bits at a time, used as the oracle.
func refSum(b []byte) uint32 {
	var s uint64
	for len(b) >= 2 {
		s += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint64(b[0]) << 8
	}
	for s>>16 != 0 {
		s = s&0xFFFF + s>>16
	}
	return uint32(s)
}

// randBytes returns n pseudo-random bytes from rng.
func randBytes(rng *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// testKey returns a key from peer number src with the given id.
func testKey(src byte, id uint32) Key {
	return Key{
		Src: netip.AddrFrom4([4]byte{10, 0, 0, src}), Dst: netip.AddrFrom4([4]byte{10, 0, 0, 200}),
		SrcPort: 50000, DstPort: VXLANPort, ID: id &^ 1,
	}
}

// segmentPieces cuts msg at mss into pieces of key k (payloads are copies).
func segmentPieces(tb testing.TB, k Key, msg []byte, mss int) []Piece {
	tb.Helper()
	var s Segmenter
	if err := s.Reset(msg, mss, Header{SrcPort: k.SrcPort, DstPort: k.DstPort, ID: k.ID}); err != nil {
		tb.Fatalf("reset: %v", err)
	}
	var out []Piece
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return out
		}
		if !VerifySegment(h, chunk) {
			tb.Fatalf("segment %d does not verify", len(out))
		}
		out = append(out, Piece{Key: k, First: h.First, Remaining: int(h.Remaining), Payload: append([]byte(nil), chunk...)})
	}
}

// newTestReassembler returns a reassembler with cfg or fails the test.
func newTestReassembler(tb testing.TB, cfg Config) *Reassembler {
	tb.Helper()
	r, err := NewReassembler(cfg)
	if err != nil {
		tb.Fatalf("new reassembler: %v", err)
	}
	return r
}
