package sclp

import (
	"bytes"
	"errors"
	"io"
	"math/rand/v2"
	"testing"
)

// TestPaperExample is the worked example of the paper (section 4): a 3000-byte message at MSS
// 1468 is cut into 1468/1468/64 bytes with remaining 1532/64/0, F on the first only.
func TestPaperExample(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 6))
	msg := randBytes(rng, 3000)
	base := Header{SrcPort: 0xC123, DstPort: VXLANPort, ID: 0x1234567A}
	var s Segmenter
	if err := s.Reset(msg, 1500-IPv4Overhead, base); err != nil {
		t.Fatal(err)
	}
	if s.Len() != 3 || SegmentCount(3000, 1468) != 3 {
		t.Fatalf("segment count %d", s.Len())
	}
	wantLen := []int{1468, 1468, 64}
	wantRem := []uint16{1532, 64, 0}
	buf := make([]byte, 1500)
	var joined []byte
	for k := 0; k < 3; k++ {
		n, err := s.NextInto(buf)
		if err != nil {
			t.Fatal(err)
		}
		seg := buf[:n]
		if n != HeaderLen+wantLen[k] {
			t.Fatalf("segment %d: %d bytes", k+1, n)
		}
		word := []byte{0x12, 0x34, 0x56, 0x7A}
		if k == 0 {
			word[3] = 0x7B
		}
		wantHdr := []byte{0xC1, 0x23, 0x12, 0xB5, word[0], word[1], word[2], word[3], byte(wantRem[k] >> 8), byte(wantRem[k])}
		if !bytes.Equal(seg[:10], wantHdr) {
			t.Fatalf("segment %d header %x, want %x", k+1, seg[:10], wantHdr)
		}
		if Fold(Sum(seg, 0)) != 0xFFFF {
			t.Fatalf("segment %d checksum does not verify", k+1)
		}
		// The checksum is exactly RFC 1071 over header (field zero) and chunk.
		z := append([]byte(nil), seg...)
		z[10], z[11] = 0, 0
		c := ^uint16(refSum(z))
		if seg[10] != byte(c>>8) || seg[11] != byte(c) {
			t.Fatalf("segment %d checksum %x, want %#04x", k+1, seg[10:12], c)
		}
		joined = append(joined, seg[HeaderLen:]...)
	}
	if _, err := s.NextInto(buf); err != io.EOF {
		t.Fatalf("after last: %v", err)
	}
	if !bytes.Equal(joined, msg) {
		t.Fatal("segments do not join to the message")
	}
}

func TestSegmenterNextMatchesNextInto(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 8))
	for _, size := range []int{0, 1, 1467, 1468, 1469, 2936, 2937, 65535, MaxMessageLen} {
		msg := randBytes(rng, size)
		var a, b Segmenter
		base := Header{SrcPort: 50001, DstPort: VXLANPort, ID: 42}
		if err := a.Reset(msg, 1468, base); err != nil {
			t.Fatal(err)
		}
		_ = b.Reset(msg, 1468, base)
		buf := make([]byte, 1480)
		segs := 0
		for {
			h, chunk, ok := a.Next()
			n, err := b.NextInto(buf)
			if !ok {
				if err != io.EOF {
					t.Fatalf("size %d: Next done but NextInto %v", size, err)
				}
				break
			}
			segs++
			var g Header
			_ = g.UnmarshalBinary(buf[:n])
			if g != h || !bytes.Equal(buf[HeaderLen:n], chunk) {
				t.Fatalf("size %d segment %d: %+v vs %+v", size, segs, g, h)
			}
		}
		if segs != SegmentCount(size, 1468) {
			t.Fatalf("size %d: %d segments, want %d", size, segs, SegmentCount(size, 1468))
		}
	}
}

func TestSegmenterErrors(t *testing.T) {
	var s Segmenter
	if err := s.Reset(make([]byte, MaxMessageLen+1), 1468, Header{}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("too large: %v", err)
	}
	if _, _, ok := s.Next(); ok {
		t.Fatal("failed reset still yields")
	}
	if err := s.Reset(nil, MinMSS-1, Header{}); !errors.Is(err, ErrBadMSS) {
		t.Fatalf("bad mss: %v", err)
	}
	_ = s.Reset(make([]byte, 100), 1468, Header{})
	if _, err := s.NextInto(make([]byte, 50)); !errors.Is(err, ErrShortBuffer) {
		t.Fatalf("short buffer: %v", err)
	}
	if n, err := s.NextInto(make([]byte, 112)); err != nil || n != 112 {
		t.Fatalf("retry after short buffer: %d %v", n, err)
	}
	s.NoChecksum = true
	_ = s.Reset(make([]byte, 100), 1468, Header{ID: 8})
	if h, _, _ := s.Next(); h.Checksum != 0 {
		t.Fatalf("NoChecksum: %#04x", h.Checksum)
	}
}

func TestSegmenterAllocs(t *testing.T) {
	msg := make([]byte, 65000)
	buf := make([]byte, 1500)
	var s Segmenter
	if n := testing.AllocsPerRun(50, func() {
		_ = s.Reset(msg, 1468, Header{ID: 2})
		for {
			if _, err := s.NextInto(buf); err != nil {
				break
			}
		}
		_ = s.Reset(msg, 1468, Header{ID: 2})
		for {
			if _, _, ok := s.Next(); !ok {
				break
			}
		}
	}); n != 0 {
		t.Fatalf("%v allocs per message", n)
	}
}
