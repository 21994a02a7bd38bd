package pcapfile

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

var frames = [][]byte{[]byte("first frame"), make([]byte, 1514), {}, []byte("last")}

func TestClassicRoundTrip(t *testing.T) {
	var buf bytes.Buffer
	w, err := NewWriter(&buf, LinkEthernet, 100)
	if err != nil {
		t.Fatal(err)
	}
	t0 := time.Unix(1700000000, 123456789).UTC()
	for i, f := range frames {
		if err := w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), f); err != nil {
			t.Fatal(err)
		}
	}
	r, err := NewReader(&buf)
	if err != nil || r.LinkType() != LinkEthernet {
		t.Fatalf("reader: %v %v", err, r.LinkType())
	}
	for i, f := range frames {
		p, err := r.Next()
		if err != nil {
			t.Fatalf("frame %d: %v", i, err)
		}
		want := f[:min(len(f), 100)]
		if !bytes.Equal(p.Data, want) || p.OrigLen != len(f) || !p.Time.Equal(t0.Add(time.Duration(i)*time.Millisecond)) {
			t.Fatalf("frame %d: %d bytes orig %d at %v", i, len(p.Data), p.OrigLen, p.Time)
		}
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}

// classicBE builds a big-endian microsecond classic pcap with one frame.
func classicBE(frame []byte) []byte {
	var b []byte
	b = binary.BigEndian.AppendUint32(b, magicMicro)
	b = append(b, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF, 0, 0, 0, 1)
	b = binary.BigEndian.AppendUint32(b, 1700000000)
	b = binary.BigEndian.AppendUint32(b, 250000)
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	b = binary.BigEndian.AppendUint32(b, uint32(len(frame)))
	return append(b, frame...)
}

// ngBlock appends a pcapng block with padding and both length fields.
func ngBlock(b []byte, o order, typ uint32, body []byte) []byte {
	for len(body)%4 != 0 {
		body = append(body, 0)
	}
	total := uint32(12 + len(body))
	b = o.AppendUint32(b, typ)
	b = o.AppendUint32(b, total)
	b = append(b, body...)
	return o.AppendUint32(b, total)
}

