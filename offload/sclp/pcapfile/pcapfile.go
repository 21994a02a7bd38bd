package pcapfile

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"time"
)

// LinkType is a pcap LINKTYPE_ value: the link layer of the captured frames.
type LinkType uint16

// Link types this package's users understand.
const (
	// LinkEthernet is LINKTYPE_ETHERNET: frames start with an Ethernet header.
	LinkEthernet LinkType = 1
	// LinkRaw is LINKTYPE_RAW: frames start with an IPv4 or IPv6 header.
	LinkRaw LinkType = 101
	// LinkLinuxSLL is LINKTYPE_LINUX_SLL (tcpdump -i any): a 16-byte cooked header.
	LinkLinuxSLL LinkType = 113
	// LinkIPv4 is LINKTYPE_IPV4: frames start with an IPv4 header.
	LinkIPv4 LinkType = 228
	// LinkLinuxSLL2 is LINKTYPE_LINUX_SLL2: a 20-byte cooked header.
	LinkLinuxSLL2 LinkType = 276
)

// Magic numbers of the formats.
const (
	magicMicro  = 0xA1B2C3D4
	magicNano   = 0xA1B23C4D
	magicNGSHB  = 0x0A0D0D0A
	ngByteOrder = 0x1A2B3C4D
	// maxRecord bounds a record's captured length, so a corrupt length cannot make the
	// reader allocate gigabytes.
	maxRecord = 1 << 24
)

// Errors returned (wrapped) by the reader. Test with errors.Is.
var (
	// ErrNotPcap reports a file that starts with neither a pcap nor a pcapng magic number.
	ErrNotPcap = errors.New("pcapfile: not a pcap or pcapng file")
	// ErrCorrupt reports an inconsistent record or block (lengths out of range).
	ErrCorrupt = errors.New("pcapfile: corrupt capture")
	// ErrTruncated reports a file that ends inside a record or block.
	ErrTruncated = errors.New("pcapfile: truncated capture")
)

// Packet is one captured frame.
type Packet struct {
	// Time is the capture timestamp.
	Time time.Time
	// LinkType is the link layer of Data.
	LinkType LinkType
	// Data is the captured bytes, valid until the next call to Next.
	Data []byte
	// OrigLen is the frame's length on the wire (len(Data) when not truncated by a snaplen).
	OrigLen int
}

// Reader reads packets from a classic pcap or a pcapng stream.
type Reader struct {
	r     *bufio.Reader
	next  func() (Packet, error)
	buf   []byte
	order binary.ByteOrder
	// classic pcap
	link LinkType
	nano bool
	// pcapng
	ifaces []ngIface
}

// NewReader detects the format from the first four bytes of r and reads the file header. It
// returns an error wrapping ErrNotPcap if the magic number is unknown, or ErrTruncated if r
// ends first.
func NewReader(r io.Reader) (*Reader, error) {
	pr := &Reader{r: bufio.NewReaderSize(r, 1<<16)}
	magic, err := pr.r.Peek(4)
	if err != nil {
		return nil, fmt.Errorf("read magic: %w", truncated(err))
	}
	le, be := binary.LittleEndian.Uint32(magic), binary.BigEndian.Uint32(magic)
	switch {
	case le == magicNGSHB:
		return pr, pr.startNG()
	case le == magicMicro || le == magicNano:
		pr.order, pr.nano = binary.LittleEndian, le == magicNano
	case be == magicMicro || be == magicNano:
		pr.order, pr.nano = binary.BigEndian, be == magicNano
	default:
		return nil, fmt.Errorf("magic %#08x: %w", be, ErrNotPcap)
	}
	return pr, pr.startClassic()
}

// truncated maps an early EOF to ErrTruncated.
func truncated(err error) error {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return ErrTruncated
	}
	return err
}

// read returns the next n bytes in the reader's scratch buffer.
func (pr *Reader) read(n int) ([]byte, error) {
	if cap(pr.buf) < n {
		pr.buf = make([]byte, n)
	}
	b := pr.buf[:n]
	_, err := io.ReadFull(pr.r, b)
	return b, err
}

