package sclp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
)

// Packet is one parsed SCLP segment with its outer addressing.
type Packet struct {
	// Src and Dst are the outer IPv4 addresses.
	Src, Dst netip.Addr
	// OuterSrcPort and OuterDstPort are the UDP ports in UDP mode, 0 in native mode.
	OuterSrcPort, OuterDstPort uint16
	// Header is the SCLP header.
	Header Header
	// Payload is the SCLP payload: a sub-slice of the parsed buffer.
	Payload []byte
	// PartialChecksum is set in UDP mode when the UDP checksum field holds only the
	// pseudo-header sum (a packet captured before checksum offload completed it) and
	// ParseOptions.AcceptPartial let it pass unverified.
	PartialChecksum bool
}

// Key returns the reassembly key of the packet.
func (p Packet) Key() Key {
	return Key{
		Src: p.Src, Dst: p.Dst,
		OuterSrcPort: p.OuterSrcPort, OuterDstPort: p.OuterDstPort,
		SrcPort: p.Header.SrcPort, DstPort: p.Header.DstPort,
		ID: p.Header.ID,
	}
}

// Piece returns the packet as a reassembly piece (its payload aliases the packet).
func (p Packet) Piece() Piece {
	return Piece{Key: p.Key(), First: p.Header.First, Remaining: int(p.Header.Remaining), Payload: p.Payload}
}

// ParseOptions selects what ParsePacket and ParseFrame accept.
type ParseOptions struct {
	// UDPPort, when non-zero, makes UDP packets to this destination port parse as SCLP in
	// UDP. Native (protocol 234) packets are always accepted.
	UDPPort uint16
	// Verify checks the IPv4 header checksum and the SCLP checksum (native mode) or the UDP
	// checksum when non-zero (UDP mode, where the SCLP checksum is not used).
	Verify bool
	// AcceptPartial accepts, unverified, a UDP checksum field that holds exactly the folded
	// pseudo-header sum: what a capture shows for a packet whose checksum a NIC (or veth,
	// which never finalises it) was left to compute; and a one-segment message whose inner
	// TCP/UDP checksum was left for offload while the outer one was computed for the finished
	// frame (local checksum offload). For capture analysis only.
	AcceptPartial bool
}

// ParseFrame parses an Ethernet frame (up to two VLAN tags) carrying an SCLP segment; see
// ParsePacket. A frame whose EtherType is not IPv4 gives ErrNotSCLP.
func ParseFrame(frame []byte, o ParseOptions) (Packet, error) {
	et, payload, err := ParseEthernet(frame)
	if err != nil {
		return Packet{}, err
	}
	if et != etherTypeIPv4 {
		return Packet{}, fmt.Errorf("parse frame: ethertype %#04x: %w", et, ErrNotSCLP)
	}
	return ParsePacket(payload, o)
}

