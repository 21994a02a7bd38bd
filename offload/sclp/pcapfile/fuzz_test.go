package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"testing"
)

// FuzzReader feeds arbitrary bytes to the reader: it must not panic, must return typed errors,
// and must never return more data than the file holds.
func FuzzReader(f *testing.F) {
	f.Add(classicBE([]byte("frame")))
	f.Add(pcapng(binary.LittleEndian, []byte("frame")))
	f.Add(pcapng(binary.BigEndian, []byte("x")))
	f.Fuzz(func(t *testing.T, file []byte) {
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			if !errors.Is(err, ErrNotPcap) && !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		_ = r.LinkType()
		for i := 0; i < 10000; i++ {
			p, err := r.Next()
			if err == io.EOF {
				return
			}
			if err != nil {
				if !errors.Is(err, ErrTruncated) && !errors.Is(err, ErrCorrupt) {
					t.Fatalf("untyped error %v", err)
				}
				return
			}
			if len(p.Data) > len(file) {
				t.Fatalf("%d-byte frame from a %d-byte file", len(p.Data), len(file))
			}
			_ = r.LinkType()
		}
	})
}
