package fallback

import (
	"encoding/binary"
	"net/netip"
)

// testFrame builds an Ethernet + IPv4 + TCP (or UDP) frame with payload bytes of pattern, a
// valid IPv4 header checksum and an L4 checksum field holding 0xdead.
func testFrame(proto uint8, payload int, flags uint8) []byte {
	src, dst := netip.MustParseAddr("192.168.7.1"), netip.MustParseAddr("192.168.7.2")
	l4 := 20
	if proto == protoUDP {
		l4 = 8
	}
	f := make([]byte, 14+20+l4+payload)
	copy(f[0:6], []byte{2, 0, 0, 0, 0, 2})
	copy(f[6:12], []byte{2, 0, 0, 0, 0, 1})
	binary.BigEndian.PutUint16(f[12:], etherTypeIPv4)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+l4+payload))
	binary.BigEndian.PutUint16(ip[6:], 0x4000) // DF
	ip[8], ip[9] = 64, proto
	s4, d4 := src.As4(), dst.As4()
	copy(ip[12:16], s4[:])
	copy(ip[16:20], d4[:])
	binary.BigEndian.PutUint16(ip[10:], ^fold32(sum16(ip[:20])))
	t := ip[20:]
	binary.BigEndian.PutUint16(t[0:], 40000)
	binary.BigEndian.PutUint16(t[2:], 5201)
	if proto == protoTCP {
		binary.BigEndian.PutUint32(t[4:], 1000)
		t[12] = 5 << 4
		t[13] = 0x18 | flags // PSH ACK
		binary.BigEndian.PutUint16(t[14:], 65535)
		binary.BigEndian.PutUint16(t[16:], 0xdead)
	} else {
		binary.BigEndian.PutUint16(t[4:], uint16(8+payload))
		binary.BigEndian.PutUint16(t[6:], 0xdead)
	}
	for i := 14 + 20 + l4; i < len(f); i++ {
		f[i] = byte(i * 7)
	}
	return f
}
