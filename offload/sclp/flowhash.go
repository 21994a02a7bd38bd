package sclp

import "encoding/binary"

// Inner EtherTypes and protocols that SourcePort looks into.
const (
	etherTypeIPv4   = 0x0800
	etherTypeIPv6   = 0x86DD
	etherTypeVLAN   = 0x8100
	etherTypeQinQ   = 0x88A8
	protoTCP        = 6
	protoUDP        = 17
	protoSCTP       = 132
	fnvOffset64     = 14695981039346656037
	fnvPrime64      = 1099511628211
	srcPortRangeLen = 65536 - SrcPortMin
)

// SourcePort returns the SCLP source port for an inner Ethernet frame: a hash of the inner
// flow mapped into SrcPortMin..65535, so every packet of one flow gets the same port and ECMP
// spreads flows. The hash covers the inner MACs, and when present (after up to two VLAN tags)
// the IPv4 or IPv6 addresses, the protocol and the TCP, UDP or SCTP ports. IPv4 fragments
// other than the first hash without ports, IPv6 extension headers are not walked. A frame
// too short for a layer simply stops the hash there. It does not allocate.
func SourcePort(innerFrame []byte) uint16 {
	h := uint64(fnvOffset64)
	b := innerFrame
	if len(b) < 14 {
		return SrcPortMin + uint16(mix(hashBytes(h, b))%srcPortRangeLen)
	}
	h = hashBytes(h, b[:12])
	et := binary.BigEndian.Uint16(b[12:])
	b = b[14:]
	for i := 0; i < 2 && (et == etherTypeVLAN || et == etherTypeQinQ) && len(b) >= 4; i++ {
		et = binary.BigEndian.Uint16(b[2:])
		b = b[4:]
	}
	h = hashBytes(h, []byte{byte(et >> 8), byte(et)})
	switch et {
	case etherTypeIPv4:
		h = hashIPv4(h, b)
	case etherTypeIPv6:
		h = hashIPv6(h, b)
	}
	return SrcPortMin + uint16(mix(h)%srcPortRangeLen)
}

// hashIPv4 adds the addresses, protocol and ports of an IPv4 packet to h.
func hashIPv4(h uint64, b []byte) uint64 {
	if len(b) < 20 || b[0]>>4 != 4 {
		return h
	}
	ihl := int(b[0]&0x0F) * 4
	proto := b[9]
	h = hashBytes(h, b[9:10])
	h = hashBytes(h, b[12:20])
	fragOff := binary.BigEndian.Uint16(b[6:]) & 0x1FFF
	if fragOff != 0 || ihl < 20 || len(b) < ihl+4 {
		return h
	}
	return hashPorts(h, proto, b[ihl:])
}

// hashIPv6 adds the addresses, next header and ports of an IPv6 packet to h.
func hashIPv6(h uint64, b []byte) uint64 {
	if len(b) < 40 || b[0]>>4 != 6 {
		return h
	}
	h = hashBytes(h, b[6:7])
	h = hashBytes(h, b[8:40])
	return hashPorts(h, b[6], b[40:])
}

// hashPorts adds the 4 port bytes of a TCP, UDP or SCTP header to h.
func hashPorts(h uint64, proto uint8, l4 []byte) uint64 {
	if (proto == protoTCP || proto == protoUDP || proto == protoSCTP) && len(l4) >= 4 {
		h = hashBytes(h, l4[:4])
	}
	return h
}

// hashBytes is FNV-1a over b.
func hashBytes(h uint64, b []byte) uint64 {
	for _, x := range b {
		h ^= uint64(x)
		h *= fnvPrime64
	}
	return h
}

// mix is a final avalanche (the murmur3 finaliser) so that the low bits depend on all bytes.
func mix(h uint64) uint64 {
	h ^= h >> 33
	h *= 0xff51afd7ed558ccd
	h ^= h >> 33
	h *= 0xc4ceb9fe1a85ec53
	h ^= h >> 33
	return h
}
