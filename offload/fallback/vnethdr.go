package fallback

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// VnetHdrLen is the length of the virtio_net_hdr that precedes every frame written to (or read
// from) a packet socket with PACKET_VNET_HDR enabled.
const VnetHdrLen = 10

// Flags and GSO types of a virtio_net_hdr (include/uapi/linux/virtio_net.h).
const (
	VnetFlagNeedsCsum uint8 = 1 // csum_start/csum_offset name a checksum still to be finished
	VnetFlagDataValid uint8 = 2 // the checksum was verified

	VnetGSONone  uint8 = 0
	VnetGSOTCPv4 uint8 = 1
	VnetGSOUDP   uint8 = 3
	VnetGSOTCPv6 uint8 = 4
	VnetGSOUDPL4 uint8 = 5
	VnetGSOECN   uint8 = 0x80
)

// VnetHdr is the 10-byte virtio_net_hdr, little-endian on the wire of the socket:
//
//	 0       1       2               4               6               8              10
//	+-------+-------+---------------+---------------+---------------+---------------+
//	| flags |gsotype|    hdr_len    |   gso_size    |  csum_start   |  csum_offset  |
//	+-------+-------+---------------+---------------+---------------+---------------+
type VnetHdr struct {
	Flags      uint8
	GSOType    uint8
	HdrLen     uint16
	GSOSize    uint16
	CsumStart  uint16
	CsumOffset uint16
}

// Put writes h into b, which must hold at least VnetHdrLen bytes. It does not allocate.
func (h VnetHdr) Put(b []byte) {
	_ = b[VnetHdrLen-1]
	b[0] = h.Flags
	b[1] = h.GSOType
	binary.LittleEndian.PutUint16(b[2:], h.HdrLen)
	binary.LittleEndian.PutUint16(b[4:], h.GSOSize)
	binary.LittleEndian.PutUint16(b[6:], h.CsumStart)
	binary.LittleEndian.PutUint16(b[8:], h.CsumOffset)
}

// MarshalBinary returns the 10 bytes of h.
func (h VnetHdr) MarshalBinary() ([]byte, error) {
	b := make([]byte, VnetHdrLen)
	h.Put(b)
	return b, nil
}

// UnmarshalBinary decodes the first VnetHdrLen bytes of b; io.ErrUnexpectedEOF when short.
func (h *VnetHdr) UnmarshalBinary(b []byte) error {
	if len(b) < VnetHdrLen {
		return io.ErrUnexpectedEOF
	}
	h.Flags, h.GSOType = b[0], b[1]
	h.HdrLen = binary.LittleEndian.Uint16(b[2:])
	h.GSOSize = binary.LittleEndian.Uint16(b[4:])
	h.CsumStart = binary.LittleEndian.Uint16(b[6:])
	h.CsumOffset = binary.LittleEndian.Uint16(b[8:])
	return nil
}

// Errors of frame preparation.
var (
	// ErrShortFrame: the frame is shorter than the headers it announces.
	ErrShortFrame = errors.New("short frame")
	// ErrFrameTooLarge: the frame exceeds the port MTU and cannot be sent as GSO (not TCP).
	ErrFrameTooLarge = errors.New("frame larger than the port MTU and not segmentable")
)

const (
	etherTypeIPv4 = 0x0800
	etherTypeIPv6 = 0x86dd
	etherTypeVLAN = 0x8100
	protoTCP      = 6
	protoUDP      = 17
	tcpFlagCWR    = 0x80
)

// PrepareFrame computes the virtio_net_hdr for injecting frame (an Ethernet frame) into a port
// whose MTU is mtu, and re-seeds the frame's TCP/UDP checksum field with the folded (not
// inverted) pseudo-header sum, as tcp_v4_send_check leaves it, so that NEEDS_CSUM is valid.
//
// The inner L4 checksum is never verified or computed over the payload here: every inner byte
// was covered by the SCLP or UDP checksum of the segment that carried it (docs/architecture.md,
// "Inner checksums"). A TCP frame whose IP packet exceeds mtu becomes a GSO frame with
// gso_size = mtu - IP header - TCP header; any other frame above mtu gives ErrFrameTooLarge.
// Frames that are neither TCP nor UDP over IPv4/IPv6 get a zero header (gso NONE, no flags).
// It does not allocate.
func PrepareFrame(frame []byte, mtu int) (VnetHdr, error) {
	return prepareFrame(frame, len(frame), mtu)
}

