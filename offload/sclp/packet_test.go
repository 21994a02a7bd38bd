package sclp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"testing"
)

var (
	outerA = netip.MustParseAddr("10.1.0.1")
	outerB = netip.MustParseAddr("10.1.0.2")
)

func TestVXLANRoundTrip(t *testing.T) {
	b := make([]byte, VXLANHeaderLen+3)
	PutVXLAN(b, 0x123456)
	if !bytes.Equal(b[:8], []byte{0x08, 0, 0, 0, 0x12, 0x34, 0x56, 0}) {
		t.Fatalf("bytes %x", b[:8])
	}
	vni, inner, err := ParseVXLAN(b)
	if err != nil || vni != 0x123456 || len(inner) != 3 {
		t.Fatalf("parse: %d %d %v", vni, len(inner), err)
	}
	if _, _, err := ParseVXLAN(b[:7]); !errors.Is(err, ErrShort) {
		t.Fatalf("short: %v", err)
	}
	for _, i := range []int{0, 3, 7} {
		c := append([]byte(nil), b...)
		c[i] ^= 1
		if _, _, err := ParseVXLAN(c); !errors.Is(err, ErrBadVXLAN) {
			t.Fatalf("byte %d flipped: %v", i, err)
		}
	}
}

func TestPacketRoundTrip(t *testing.T) {
	chunk := []byte("the quick brown fox jumps over the lazy dog!")
	h := Header{SrcPort: 50123, DstPort: VXLANPort, ID: 0xABCDEF00, First: true, Remaining: 77}
	for _, udp := range []uint16{0, 4795} {
		o := PacketOptions{SrcMAC: [6]byte{2, 0, 0, 0, 0, 1}, DstMAC: [6]byte{2, 0, 0, 0, 0, 2}, Src: outerA, Dst: outerB, UDPDstPort: udp}
		pkt, err := AppendPacket(nil, o, h, chunk)
		if err != nil || len(pkt) != o.PacketLen(len(chunk)) {
			t.Fatalf("udp %d: append: %v, len %d", udp, err, len(pkt))
		}
		if pkt[14+6]&0x40 == 0 || Checksum(pkt[14:34]) != 0 {
			t.Fatalf("udp %d: DF or ip checksum wrong", udp)
		}
		// Ethernet padding after the IPv4 total length is ignored.
		p, err := ParseFrame(append(pkt, 0, 0, 0), ParseOptions{UDPPort: 4795, Verify: true})
		if err != nil {
			t.Fatalf("udp %d: parse: %v", udp, err)
		}
		wantH := h
		if udp == 0 {
			wantH.Checksum = SegmentChecksum(h, chunk)
			if pkt[14+9] != IPProtocol {
				t.Fatalf("protocol %d", pkt[14+9])
			}
		} else if p.OuterSrcPort != h.SrcPort || p.OuterDstPort != udp {
			t.Fatalf("udp ports %d %d", p.OuterSrcPort, p.OuterDstPort)
		}
		if p.Src != outerA || p.Dst != outerB || p.Header != wantH || !bytes.Equal(p.Payload, chunk) {
			t.Fatalf("udp %d: parsed %+v", udp, p)
		}
		// Any flipped payload bit is caught by the checksum (SCLP or UDP).
		bad := append([]byte(nil), pkt...)
		bad[len(bad)-1] ^= 0x10
		if _, err := ParseFrame(bad, ParseOptions{UDPPort: 4795, Verify: true}); !errors.Is(err, ErrChecksum) {
			t.Fatalf("udp %d: corrupted: %v", udp, err)
		}
		if _, err := ParseFrame(pkt[:len(pkt)-1], ParseOptions{UDPPort: 4795}); !errors.Is(err, ErrShort) {
			t.Fatalf("udp %d: truncated: %v", udp, err)
		}
		if udp != 0 {
			if _, err := ParseFrame(pkt, ParseOptions{}); !errors.Is(err, ErrNotSCLP) {
				t.Fatalf("udp without port: %v", err)
			}
		}
	}
}

