package sclp

import (
	"encoding/binary"
	"errors"
	"io"
)

// Wire constants of SCLP and VXLAN over SCLP.
const (
	// HeaderLen is the length of the SCLP header in bytes.
	HeaderLen = 12
	// IPProtocol is the IP protocol number of SCLP.
	IPProtocol = 234
	// VXLANPort is the SCLP destination port that carries VXLAN.
	VXLANPort = 4789
	// VXLANHeaderLen is the length of the VXLAN header in bytes.
	VXLANHeaderLen = 8
	// MaxMessageLen is the largest message (VXLAN header + inner frame) SCLP carries: a
	// 64 KiB inner packet plus a VLAN-tagged Ethernet header, as the reference caps it.
	MaxMessageLen = 65553
	// IPv4Overhead is the per-packet overhead of native mode: MSS = MTU - IPv4Overhead.
	IPv4Overhead = IPv4HeaderLen + HeaderLen
	// UDPOverhead is the per-packet overhead of UDP mode: MSS = MTU - UDPOverhead.
	UDPOverhead = IPv4HeaderLen + UDPHeaderLen + HeaderLen
	// SrcPortMin is the lowest source port SourcePort returns (the highest is 65535).
	SrcPortMin = 49152
	// MaxRemaining is the largest value of the 16-bit remaining field.
	MaxRemaining = 0xFFFF
)

// Errors returned (possibly wrapped) by the codecs of this package. Test with errors.Is.
var (
	// ErrShort reports a buffer shorter than the headers or lengths it must hold.
	ErrShort = errors.New("sclp: packet too short")
	// ErrChecksum reports a checksum (SCLP, IPv4 header or UDP) that does not verify.
	ErrChecksum = errors.New("sclp: bad checksum")
	// ErrNotSCLP reports a well-formed packet that is not SCLP (other EtherType, protocol or
	// UDP port).
	ErrNotSCLP = errors.New("sclp: not an SCLP packet")
	// ErrBadVXLAN reports a VXLAN header whose flags are not exactly 0x08000000 or whose
	// reserved byte is not zero.
	ErrBadVXLAN = errors.New("sclp: bad VXLAN header")
	// ErrBadIPv4 reports a malformed IPv4 header (version, header length, total length, or a
	// fragment).
	ErrBadIPv4 = errors.New("sclp: bad IPv4 header")
	// ErrTooLarge reports a message longer than MaxMessageLen, or one whose remaining count
	// would not fit 16 bits at the given MSS.
	ErrTooLarge = errors.New("sclp: message too large")
	// ErrBadMSS reports an MSS below MinMSS.
	ErrBadMSS = errors.New("sclp: MSS too small")
	// ErrShortBuffer reports a caller buffer too small for what must be written into it.
	ErrShortBuffer = errors.New("sclp: buffer too small")
	// ErrBadConfig reports an invalid reassembler or coalescer configuration.
	ErrBadConfig = errors.New("sclp: invalid configuration")
)

// Header is the SCLP header: 12 bytes, big-endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-------------------------------+-------------------------------+
//	|          Source Port          |        Destination Port       |
//	+-------------------------------+-----------------------------+-+
//	|                 Identification (31 bits)                    |F|
//	+-------------------------------+-----------------------------+-+
//	|           Remaining           |            Checksum           |
//	+-------------------------------+-------------------------------+
//
// The identification is the 32-bit word at offset 4 with bit 0 cleared; F is bit 0 and marks
// the first segment of a message (also of an unsegmented one). Remaining counts the message
// payload bytes that follow this segment. The checksum covers the header (checksum field zero)
// and the segment's payload, without a pseudo-header.
type Header struct {
	// SrcPort is the source port: a hash of the inner flow in SrcPortMin..65535.
	SrcPort uint16
	// DstPort is the destination port: VXLANPort for VXLAN over SCLP.
	DstPort uint16
	// ID is the message identification. Bit 0 is always clear: Put and MarshalBinary
	// ignore it and UnmarshalBinary clears it.
	ID uint32
	// First is the F bit: set on the first segment of a message.
	First bool
	// Remaining is the number of message bytes that follow this segment.
	Remaining uint16
	// Checksum is the SCLP checksum as carried on the wire.
	Checksum uint16
}

// Put writes h into the first HeaderLen bytes of b without allocating. It panics if b is
// shorter than HeaderLen, like a slice index.
func (h Header) Put(b []byte) {
	_ = b[HeaderLen-1]
	binary.BigEndian.PutUint16(b[0:], h.SrcPort)
	binary.BigEndian.PutUint16(b[2:], h.DstPort)
	binary.BigEndian.PutUint32(b[4:], h.word())
	binary.BigEndian.PutUint16(b[8:], h.Remaining)
	binary.BigEndian.PutUint16(b[10:], h.Checksum)
}

// word is the 32-bit identification word: ID with bit 0 replaced by F.
func (h Header) word() uint32 {
	w := h.ID &^ 1
	if h.First {
		w |= 1
	}
	return w
}

// AppendBinary appends the HeaderLen bytes of h to b. It never fails; the error is there to
// satisfy encoding.BinaryAppender.
func (h Header) AppendBinary(b []byte) ([]byte, error) {
	var a [HeaderLen]byte
	h.Put(a[:])
	return append(b, a[:]...), nil
}

// MarshalBinary returns the HeaderLen bytes of h. It never fails.
func (h Header) MarshalBinary() ([]byte, error) {
	b := make([]byte, HeaderLen)
	h.Put(b)
	return b, nil
}

// UnmarshalBinary decodes the first HeaderLen bytes of b into h. It returns
// io.ErrUnexpectedEOF if b is shorter than HeaderLen; bytes after the header are ignored.
func (h *Header) UnmarshalBinary(b []byte) error {
	if len(b) < HeaderLen {
		return io.ErrUnexpectedEOF
	}
	w := binary.BigEndian.Uint32(b[4:])
	*h = Header{
		SrcPort:   binary.BigEndian.Uint16(b[0:]),
		DstPort:   binary.BigEndian.Uint16(b[2:]),
		ID:        w &^ 1,
		First:     w&1 != 0,
		Remaining: binary.BigEndian.Uint16(b[8:]),
		Checksum:  binary.BigEndian.Uint16(b[10:]),
	}
	return nil
}

// sum returns the unfolded one's-complement sum of the header with the checksum field zero.
func (h Header) sum() uint64 {
	w := h.word()
	return uint64(h.SrcPort) + uint64(h.DstPort) + uint64(w>>16) + uint64(w&0xFFFF) +
		uint64(h.Remaining)
}