// LinkType returns the link type of the file (of its first interface for pcapng; 0 if none
// was described yet).
func (pr *Reader) LinkType() LinkType {
	if len(pr.ifaces) > 0 {
		return pr.ifaces[0].link
	}
	return pr.link
}

// Next returns the next packet. It returns io.EOF at the clean end of the file, and an error
// wrapping ErrTruncated or ErrCorrupt for a damaged file. Packet.Data is valid until the
// next call.
func (pr *Reader) Next() (Packet, error) { return pr.next() }

// startClassic reads the 24-byte classic file header.
func (pr *Reader) startClassic() error {
	h, err := pr.read(24)
	if err != nil {
		return fmt.Errorf("read pcap header: %w", truncated(err))
	}
	pr.link = LinkType(pr.order.Uint32(h[20:]) & 0xFFFF)
	pr.next = pr.nextClassic
	return nil
}

// nextClassic reads one classic record.
func (pr *Reader) nextClassic() (Packet, error) {
	h, err := pr.read(16)
	if err == io.EOF {
		return Packet{}, io.EOF
	} else if err != nil {
		return Packet{}, fmt.Errorf("read record header: %w", truncated(err))
	}
	sec, frac := pr.order.Uint32(h[0:]), pr.order.Uint32(h[4:])
	incl, orig := pr.order.Uint32(h[8:]), pr.order.Uint32(h[12:])
	if incl > maxRecord {
		return Packet{}, fmt.Errorf("record of %d bytes: %w", incl, ErrCorrupt)
	}
	ns := int64(frac) * 1000
	if pr.nano {
		ns = int64(frac)
	}
	data, err := pr.read(int(incl))
	if err != nil {
		return Packet{}, fmt.Errorf("read record: %w", truncated(err))
	}
	return Packet{Time: time.Unix(int64(sec), ns).UTC(), LinkType: pr.link, Data: data, OrigLen: int(orig)}, nil
}

// Writer writes a classic pcap file (little-endian, nanosecond timestamps).
type Writer struct {
	w       io.Writer
	snaplen int
	hdr     [16]byte
}

// NewWriter writes the file header for link type lt and returns a writer. Frames longer than
// snaplen are truncated in the file (0 means 262144).
func NewWriter(w io.Writer, lt LinkType, snaplen int) (*Writer, error) {
	if snaplen <= 0 {
		snaplen = 262144
	}
	var h [24]byte
	binary.LittleEndian.PutUint32(h[0:], magicNano)
	binary.LittleEndian.PutUint16(h[4:], 2)
	binary.LittleEndian.PutUint16(h[6:], 4)
	binary.LittleEndian.PutUint32(h[16:], uint32(snaplen))
	binary.LittleEndian.PutUint32(h[20:], uint32(lt))
	if _, err := w.Write(h[:]); err != nil {
		return nil, fmt.Errorf("write pcap header: %w", err)
	}
	return &Writer{w: w, snaplen: snaplen}, nil
}

// WritePacket writes one frame captured at t.
func (pw *Writer) WritePacket(t time.Time, data []byte) error {
	incl := min(len(data), pw.snaplen)
	binary.LittleEndian.PutUint32(pw.hdr[0:], uint32(t.Unix()))
	binary.LittleEndian.PutUint32(pw.hdr[4:], uint32(t.Nanosecond()))
	binary.LittleEndian.PutUint32(pw.hdr[8:], uint32(incl))
	binary.LittleEndian.PutUint32(pw.hdr[12:], uint32(len(data)))
	if _, err := pw.w.Write(pw.hdr[:]); err != nil {
		return fmt.Errorf("write record header: %w", err)
	}
	if _, err := pw.w.Write(data[:incl]); err != nil {
		return fmt.Errorf("write record: %w", err)
	}
	return nil
}