func TestParseIPv4Errors(t *testing.T) {
	o := PacketOptions{NoEthernet: true, Src: outerA, Dst: outerB}
	pkt, _ := AppendPacket(nil, o, Header{ID: 2, First: true}, []byte{1, 2, 3})
	src, dst, h, payload, err := ParseIPv4(pkt, true)
	if err != nil || src != outerA || dst != outerB || !h.First || len(payload) != 3 {
		t.Fatalf("parse: %v", err)
	}
	cases := map[string]struct {
		mut  func(b []byte) []byte
		want error
	}{
		"short":     {func(b []byte) []byte { return b[:19] }, ErrShort},
		"version":   {func(b []byte) []byte { b[0] = 0x65; return b }, ErrBadIPv4},
		"ihl":       {func(b []byte) []byte { b[0] = 0x44; return b }, ErrBadIPv4},
		"fragment":  {func(b []byte) []byte { b[6] = 0x20; return b }, ErrBadIPv4},
		"protocol":  {func(b []byte) []byte { b[9] = 6; return b }, ErrNotSCLP},
		"totallen":  {func(b []byte) []byte { b[3] += 10; return b }, ErrShort},
		"sclpshort": {func(b []byte) []byte { b[2], b[3] = 0, 30; return b }, ErrShort},
		"checksum":  {func(b []byte) []byte { b[len(b)-1]++; return b }, ErrChecksum},
		"ipcsum":    {func(b []byte) []byte { b[8]--; return b }, ErrChecksum},
	}
	for name, c := range cases {
		b := c.mut(append([]byte(nil), pkt...))
		if name != "ipcsum" && len(b) >= IPv4HeaderLen && b[0] == 0x45 {
			b[10], b[11] = 0, 0
			cs := Checksum(b[:IPv4HeaderLen])
			b[10], b[11] = byte(cs>>8), byte(cs)
		}
		if _, _, _, _, err := ParseIPv4(b, true); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", name, err, c.want)
		}
	}
	if _, err := AppendPacket(nil, PacketOptions{Src: netip.IPv6Loopback(), Dst: outerB}, Header{}, nil); !errors.Is(err, ErrBadIPv4) {
		t.Fatalf("ipv6 outer: %v", err)
	}
}