// pcapng builds a pcapng file with one interface (nanosecond resolution), an unknown block,
// an enhanced packet block and a simple packet block.
func pcapng(o order, frame []byte) []byte {
	shb := o.AppendUint32(nil, ngByteOrder)
	shb = append(shb, o.AppendUint16(o.AppendUint16(nil, 1), 0)...)
	shb = append(shb, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	b := ngBlock(nil, o, blockSHB, shb)
	idb := o.AppendUint16(nil, uint16(LinkEthernet))
	idb = append(idb, 0, 0)
	idb = o.AppendUint32(idb, 0)
	idb = append(idb, o.AppendUint16(o.AppendUint16(nil, 9), 1)...)
	idb = append(idb, 9, 0, 0, 0, 0, 0, 0, 0) // tsresol 10^-9, then end of options
	b = ngBlock(b, o, blockIDB, idb)
	b = ngBlock(b, o, 0x0BAD, []byte{1, 2, 3, 4})
	ts := uint64(1700000000)*1_000_000_000 + 5
	epb := o.AppendUint32(nil, 0)
	epb = o.AppendUint32(epb, uint32(ts>>32))
	epb = o.AppendUint32(epb, uint32(ts))
	epb = o.AppendUint32(epb, uint32(len(frame)))
	epb = o.AppendUint32(epb, uint32(len(frame)))
	b = ngBlock(b, o, blockEPB, append(epb, frame...))
	return ngBlock(b, o, blockSPB, append(o.AppendUint32(nil, uint32(len(frame))), frame...))
}

func TestReadFormats(t *testing.T) {
	frame := []byte("0123456789abcdef-odd")
	for name, file := range map[string][]byte{
		"classic-be": classicBE(frame),
		"pcapng-le":  pcapng(binary.LittleEndian, frame),
		"pcapng-be":  pcapng(binary.BigEndian, frame),
	} {
		r, err := NewReader(bytes.NewReader(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		n := 0
		for {
			p, err := r.Next()
			if err == io.EOF {
				break
			}
			if err != nil || !bytes.Equal(p.Data, frame) || p.LinkType != LinkEthernet {
				t.Fatalf("%s frame %d: %v %q", name, n, err, p.Data)
			}
			if n == 0 && name != "classic-be" && p.Time.UnixNano() != 1700000000*1_000_000_000+5 {
				t.Fatalf("%s: time %v", name, p.Time)
			}
			n++
		}
		if want := map[bool]int{true: 1, false: 2}[name == "classic-be"]; n != want {
			t.Fatalf("%s: %d frames, want %d", name, n, want)
		}
	}
}

func TestReadErrors(t *testing.T) {
	if _, err := NewReader(bytes.NewReader([]byte("hello, not a capture"))); !errors.Is(err, ErrNotPcap) {
		t.Fatalf("text: %v", err)
	}
	if _, err := NewReader(bytes.NewReader(nil)); !errors.Is(err, ErrTruncated) {
		t.Fatalf("empty: %v", err)
	}
	file := classicBE(make([]byte, 100))
	r, err := NewReader(bytes.NewReader(file[:len(file)-10]))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := r.Next(); !errors.Is(err, ErrTruncated) {
		t.Fatalf("truncated record: %v", err)
	}
	ng := pcapng(binary.LittleEndian, []byte("x"))
	r, _ = NewReader(bytes.NewReader(ng[:len(ng)-3]))
	var last error
	for last == nil {
		_, last = r.Next()
	}
	if !errors.Is(last, ErrTruncated) {
		t.Fatalf("truncated pcapng: %v", last)
	}
}

// TestEditcapPcapng converts a file written by Writer to pcapng with Wireshark's editcap,
// when it is installed, and reads it back.
func TestEditcapPcapng(t *testing.T) {
	editcap, err := exec.LookPath("editcap")
	if err != nil {
		t.Skip("editcap not installed")
	}
	dir := t.TempDir()
	in, out := filepath.Join(dir, "in.pcap"), filepath.Join(dir, "out.pcapng")
	f, _ := os.Create(in)
	w, _ := NewWriter(f, LinkEthernet, 0)
	t0 := time.Unix(1700000000, 42000).UTC()
	for i, fr := range frames {
		_ = w.WritePacket(t0.Add(time.Duration(i)*time.Second), fr)
	}
	f.Close()
	if b, err := exec.Command(editcap, "-F", "pcapng", in, out).CombinedOutput(); err != nil {
		t.Fatalf("editcap: %v %s", err, b)
	}
	g, _ := os.Open(out)
	defer g.Close()
	r, err := NewReader(g)
	if err != nil {
		t.Fatal(err)
	}
	for i, fr := range frames {
		p, err := r.Next()
		if err != nil || !bytes.Equal(p.Data, fr) || !p.Time.Equal(t0.Add(time.Duration(i)*time.Second)) {
			t.Fatalf("frame %d: %v %d bytes at %v", i, err, len(p.Data), p.Time)
		}
	}
}

// order is a byte order that can append.
type order interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// TestLinkTypeBeforeInterface: a pcapng reader that has not seen an interface description yet
// reports link type 0 (it used to index an empty interface list).
func TestLinkTypeBeforeInterface(t *testing.T) {
	o := binary.LittleEndian
	shb := o.AppendUint32(nil, ngByteOrder)
	shb = append(shb, o.AppendUint16(o.AppendUint16(nil, 1), 0)...)
	shb = append(shb, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF)
	r, err := NewReader(bytes.NewReader(ngBlock(nil, o, blockSHB, shb)))
	if err != nil {
		t.Fatal(err)
	}
	if lt := r.LinkType(); lt != 0 {
		t.Fatalf("link type %d before any interface, want 0", lt)
	}
	if _, err := r.Next(); err != io.EOF {
		t.Fatalf("end: %v", err)
	}
}
