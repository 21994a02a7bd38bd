package sclp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Outer header lengths.
const (
	// EthernetHeaderLen is the length of an untagged Ethernet header.
	EthernetHeaderLen = 14
	// IPv4HeaderLen is the length of an IPv4 header without options.
	IPv4HeaderLen = 20
	// UDPHeaderLen is the length of a UDP header.
	UDPHeaderLen = 8
	// EncapOverhead is the full outer encapsulation of VXLAN over SCLP in native mode:
	// Ethernet, IPv4, SCLP and VXLAN (54 bytes).
	EncapOverhead = EthernetHeaderLen + IPv4HeaderLen + HeaderLen + VXLANHeaderLen
	// DefaultTTL is the outer IPv4 TTL used when PacketOptions.TTL is zero.
	DefaultTTL = 64
	// EtherTypeIPv4 is the EtherType of IPv4.
	EtherTypeIPv4 = etherTypeIPv4
)

// PacketOptions describes the outer headers AppendPacket writes.
type PacketOptions struct {
	// DstMAC and SrcMAC are the outer Ethernet addresses. With NoEthernet they are unused.
	DstMAC, SrcMAC [6]byte
	// NoEthernet omits the Ethernet header: the packet starts at the IPv4 header.
	NoEthernet bool
	// Src and Dst are the outer IPv4 addresses.
	Src, Dst netip.Addr
	// TTL of the outer IPv4 header; 0 means DefaultTTL.
	TTL uint8
	// TOS of the outer IPv4 header.
	TOS uint8
	// IPID is the IPv4 identification field.
	IPID uint16
	// UDPDstPort, when non-zero, selects SCLP inside UDP: an IPv4 protocol 17 packet to this
	// port whose UDP source port is the SCLP source port. The SCLP checksum field is then sent
	// as zero and the UDP checksum (with pseudo-header) is filled in.
	UDPDstPort uint16
}

// PacketLen returns the length AppendPacket produces for a chunk of n bytes.
func (o PacketOptions) PacketLen(n int) int {
	l := IPv4HeaderLen + HeaderLen + n
	if o.UDPDstPort != 0 {
		l += UDPHeaderLen
	}
	if !o.NoEthernet {
		l += EthernetHeaderLen
	}
	return l
}

// AppendPacket appends one segment with outer headers to b: Ethernet (unless NoEthernet),
// IPv4 (DF, header checksum), SCLP header h with its checksum computed over chunk (or, with
// UDPDstPort, a UDP header and the SCLP header with a zero checksum), then chunk. h.Checksum is
// ignored. It returns ErrTooLarge if the IPv4 total length would exceed 65535 and ErrBadIPv4
// if Src or Dst is not IPv4. It allocates only when b must grow.
func AppendPacket(b []byte, o PacketOptions, h Header, chunk []byte) ([]byte, error) {
	if !o.Src.Is4() || !o.Dst.Is4() {
		return b, fmt.Errorf("append packet: addresses %v -> %v: %w", o.Src, o.Dst, ErrBadIPv4)
	}
	total := o.PacketLen(len(chunk))
	ipLen := total
	if !o.NoEthernet {
		ipLen -= EthernetHeaderLen
	}
	if ipLen > 0xFFFF {
		return b, fmt.Errorf("append packet: ip length %d: %w", ipLen, ErrTooLarge)
	}
	start := len(b)
	b = grow(b, total)
	p := b[start:]
	if !o.NoEthernet {
		copy(p[0:6], o.DstMAC[:])
		copy(p[6:12], o.SrcMAC[:])
		binary.BigEndian.PutUint16(p[12:], etherTypeIPv4)
		p = p[EthernetHeaderLen:]
	}
	proto := uint8(IPProtocol)
	if o.UDPDstPort != 0 {
		proto = protoUDP
	}
	putIPv4(p, o, proto, ipLen)
	l4 := p[IPv4HeaderLen:]
	if o.UDPDstPort == 0 {
		h.Checksum = 0
		h.Checksum = ^Fold(CopyAndSum(l4[HeaderLen:], chunk, h.sum()))
		h.Put(l4)
		return b, nil
	}
	h.Checksum = 0
	h.Put(l4[UDPHeaderLen:])
	copy(l4[UDPHeaderLen+HeaderLen:], chunk)
	putUDP(l4, o, h.SrcPort, ipLen-IPv4HeaderLen)
	return b, nil
}

// grow extends b by n bytes, reallocating only when its capacity is short.
func grow(b []byte, n int) []byte {
	if cap(b)-len(b) >= n {
		return b[:len(b)+n]
	}
	nb := make([]byte, len(b)+n, 2*len(b)+n)
	copy(nb, b)
	return nb
}

// putIPv4 writes a 20-byte IPv4 header with DF and its checksum.
func putIPv4(p []byte, o PacketOptions, proto uint8, totalLen int) {
	ttl := o.TTL
	if ttl == 0 {
		ttl = DefaultTTL
	}
	p[0], p[1] = 0x45, o.TOS
	binary.BigEndian.PutUint16(p[2:], uint16(totalLen))
	binary.BigEndian.PutUint16(p[4:], o.IPID)
	binary.BigEndian.PutUint16(p[6:], 0x4000) // DF, offset 0
	p[8], p[9] = ttl, proto
	p[10], p[11] = 0, 0
	src, dst := o.Src.As4(), o.Dst.As4()
	copy(p[12:16], src[:])
	copy(p[16:20], dst[:])
	binary.BigEndian.PutUint16(p[10:], Checksum(p[:IPv4HeaderLen]))
}

// putUDP writes the UDP header at l4 (whose payload is already in place) and its checksum.
func putUDP(l4 []byte, o PacketOptions, srcPort uint16, udpLen int) {
	binary.BigEndian.PutUint16(l4[0:], srcPort)
	binary.BigEndian.PutUint16(l4[2:], o.UDPDstPort)
	binary.BigEndian.PutUint16(l4[4:], uint16(udpLen))
	l4[6], l4[7] = 0, 0
	c := ^Fold(Sum(l4[:udpLen], pseudoSum(o.Src, o.Dst, protoUDP, udpLen)))
	if c == 0 {
		c = 0xFFFF // RFC 768: a computed zero is sent as all ones
	}
	binary.BigEndian.PutUint16(l4[6:], c)
}

// pseudoSum is the partial sum of the IPv4 pseudo-header.
func pseudoSum(src, dst netip.Addr, proto uint8, l4Len int) uint64 {
	s, d := src.As4(), dst.As4()
	return uint64(binary.BigEndian.Uint16(s[0:])) + uint64(binary.BigEndian.Uint16(s[2:])) +
		uint64(binary.BigEndian.Uint16(d[0:])) + uint64(binary.BigEndian.Uint16(d[2:])) +
		uint64(proto) + uint64(l4Len)
}