func TestAppendPacketAllocs(t *testing.T) {
	buf := make([]byte, 0, 2048)
	chunk := make([]byte, 1468)
	o := PacketOptions{Src: outerA, Dst: outerB}
	if n := testing.AllocsPerRun(100, func() {
		pkt, _ := AppendPacket(buf[:0], o, Header{ID: 2}, chunk)
		_, _ = ParseFrame(pkt, ParseOptions{Verify: true})
	}); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

// innerFrame builds an Ethernet/IPv4/TCP-or-UDP frame header with the given ports.
func innerFrame(proto byte, sport, dport uint16, payload byte) []byte {
	f := make([]byte, 14+20+20+8)
	copy(f[0:12], []byte{2, 0, 0, 0, 0, 0xA, 2, 0, 0, 0, 0, 0xB})
	f[12], f[13] = 0x08, 0x00
	ip := f[14:]
	ip[0], ip[9] = 0x45, proto
	copy(ip[12:20], []byte{192, 168, 1, 1, 192, 168, 1, 2})
	l4 := ip[20:]
	l4[0], l4[1], l4[2], l4[3] = byte(sport>>8), byte(sport), byte(dport>>8), byte(dport)
	f[len(f)-1] = payload
	return f
}

func TestSourcePort(t *testing.T) {
	seen := map[uint16]bool{}
	for sport := uint16(1000); sport < 1200; sport++ {
		a := SourcePort(innerFrame(6, sport, 80, 1))
		b := SourcePort(innerFrame(6, sport, 80, 2)) // same flow, other payload
		if a != b {
			t.Fatalf("sport %d: %d vs %d for one flow", sport, a, b)
		}
		if a < SrcPortMin {
			t.Fatalf("port %d below range", a)
		}
		seen[a] = true
	}
	if len(seen) < 150 {
		t.Fatalf("200 flows hash to only %d ports", len(seen))
	}
	if SourcePort(innerFrame(6, 1, 2, 0)) == SourcePort(innerFrame(17, 1, 2, 0)) &&
		SourcePort(innerFrame(6, 3, 2, 0)) == SourcePort(innerFrame(17, 3, 2, 0)) {
		t.Fatal("protocol not hashed")
	}
	for _, n := range []int{0, 5, 14, 20, 40} {
		if p := SourcePort(innerFrame(6, 1, 2, 0)[:n]); p < SrcPortMin {
			t.Fatalf("truncated %d: %d", n, p)
		}
	}
	f := innerFrame(6, 1, 2, 0)
	if n := testing.AllocsPerRun(100, func() { _ = SourcePort(f) }); n != 0 {
		t.Fatalf("%v allocs", n)
	}
}

func TestIDGenerator(t *testing.T) {
	g := NewIDGenerator(0xFFFFFFFD)
	seen := map[uint32]bool{}
	for i := 0; i < 1000; i++ {
		id := g.Next()
		if id&1 != 0 || seen[id] {
			t.Fatalf("id %#x: bit 0 or repeat", id)
		}
		seen[id] = true
	}
}

// TestParsePartialUDPChecksum: a capture of a packet whose UDP checksum was left to offload
// shows the folded pseudo-header sum; only AcceptPartial lets it pass, and says so.
func TestParsePartialUDPChecksum(t *testing.T) {
	o := PacketOptions{NoEthernet: true, Src: outerA, Dst: outerB, UDPDstPort: 4795}
	pkt, _ := AppendPacket(nil, o, Header{ID: 2, First: true}, []byte("payload"))
	udpLen := len(pkt) - IPv4HeaderLen
	partial := Fold(pseudoSum(outerA, outerB, protoUDP, udpLen))
	pkt[IPv4HeaderLen+6], pkt[IPv4HeaderLen+7] = byte(partial>>8), byte(partial)
	if _, err := ParsePacket(pkt, ParseOptions{UDPPort: 4795, Verify: true}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("partial checksum verified: %v", err)
	}
	p, err := ParsePacket(pkt, ParseOptions{UDPPort: 4795, Verify: true, AcceptPartial: true})
	if err != nil || !p.PartialChecksum {
		t.Fatalf("AcceptPartial: %v %v", err, p.PartialChecksum)
	}
	pkt[IPv4HeaderLen+7]++
	if _, err := ParsePacket(pkt, ParseOptions{UDPPort: 4795, Verify: true, AcceptPartial: true}); !errors.Is(err, ErrChecksum) {
		t.Fatalf("wrong checksum accepted: %v", err)
	}
}

// TestParseLocalChecksumOffload: a one-segment UDP-mode message whose inner TCP checksum was
// left for offload (the field holds the inner pseudo-header sum) while the outer UDP checksum
// was computed for the finished frame, as the mode=udp fast path and kernel VXLAN send a
// CHECKSUM_PARTIAL frame and a veth capture shows it, is accepted with AcceptPartial (marked
// PartialChecksum) and refused without it; a corrupted header byte is refused either way.
func TestParseLocalChecksumOffload(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	isrc, idst := netip.MustParseAddr("192.168.1.1"), netip.MustParseAddr("192.168.1.2")
	// VXLAN + Ethernet + IPv4 + TCP (20 bytes) + 100 bytes of payload, inner checksum finished.
	tcpLen := 20 + 100
	msg := make([]byte, VXLANHeaderLen+14+20+tcpLen)
	PutVXLAN(msg, 7)
	f := msg[VXLANHeaderLen:]
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(20+tcpLen))
	copy(ip[12:], isrc.AsSlice())
	copy(ip[16:], idst.AsSlice())
	binary.BigEndian.PutUint16(ip[10:], ^Fold(Sum(ip[:20], 0)))
	tcp := ip[20:]
	tcp[12] = 5 << 4
	for i := 20; i < tcpLen; i++ {
		tcp[i] = byte(i * 7)
	}
	ipseudo := pseudoSum(isrc, idst, 6, tcpLen)
	binary.BigEndian.PutUint16(tcp[16:], ^Fold(Sum(tcp, ipseudo)))
	pkt, err := AppendPacket(nil, PacketOptions{NoEthernet: true, Src: src, Dst: dst, UDPDstPort: 4795},
		Header{SrcPort: 50000, DstPort: VXLANPort, ID: 2, First: true}, msg)
	if err != nil {
		t.Fatal(err)
	}
	o := ParseOptions{UDPPort: 4795, Verify: true}
	if _, err := ParsePacket(pkt, o); err != nil {
		t.Fatalf("finished frame: %v", err)
	}
	// Leave the inner checksum for offload: the field holds the folded pseudo-header sum.
	lco := append([]byte(nil), pkt...)
	innerTCP := lco[len(lco)-tcpLen:]
	binary.BigEndian.PutUint16(innerTCP[16:], Fold(ipseudo))
	if _, err := ParsePacket(lco, o); !errors.Is(err, ErrChecksum) {
		t.Fatalf("partial inner checksum without AcceptPartial: %v, want ErrChecksum", err)
	}
	o.AcceptPartial = true
	p, err := ParsePacket(lco, o)
	if err != nil || !p.PartialChecksum {
		t.Fatalf("partial inner checksum with AcceptPartial: %v (partial %v)", err, p.PartialChecksum)
	}
	// The outer checksum of such a frame covers everything before the inner TCP segment (the
	// finished segment sums to 0xFFFF whatever it holds, which is why the frame is marked
	// unverified): a corrupted inner IP header is refused.
	bad := append([]byte(nil), lco...)
	bad[len(bad)-tcpLen-20+8] ^= 0x40 // inner TTL
	if _, err := ParsePacket(bad, o); !errors.Is(err, ErrChecksum) {
		t.Fatalf("corrupted inner header: %v, want ErrChecksum", err)
	}
}