// prepareFrame is PrepareFrame for a frame of frameLen bytes of which head is the beginning
// (it must hold the L2-L4 headers; ErrShortFrame otherwise).
func prepareFrame(head []byte, frameLen, mtu int) (VnetHdr, error) {
	if len(head) < 14 || frameLen < len(head) {
		return VnetHdr{}, fmt.Errorf("prepare frame: %w", ErrShortFrame)
	}
	l2 := 14
	etype := binary.BigEndian.Uint16(head[12:])
	if etype == etherTypeVLAN {
		if len(head) < 18 {
			return VnetHdr{}, fmt.Errorf("prepare frame: %w", ErrShortFrame)
		}
		l2 = 18
		etype = binary.BigEndian.Uint16(head[16:])
	}
	var (
		l3len, iphl int
		proto       uint8
		psum        uint32
	)
	ip, avail := head[l2:], frameLen-l2 // header bytes at hand; bytes in the frame
	switch etype {
	case etherTypeIPv4:
		if len(ip) < 20 || ip[0]>>4 != 4 {
			return noOffload(frameLen, l2, mtu)
		}
		iphl = int(ip[0]&0x0f) * 4
		l3len = int(binary.BigEndian.Uint16(ip[2:]))
		if iphl < 20 || l3len < iphl || avail < l3len || len(ip) < iphl {
			return VnetHdr{}, fmt.Errorf("prepare frame: ipv4 lengths: %w", ErrShortFrame)
		}
		if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 { // MF or fragment offset: no L4 header to trust
			return noOffload(frameLen, l2, mtu)
		}
		proto = ip[9]
		psum = sum16(ip[12:20]) + uint32(proto) + uint32(l3len-iphl)
	case etherTypeIPv6:
		if len(ip) < 40 || ip[0]>>4 != 6 {
			return noOffload(frameLen, l2, mtu)
		}
		iphl = 40
		plen := int(binary.BigEndian.Uint16(ip[4:]))
		l3len = 40 + plen
		if plen == 0 || avail < l3len {
			return noOffload(frameLen, l2, mtu)
		}
		proto = ip[6]
		psum = sum16(ip[8:40]) + uint32(proto) + uint32(plen)
	default:
		return noOffload(frameLen, l2, mtu)
	}
	l4, l4len := ip[iphl:min(l3len, len(ip))], l3len-iphl
	var h VnetHdr
	switch proto {
	case protoTCP:
		if l4len < 20 {
			return noOffload(frameLen, l2, mtu)
		}
		if len(l4) < 20 {
			return VnetHdr{}, fmt.Errorf("prepare frame: tcp header beyond %d bytes: %w", len(head), ErrShortFrame)
		}
		if int(l4[12]>>4)*4 < 20 || l4len < int(l4[12]>>4)*4 {
			return noOffload(frameLen, l2, mtu)
		}
		thl := int(l4[12]>>4) * 4
		if len(l4) < thl {
			return VnetHdr{}, fmt.Errorf("prepare frame: tcp header beyond %d bytes: %w", len(head), ErrShortFrame)
		}
		h = VnetHdr{Flags: VnetFlagNeedsCsum, CsumStart: uint16(l2 + iphl), CsumOffset: 16,
			HdrLen: uint16(l2 + iphl + thl)}
		if l3len > mtu {
			if mtu-iphl-thl <= 0 {
				return VnetHdr{}, fmt.Errorf("prepare frame: mtu %d: %w", mtu, ErrFrameTooLarge)
			}
			h.GSOSize = uint16(mtu - iphl - thl)
			h.GSOType = VnetGSOTCPv4
			if etype == etherTypeIPv6 {
				h.GSOType = VnetGSOTCPv6
			}
			if l4[13]&tcpFlagCWR != 0 {
				h.GSOType |= VnetGSOECN
			}
		}
		binary.BigEndian.PutUint16(l4[16:], fold32(psum))
	case protoUDP:
		if l4len < 8 {
			return noOffload(frameLen, l2, mtu)
		}
		if len(l4) < 8 {
			return VnetHdr{}, fmt.Errorf("prepare frame: udp header beyond %d bytes: %w", len(head), ErrShortFrame)
		}
		if l3len > mtu {
			return VnetHdr{}, fmt.Errorf("prepare frame: udp packet of %d bytes over mtu %d: %w", l3len, mtu, ErrFrameTooLarge)
		}
		h = VnetHdr{Flags: VnetFlagNeedsCsum, CsumStart: uint16(l2 + iphl), CsumOffset: 6, HdrLen: uint16(l2 + iphl + 8)}
		binary.BigEndian.PutUint16(l4[6:], fold32(psum))
	default:
		return noOffload(frameLen, l2, mtu)
	}
	return h, nil
}

// noOffload is the header of a frame sent as is.
func noOffload(frameLen, l2, mtu int) (VnetHdr, error) {
	if frameLen-l2 > mtu {
		return VnetHdr{}, fmt.Errorf("prepare frame: %d bytes over mtu %d: %w", frameLen-l2, mtu, ErrFrameTooLarge)
	}
	return VnetHdr{}, nil
}

// sum16 adds the big-endian 16-bit words of b (even length) without folding.
func sum16(b []byte) uint32 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	return s
}

// fold32 folds a 32-bit one's-complement sum to 16 bits (not inverted).
func fold32(s uint32) uint16 {
	s = s>>16 + s&0xffff
	s += s >> 16
	return uint16(s)
}
