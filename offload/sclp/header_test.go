package sclp

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestHeaderRoundTrip(t *testing.T) {
	h := Header{SrcPort: 0xC001, DstPort: VXLANPort, ID: 0xDEADBEEE, First: true, Remaining: 1532, Checksum: 0x1234}
	b, err := h.MarshalBinary()
	if err != nil || len(b) != HeaderLen {
		t.Fatalf("marshal: %v len %d", err, len(b))
	}
	want := []byte{0xC0, 0x01, 0x12, 0xB5, 0xDE, 0xAD, 0xBE, 0xEF, 0x05, 0xFC, 0x12, 0x34}
	if !bytes.Equal(b, want) {
		t.Fatalf("bytes %x, want %x", b, want)
	}
	var g Header
	if err := g.UnmarshalBinary(b); err != nil || g != h {
		t.Fatalf("unmarshal %+v %v, want %+v", g, err, h)
	}
	a, _ := h.AppendBinary([]byte{1, 2})
	if !bytes.Equal(a[2:], want) || a[0] != 1 {
		t.Fatalf("append %x", a)
	}
	// Bit 0 of ID is never sent as part of the id.
	h2 := Header{ID: 0xFFFFFFFF}
	h2.Put(b)
	if b[7] != 0xFE {
		t.Fatalf("id bit 0 leaked into F: %x", b[4:8])
	}
	if err := g.UnmarshalBinary(b[:HeaderLen-1]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short unmarshal: %v", err)
	}
}

func TestHeaderAllocs(t *testing.T) {
	var b [HeaderLen]byte
	h := Header{SrcPort: 1, ID: 4, First: true}
	var g Header
	if n := testing.AllocsPerRun(100, func() {
		h.Put(b[:])
		_ = g.UnmarshalBinary(b[:])
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}