// TestParseOffloadedInnerBounds: an inner IPv4 header that claims more than the frame holds
// (IHL 15 in 24 bytes) is refused, not sliced past its end (found in review: a panic in the
// capture tool).
func TestParseOffloadedInnerBounds(t *testing.T) {
	inner := make([]byte, 14+24)
	binary.BigEndian.PutUint16(inner[12:], 0x0800)
	inner[14] = 0x4F // IHL 15: 60-byte header claimed, 24 bytes present
	inner[14+9] = 6
	msg := make([]byte, VXLANHeaderLen+len(inner))
	copy(msg[VXLANHeaderLen:], inner)
	l4 := make([]byte, UDPHeaderLen+HeaderLen+len(msg))
	binary.BigEndian.PutUint16(l4[2:], 4795)
	binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	binary.BigEndian.PutUint16(l4[6:], 0x1234) // wrong checksum
	Header{SrcPort: 50000, DstPort: VXLANPort, ID: 2, First: true}.Put(l4[UDPHeaderLen:])
	copy(l4[UDPHeaderLen+HeaderLen:], msg)
	ip := make([]byte, 20+len(l4))
	ip[0], ip[9], ip[8] = 0x45, 17, 64
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	copy(ip[12:], []byte{10, 0, 0, 1, 10, 0, 0, 2})
	binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:20]))
	copy(ip[20:], l4)
	for _, ihl := range []byte{0x4F, 0x45} { // beyond the frame; inner total length 0
		ip[20+UDPHeaderLen+HeaderLen+VXLANHeaderLen+14] = ihl
		if _, err := ParsePacket(ip, ParseOptions{UDPPort: 4795, Verify: true, AcceptPartial: true}); !errors.Is(err, ErrChecksum) {
			t.Errorf("IHL byte %#x: %v, want ErrChecksum", ihl, err)
		}
	}
}
