package fallback

import (
	"encoding/binary"
	"errors"
	"testing"
)

func TestVnetHdrRoundTrip(t *testing.T) {
	h := VnetHdr{Flags: 1, GSOType: 0x81, HdrLen: 54, GSOSize: 1448, CsumStart: 34, CsumOffset: 16}
	b, _ := h.MarshalBinary()
	want := []byte{1, 0x81, 54, 0, 0xa8, 5, 34, 0, 16, 0}
	if string(b) != string(want) {
		t.Fatalf("marshal = % x, want % x", b, want)
	}
	var g VnetHdr
	if err := g.UnmarshalBinary(b); err != nil || g != h {
		t.Fatalf("unmarshal = %+v, %v", g, err)
	}
	if err := g.UnmarshalBinary(b[:9]); err == nil {
		t.Fatal("short header accepted")
	}
}

func TestPrepareFrameTCPGSO(t *testing.T) {
	f := testFrame(protoTCP, 64000, tcpFlagCWR)
	h, err := PrepareFrame(f, 1500)
	if err != nil {
		t.Fatal(err)
	}
	want := VnetHdr{Flags: VnetFlagNeedsCsum, GSOType: VnetGSOTCPv4 | VnetGSOECN, HdrLen: 54,
		GSOSize: 1460, CsumStart: 34, CsumOffset: 16}
	if h != want {
		t.Fatalf("header = %+v, want %+v", h, want)
	}
	// Pseudo-header sum: addresses + proto + TCP length, folded, not inverted.
	ip := f[14:34]
	ps := sum16(ip[12:20]) + protoTCP + uint32(20+64000)
	if got := binary.BigEndian.Uint16(f[34+16:]); got != fold32(ps) {
		t.Fatalf("checksum field = %#x, want %#x", got, fold32(ps))
	}
}

func TestPrepareFrameSmall(t *testing.T) {
	f := testFrame(protoTCP, 100, 0)
	h, err := PrepareFrame(f, 1500)
	if err != nil || h.GSOType != VnetGSONone || h.Flags != VnetFlagNeedsCsum || h.CsumOffset != 16 {
		t.Fatalf("small tcp: %+v %v", h, err)
	}
	u := testFrame(protoUDP, 1000, 0)
	h, err = PrepareFrame(u, 1500)
	if err != nil || h.GSOType != VnetGSONone || h.CsumOffset != 6 || h.CsumStart != 34 || h.HdrLen != 42 {
		t.Fatalf("small udp: %+v %v", h, err)
	}
	big := testFrame(protoUDP, 60000, 0)
	if _, err := PrepareFrame(big, 1500); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("60 KB udp over mtu 1500: %v", err)
	}
	if h, err := PrepareFrame(big, 65000); err != nil || h.GSOType != VnetGSONone {
		t.Fatalf("60 KB udp at mtu 65000: %+v %v", h, err)
	}
	arp := make([]byte, 42)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	if h, err := PrepareFrame(arp, 1500); err != nil || h != (VnetHdr{}) {
		t.Fatalf("arp: %+v %v", h, err)
	}
	if _, err := PrepareFrame(arp[:10], 1500); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("short: %v", err)
	}
}

func TestPrepareFrameTruncated(t *testing.T) {
	f := testFrame(protoTCP, 3000, 0)
	for n := 0; n < 60; n++ {
		_, _ = PrepareFrame(f[:n], 1500) // must not panic
	}
	if _, err := PrepareFrame(f[:1000], 1500); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("truncated: %v", err)
	}
}

func TestPrepareFrameAllocs(t *testing.T) {
	f := testFrame(protoTCP, 64000, 0)
	if n := testing.AllocsPerRun(100, func() { _, _ = PrepareFrame(f, 1500) }); n != 0 {
		t.Fatalf("PrepareFrame allocates %v times", n)
	}
}

func FuzzPrepareFrame(f *testing.F) {
	f.Add(testFrame(protoTCP, 3000, 0), 1500)
	f.Add(testFrame(protoUDP, 100, 0), 1500)
	f.Fuzz(func(t *testing.T, b []byte, mtu int) {
		if mtu < 68 || mtu > 65535 {
			mtu = 1500
		}
		h, err := PrepareFrame(b, mtu)
		if err != nil {
			return
		}
		if h.Flags&VnetFlagNeedsCsum != 0 && int(h.CsumStart)+int(h.CsumOffset)+2 > len(b) {
			t.Fatalf("checksum offset %d+%d beyond %d-byte frame", h.CsumStart, h.CsumOffset, len(b))
		}
		if h.GSOType != VnetGSONone && (h.GSOSize == 0 || int(h.HdrLen) > len(b)) {
			t.Fatalf("bad gso header %+v for %d bytes", h, len(b))
		}
	})
}

// v6Frame is an Ethernet (optionally VLAN-tagged) + IPv6 + TCP frame with payload bytes.
func v6Frame(payload int, vlan bool) []byte {
	l2 := 14
	if vlan {
		l2 = 18
	}
	f := make([]byte, l2+40+20+payload)
	if vlan {
		binary.BigEndian.PutUint16(f[12:], etherTypeVLAN)
		binary.BigEndian.PutUint16(f[14:], 7)
	}
	binary.BigEndian.PutUint16(f[l2-2:], etherTypeIPv6)
	ip := f[l2:]
	ip[0] = 6 << 4
	binary.BigEndian.PutUint16(ip[4:], uint16(20+payload))
	ip[6], ip[7] = protoTCP, 64
	ip[8+15], ip[24+15] = 1, 2 // ::1 -> ::2
	ip[40+12] = 5 << 4
	return f
}

func TestPrepareFrameIPv6VLAN(t *testing.T) {
	f := v6Frame(30000, true)
	h, err := PrepareFrame(f, 1500)
	if err != nil {
		t.Fatal(err)
	}
	want := VnetHdr{Flags: VnetFlagNeedsCsum, GSOType: VnetGSOTCPv6, HdrLen: 18 + 40 + 20,
		GSOSize: 1500 - 40 - 20, CsumStart: 18 + 40, CsumOffset: 16}
	if h != want {
		t.Fatalf("header %+v, want %+v", h, want)
	}
	// Pseudo-header: ::1 + ::2 + TCP length + next header.
	if got := binary.BigEndian.Uint16(f[18+40+16:]); got != fold32(1+2+uint32(20+30000)+protoTCP) {
		t.Fatalf("checksum field %#x", got)
	}
	// The same frame given as a head of 200 bytes and its full length gives the same header.
	g := v6Frame(30000, true)
	if h2, err := prepareFrame(g[:200], len(g), 1500); err != nil || h2 != want {
		t.Fatalf("head-only: %+v %v", h2, err)
	}
	if _, err := prepareFrame(g[:60], len(g), 1500); !errors.Is(err, ErrShortFrame) {
		t.Fatalf("head without the TCP header: %v", err)
	}
}