// ParseEthernet returns the EtherType and payload of an Ethernet frame, skipping up to two
// 802.1Q/802.1ad tags. It returns ErrShort for a truncated header.
func ParseEthernet(frame []byte) (etherType uint16, payload []byte, err error) {
	if len(frame) < EthernetHeaderLen {
		return 0, nil, fmt.Errorf("parse ethernet: %d bytes: %w", len(frame), ErrShort)
	}
	et := binary.BigEndian.Uint16(frame[12:])
	b := frame[EthernetHeaderLen:]
	for i := 0; i < 2 && (et == etherTypeVLAN || et == etherTypeQinQ); i++ {
		if len(b) < 4 {
			return 0, nil, fmt.Errorf("parse ethernet: truncated vlan tag: %w", ErrShort)
		}
		et = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	return et, b, nil
}

// ParsePacket parses an IPv4 packet (starting at the IPv4 header) carrying an SCLP segment,
// natively (protocol 234) or in UDP to o.UDPPort. Lengths come from the IPv4 total length,
// checked against the buffer (trailing link padding is ignored). Errors, wrapped: ErrShort
// (truncated), ErrBadIPv4 (version, header length, total length, fragment), ErrNotSCLP (other
// protocol or port), ErrChecksum. With ErrChecksum the returned Packet is fully filled in, so
// a caller can still report the segment.
func ParsePacket(pkt []byte, o ParseOptions) (Packet, error) {
	var p Packet
	ip, l4, proto, err := parseIPv4Header(pkt, o.Verify)
	if err != nil {
		return p, err
	}
	p.Src = netip.AddrFrom4([4]byte(ip[12:16]))
	p.Dst = netip.AddrFrom4([4]byte(ip[16:20]))
	switch {
	case proto == IPProtocol:
		return parseNative(p, l4, o.Verify)
	case proto == protoUDP && o.UDPPort != 0:
		return parseUDP(p, l4, o)
	}
	return p, fmt.Errorf("parse packet: ip protocol %d: %w", proto, ErrNotSCLP)
}

// ParseIPv4 parses a native SCLP packet from its IPv4 header and returns the outer
// addresses, the SCLP header and payload. See ParsePacket for the errors; with
// verifyChecksum the IPv4 header checksum and the SCLP checksum are checked.
func ParseIPv4(pkt []byte, verifyChecksum bool) (src, dst netip.Addr, h Header, payload []byte, err error) {
	ip, l4, proto, err := parseIPv4Header(pkt, verifyChecksum)
	if err != nil {
		return src, dst, h, nil, err
	}
	if proto != IPProtocol {
		return src, dst, h, nil, fmt.Errorf("parse ipv4: protocol %d: %w", proto, ErrNotSCLP)
	}
	p := Packet{Src: netip.AddrFrom4([4]byte(ip[12:16])), Dst: netip.AddrFrom4([4]byte(ip[16:20]))}
	p, err = parseNative(p, l4, verifyChecksum)
	return p.Src, p.Dst, p.Header, p.Payload, err
}

// parseIPv4Header validates an IPv4 header and returns it, the L4 bytes and the protocol.
func parseIPv4Header(pkt []byte, verify bool) (ip, l4 []byte, proto uint8, err error) {
	if len(pkt) < IPv4HeaderLen {
		return nil, nil, 0, fmt.Errorf("parse ipv4: %d bytes: %w", len(pkt), ErrShort)
	}
	if pkt[0]>>4 != 4 {
		return nil, nil, 0, fmt.Errorf("parse ipv4: version %d: %w", pkt[0]>>4, ErrBadIPv4)
	}
	ihl := int(pkt[0]&0x0F) * 4
	total := int(binary.BigEndian.Uint16(pkt[2:]))
	switch {
	case ihl < IPv4HeaderLen || total < ihl:
		return nil, nil, 0, fmt.Errorf("parse ipv4: header %d total %d: %w", ihl, total, ErrBadIPv4)
	case total > len(pkt):
		return nil, nil, 0, fmt.Errorf("parse ipv4: total length %d > %d bytes: %w", total, len(pkt), ErrShort)
	case binary.BigEndian.Uint16(pkt[6:])&0x3FFF != 0:
		return nil, nil, 0, fmt.Errorf("parse ipv4: fragment: %w", ErrBadIPv4)
	}
	if verify && Fold(Sum(pkt[:ihl], 0)) != 0xFFFF {
		return nil, nil, 0, fmt.Errorf("parse ipv4: header checksum: %w", ErrChecksum)
	}
	return pkt[:ihl], pkt[ihl:total], pkt[9], nil
}

// parseNative parses the SCLP header and payload of a protocol 234 packet.
func parseNative(p Packet, l4 []byte, verify bool) (Packet, error) {
	if err := p.Header.UnmarshalBinary(l4); err != nil {
		return p, fmt.Errorf("parse sclp: %d bytes: %w", len(l4), ErrShort)
	}
	p.Payload = l4[HeaderLen:]
	if verify && !VerifySegment(p.Header, p.Payload) {
		return p, fmt.Errorf("parse sclp: checksum %#04x: %w", p.Header.Checksum, ErrChecksum)
	}
	return p, nil
}

// parseUDP parses the UDP header, then the SCLP header and payload, of a UDP-mode packet.
func parseUDP(p Packet, l4 []byte, o ParseOptions) (Packet, error) {
	if len(l4) < UDPHeaderLen {
		return p, fmt.Errorf("parse udp: %d bytes: %w", len(l4), ErrShort)
	}
	p.OuterSrcPort = binary.BigEndian.Uint16(l4[0:])
	p.OuterDstPort = binary.BigEndian.Uint16(l4[2:])
	ulen := int(binary.BigEndian.Uint16(l4[4:]))
	if p.OuterDstPort != o.UDPPort {
		return p, fmt.Errorf("parse udp: port %d: %w", p.OuterDstPort, ErrNotSCLP)
	}
	switch {
	case ulen < UDPHeaderLen:
		return p, fmt.Errorf("parse udp: length %d: %w", ulen, ErrBadIPv4)
	case ulen > len(l4):
		return p, fmt.Errorf("parse udp: length %d > %d bytes: %w", ulen, len(l4), ErrShort)
	}
	l4 = l4[:ulen]
	if err := p.Header.UnmarshalBinary(l4[UDPHeaderLen:]); err != nil {
		return p, fmt.Errorf("parse sclp in udp: %d bytes: %w", ulen-UDPHeaderLen, ErrShort)
	}
	p.Payload = l4[UDPHeaderLen+HeaderLen:]
	csum := binary.BigEndian.Uint16(l4[6:])
	if !o.Verify || csum == 0 {
		return p, nil
	}
	pseudo := pseudoSum(p.Src, p.Dst, protoUDP, ulen)
	if Fold(Sum(l4, pseudo)) == 0xFFFF {
		return p, nil
	}
	if o.AcceptPartial && (csum == Fold(pseudo) || p.Header.First && p.Header.Remaining == 0 && offloadedInner(l4, pseudo)) {
		p.PartialChecksum = true
		return p, nil
	}
	return p, fmt.Errorf("parse udp: checksum %#04x: %w", csum, ErrChecksum)
}

// offloadedInner reports whether the UDP datagram l4 (a whole message: VXLAN and an inner
// Ethernet frame after the SCLP header) carries an inner TCP or UDP checksum left for
// offload (the field holds the inner pseudo-header sum) and an outer UDP checksum computed
// as if that inner one were finished: local checksum offload (RFC 7605 style, as kernel VXLAN
// and the mode=udp fast path send a CHECKSUM_PARTIAL frame). On a real NIC the inner
// checksum is finished on the wire; a veth never finishes it, so a capture there shows this.
// The outer checksum of such a frame covers the headers only (a finished segment sums to
// 0xFFFF whatever it holds), so the inner segment's bytes stay unverified.
func offloadedInner(l4 []byte, pseudo uint64) bool {
	inner := l4[UDPHeaderLen+HeaderLen:]
	if len(inner) < VXLANHeaderLen {
		return false
	}
	et, ip, err := ParseEthernet(inner[VXLANHeaderLen:])
	if err != nil {
		return false
	}
	var proto byte
	var hl, end int // L4 is ip[hl:end]
	switch {
	case et == etherTypeIPv4 && len(ip) >= 20 && ip[0]>>4 == 4:
		proto, hl, end = ip[9], int(ip[0]&0xF)*4, int(binary.BigEndian.Uint16(ip[2:]))
		if hl < 20 || binary.BigEndian.Uint16(ip[6:])&0x3FFF != 0 { // fragments carry no whole L4
			return false
		}
	case et == etherTypeIPv6 && len(ip) >= 40 && ip[0]>>4 == 6:
		proto, hl, end = ip[6], 40, 40+int(binary.BigEndian.Uint16(ip[4:]))
	default:
		return false
	}
	if end < hl || end > len(ip) {
		return false
	}
	field := 0
	switch proto {
	case 6:
		field = 16
	case 17:
		field = 6
	default:
		return false
	}
	seg := ip[hl:end]
	if len(seg) < field+2 {
		return false
	}
	// The finished inner checksum: the field already holds the pseudo-header sum.
	partial := binary.BigEndian.Uint16(seg[field:])
	final := ^Fold(Sum(seg, 0))
	if proto == 17 && final == 0 {
		final = 0xFFFF
	}
	// The outer sum with the finished field in place of the partial one.
	sum := Sum(l4, pseudo) + uint64(^partial) + uint64(final)
	return Fold(sum) == 0xFFFF
}
