package bpf

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"

	"github.com/cilium/ebpf"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// fastObjects are the mode=udp fast path's programs and maps (udpfast.h), loaded alone.
type fastObjects struct {
	Rx      *ebpf.Program `ebpf:"sclp_udp_rx"`
	Tx      *ebpf.Program `ebpf:"sclp_udp_tx"`
	TxSock  *ebpf.Program `ebpf:"sclp_udp_txsock"`
	RxPorts *ebpf.Map     `ebpf:"udp_rx_ports"`
	TxPorts *ebpf.Map     `ebpf:"udp_tx_ports"`
	Locals  *ebpf.Map     `ebpf:"udp_locals"`
	Stats   *ebpf.Map     `ebpf:"udp_stats"`
}

const (
	fastPort     = 4795
	fastTunnel   = 9 // redirect target of sclp_udp_rx (not executed by a test run)
	fastUnderlay = 7 // redirect target of sclp_udp_tx
	actNext      = 0xffffffff
	// Indexes of enum udp_stat.
	ustRxFrames   = 0
	ustRxChecked  = 2
	ustRxPassGSO  = 4
	ustRxMulti    = 5
	ustRxNoPort   = 6
	ustRxDropCsum = 9
	ustTxFrames   = 11
	ustRxOrder    = 15
)

// loadFast loads the fast path's objects with one port each way (taking every frame that
// fits: UDPFastAllFrames; TestUDPFastOrderSafe clears it): transmit on the test
// run's device (loopback, ifindex 1) from localB to peerA, receive from peerA to localB.
func loadFast(tb testing.TB) *fastObjects {
	tb.Helper()
	testbed.RequireRoot(tb)
	spec, err := Spec()
	if err != nil {
		tb.Fatal(err)
	}
	var o fastObjects
	if err := spec.LoadAndAssign(&o, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() {
		for _, c := range []interface{ Close() error }{o.Rx, o.Tx, o.TxSock, o.RxPorts, o.TxPorts, o.Locals, o.Stats} {
			c.Close()
		}
	})
	tx := SclpUdpTxPort{Local: be32(localB), Peer: be32(peerA), Vni: testVNI, Ifindex: fastUnderlay,
		MaxFrame: 1500 - 48, Port: fastPort, Dmac: macA, Smac: macB, Flags: UDPFastAllFrames}
	if err := o.TxPorts.Put(uint32(1), tx); err != nil {
		tb.Fatal(err)
	}
	rk := SclpUdpRxKey{Peer: be32(localB), Local: be32(peerA), Vni: testVNI, Port: fastPort}
	if err := o.RxPorts.Put(rk, SclpUdpRxPort{Ifindex: fastTunnel, Mtu: 1500, Flags: UDPFastAllFrames}); err != nil {
		tb.Fatal(err)
	}
	if err := o.Locals.Put(SclpUdpLocalKey{Addr: be32(peerA), Port: fastPort}, uint32(1)); err != nil {
		tb.Fatal(err)
	}
	return &o
}

func (o *fastObjects) counter(tb testing.TB, i int) uint64 {
	tb.Helper()
	var per []SclpUdpCounters
	if err := o.Stats.Lookup(uint32(0), &per); err != nil {
		tb.Fatal(err)
	}
	var n uint64
	for _, c := range per {
		n += c.C[i]
	}
	return n
}

// checkOuter verifies a datagram sclp_udp_tx built around frame with Go's parsers: MACs,
// IPv4 header and checksum, UDP ports (the source port is sclp.SourcePort of the frame) and
// checksum, SCLP header (F, remaining 0, checksum 0), VXLAN and the frame itself.
func checkOuter(tb testing.TB, out, frame []byte) {
	tb.Helper()
	if len(out) != 62+len(frame) {
		tb.Fatalf("encapsulated %d bytes into %d, want %d", len(frame), len(out), 62+len(frame))
	}
	if [6]byte(out[0:6]) != macA || [6]byte(out[6:12]) != macB || binary.BigEndian.Uint16(out[12:]) != 0x0800 {
		tb.Fatalf("outer Ethernet % x", out[:14])
	}
	ip := out[14:34]
	if ip[0] != 0x45 || ip[9] != 17 || binary.BigEndian.Uint16(ip[2:]) != uint16(len(out)-14) ||
		binary.BigEndian.Uint16(ip[6:]) != 0x4000 || sclp.Fold(sclp.Sum(ip, 0)) != 0xffff {
		tb.Fatalf("outer IPv4 % x", ip)
	}
	if [4]byte(ip[12:16]) != localB.As4() || [4]byte(ip[16:20]) != peerA.As4() {
		tb.Fatalf("outer addresses % x", ip[12:20])
	}
	udp := out[34:]
	sport := sclp.SourcePort(frame)
	if binary.BigEndian.Uint16(udp[0:]) != sport || binary.BigEndian.Uint16(udp[2:]) != fastPort ||
		binary.BigEndian.Uint16(udp[4:]) != uint16(len(udp)) {
		tb.Fatalf("UDP header % x, want source port %d (sclp.SourcePort)", udp[:8], sport)
	}
	ps := sclp.Sum(ip[12:20], 17+uint64(len(udp)))
	if sclp.Fold(sclp.Sum(udp, ps)) != 0xffff {
		tb.Fatalf("UDP checksum does not verify")
	}
	var h sclp.Header
	if err := h.UnmarshalBinary(udp[8:20]); err != nil {
		tb.Fatal(err)
	}
	if !h.First || h.Remaining != 0 || h.SrcPort != sport || h.DstPort != sclp.VXLANPort || h.Checksum != 0 {
		tb.Fatalf("SCLP header %+v", h)
	}
	vni, inner, err := sclp.ParseVXLAN(udp[20:])
	if err != nil || vni != testVNI {
		tb.Fatalf("VXLAN: vni %d, %v", vni, err)
	}
	equalBytes(tb, "frame", inner, frame)
}

// TestUDPFastRoundTrip: frames of every size up to the port's max_frame go through
// sclp_udp_tx (checked by Go's parsers, the flow hash equal to sclp.SourcePort) and back
// through sclp_udp_rx, which verifies the UDP checksum itself (a test run's skb is
// CHECKSUM_NONE) and returns the frame with its inner UDP checksum finished; one byte more
// than max_frame is left to the packet socket.
func TestUDPFastRoundTrip(t *testing.T) {
	o := loadFast(t)
	r := rand.New(rand.NewPCG(5, 6))
	for i := range 64 {
		n := 60 + r.IntN(1500-48-60+1)
		if i == 0 {
			n = 1500 - 48
		}
		frame := innerFrame(r, n) // inner UDP checksum random: not finished
		ret, out := run(t, o.Tx, frame)
		if ret != actRedirect {
			t.Fatalf("%d-byte frame: tx verdict %d", n, ret)
		}
		checkOuter(t, out, frame)
		ret, back := run(t, o.Rx, out)
		if ret != actRedirect {
			t.Fatalf("%d-byte frame: rx verdict %d", n, ret)
		}
		if len(back) != n {
			t.Fatalf("rx returned %d bytes, want %d", len(back), n)
		}
		equalBytes(t, "inner headers", back[:40], frame[:40])
		equalBytes(t, "inner payload", back[42:], frame[42:])
		ip, udp := back[14:34], back[34:]
		ps := sclp.Sum(ip[12:20], 17+uint64(len(udp)))
		if sclp.Fold(sclp.Sum(udp, ps)) != 0xffff {
			t.Fatalf("%d-byte frame: inner UDP checksum not finished", n)
		}
	}
	if got := o.counter(t, ustTxFrames); got != 64 {
		t.Errorf("tx frames %d, want 64", got)
	}
	if got, chk := o.counter(t, ustRxFrames), o.counter(t, ustRxChecked); got != 64 || chk != 64 {
		t.Errorf("rx frames %d, checksums checked %d, want 64 and 64", got, chk)
	}
	if ret, _ := run(t, o.Tx, innerFrame(r, 1500-48+1)); ret != actNext {
		t.Errorf("a frame above max_frame: tx verdict %d, want TC_ACT_UNSPEC", ret)
	}
}

// TestUDPFastRxRefuses: what sclp_udp_rx leaves to the socket or drops, by counter.
func TestUDPFastRxRefuses(t *testing.T) {
	o := loadFast(t)
	r := rand.New(rand.NewPCG(7, 8))
	frame := innerFrame(r, 300)
	_, good := run(t, o.Tx, frame)
	good = append([]byte(nil), good...)
	fixUDP := func(p []byte) {
		udp := p[34:]
		udp[6], udp[7] = 0, 0
		c := ^sclp.Fold(sclp.Sum(udp, sclp.Sum(p[26:34], 17+uint64(len(udp)))))
		binary.BigEndian.PutUint16(udp[6:], c)
	}
	cases := []struct {
		name    string
		edit    func(p []byte)
		gso     bool
		verdict uint32
		counter int
	}{
		{"bad UDP checksum", func(p []byte) { p[len(p)-1] ^= 0xff }, false, actShot, ustRxDropCsum},
		{"multi-segment", func(p []byte) { p[51] = 1; fixUDP(p) }, false, actNext, ustRxMulti},
		{"unknown VNI", func(p []byte) { p[60]++; fixUDP(p) }, false, actNext, ustRxNoPort},
		{"GRO-merged", func(p []byte) {}, true, actNext, ustRxPassGSO},
	}
	for _, c := range cases {
		p := append([]byte(nil), good...)
		c.edit(p)
		before := o.counter(t, c.counter)
		opts := ebpf.RunOptions{Data: p, DataOut: make([]byte, len(p)+256)}
		if c.gso {
			var ctx [192]byte // struct __sk_buff: gso_segs at 164, gso_size at 176
			binary.LittleEndian.PutUint32(ctx[164:], 2)
			binary.LittleEndian.PutUint32(ctx[176:], 100)
			opts.Context = ctx[:]
		}
		ret, err := o.Rx.Run(&opts)
		if err != nil {
			t.Fatalf("%s: run: %v", c.name, err)
		}
		if ret != c.verdict || o.counter(t, c.counter) != before+1 {
			t.Errorf("%s: verdict %#x (want %#x), counter %d -> %d", c.name, ret, c.verdict, before, o.counter(t, c.counter))
		}
	}
}

// l4Frame builds an Ethernet frame with an IPv4 or IPv6 header, protocol proto and an L4
// part of n random bytes whose checksum field (TCP or UDP) holds garbage.
func l4Frame(r *rand.Rand, v6 bool, proto uint8, n int) []byte {
	ipl := 20
	et := uint16(0x0800)
	if v6 {
		ipl, et = 40, 0x86dd
	}
	f := make([]byte, 14+ipl+n)
	for i := range f {
		f[i] = byte(r.Uint32())
	}
	copy(f[0:6], []byte{0x02, 1, 2, 3, 4, 5})
	copy(f[6:12], []byte{0x02, 6, 7, 8, 9, 10})
	binary.BigEndian.PutUint16(f[12:], et)
	ip := f[14 : 14+ipl]
	if v6 {
		ip[0], ip[1], ip[2], ip[3] = 0x60, 0, 0, 0
		binary.BigEndian.PutUint16(ip[4:], uint16(n))
		ip[6], ip[7] = proto, 64
	} else {
		ip[0], ip[1] = 0x45, 0
		binary.BigEndian.PutUint16(ip[2:], uint16(20+n))
		binary.BigEndian.PutUint16(ip[6:], 0x4000)
		ip[8], ip[9], ip[10], ip[11] = 64, proto, 0, 0
		binary.BigEndian.PutUint16(ip[10:], ^sclp.Fold(sclp.Sum(ip, 0)))
	}
	if proto == 17 {
		binary.BigEndian.PutUint16(f[14+ipl+4:], uint16(n))
	}
	return f
}

// l4OK reports whether the TCP/UDP checksum of a frame from l4Frame verifies.
func l4OK(f []byte, v6 bool, proto uint8) bool {
	ipl, addrs := 20, f[26:34]
	if v6 {
		ipl, addrs = 40, f[22:54]
	}
	l4 := f[14+ipl:]
	return sclp.Fold(sclp.Sum(l4, sclp.Sum(addrs, uint64(proto)+uint64(len(l4))))) == 0xffff
}

// TestUDPFastRxInnerChecksums: sclp_udp_rx finishes the inner TCP and UDP checksums of IPv4
// and IPv6 frames (a sender that read them CHECKSUM_PARTIAL sent the field unfinished),
// delivers ICMP and ARP frames untouched, and leaves to the socket what it cannot finish
// (IPv6 with a hop-by-hop header, VLAN-tagged frames).
func TestUDPFastRxInnerChecksums(t *testing.T) {
	o := loadFast(t)
	r := rand.New(rand.NewPCG(9, 10))
	opts := sclp.PacketOptions{DstMAC: macB, SrcMAC: macA, Src: localB, Dst: peerA, UDPDstPort: fastPort}
	for _, c := range []struct {
		name   string
		v6     bool
		proto  uint8
		n      int
		finish bool   // the L4 checksum must verify afterwards
		want   uint32 // verdict
		edit   func(f []byte)
	}{
		{"ipv4 tcp", false, 6, 32, true, actRedirect, nil},
		{"ipv4 tcp odd", false, 6, 1001, true, actRedirect, nil},
		{"ipv4 udp", false, 17, 333, true, actRedirect, nil},
		{"ipv6 tcp", true, 6, 700, true, actRedirect, nil},
		{"ipv6 udp", true, 17, 41, true, actRedirect, nil},
		{"ipv4 icmp", false, 1, 64, false, actRedirect, nil},
		{"ipv6 hop-by-hop", true, 0, 64, false, actNext, nil},
		{"vlan", false, 6, 64, false, actNext, func(f []byte) { binary.BigEndian.PutUint16(f[12:], 0x8100) }},
	} {
		frame := l4Frame(r, c.v6, c.proto, c.n)
		if c.edit != nil {
			c.edit(frame)
		}
		pkt, err := sclp.AppendPacket(nil, opts, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: 2, First: true},
			message(testVNI, frame))
		if err != nil {
			t.Fatal(err)
		}
		ret, out := run(t, o.Rx, pkt)
		if ret != c.want {
			t.Errorf("%s: verdict %#x, want %#x", c.name, ret, c.want)
			continue
		}
		if ret != actRedirect {
			continue
		}
		if len(out) != len(frame) {
			t.Fatalf("%s: %d bytes delivered, want %d", c.name, len(out), len(frame))
		}
		if c.finish && !l4OK(out, c.v6, c.proto) {
			t.Errorf("%s: inner checksum not finished", c.name)
		}
		if !c.finish {
			equalBytes(t, c.name, out, frame)
		}
	}
}

// tcpFrame is an Ethernet + IPv4 + TCP frame (20-byte TCP header) with the given flags and
// payload length, padded with zeros to pad bytes if longer.
func tcpFrame(flags byte, payload, pad int) []byte {
	n := 14 + 20 + 20 + payload
	f := make([]byte, max(n, pad))
	copy(f[0:6], []byte{0x02, 1, 2, 3, 4, 5})
	copy(f[6:12], []byte{0x02, 6, 7, 8, 9, 10})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	copy(ip[12:], []byte{192, 168, 1, 1, 192, 168, 1, 2})
	binary.BigEndian.PutUint16(ip[10:], ^sclp.Fold(sclp.Sum(ip[:20], 0)))
	tcp := ip[20:]
	binary.BigEndian.PutUint16(tcp[0:], 40000)
	binary.BigEndian.PutUint16(tcp[2:], 5201)
	tcp[12], tcp[13] = 5<<4, flags
	for i := range payload {
		tcp[20+i] = byte(i)
	}
	return f
}

// TestUDPFastOrderSafe: without UDPFastAllFrames the fast path takes, both ways, only frames
// that may overtake the rest of their flow (which takes the userspace path for its large
// messages): TCP ACKs without payload (also padded to the Ethernet minimum) and ICMP; TCP
// with payload, SYN, FIN, RST and UDP go to the packet socket on transmit (the socket filter
// agrees with the tc program on every frame) and to the UDP socket on receive (counted).
func TestUDPFastOrderSafe(t *testing.T) {
	o := loadFast(t)
	r := rand.New(rand.NewPCG(7, 8))
	icmp := innerFrame(r, 98)
	icmp[14+9] = 1
	binary.BigEndian.PutUint16(icmp[14+10:], 0)
	binary.BigEndian.PutUint16(icmp[14+10:], ^sclp.Fold(sclp.Sum(icmp[14:34], 0)))
	sctp := innerFrame(r, 120)
	sctp[14+9] = 132
	binary.BigEndian.PutUint16(sctp[14+10:], 0)
	binary.BigEndian.PutUint16(sctp[14+10:], ^sclp.Fold(sclp.Sum(sctp[14:34], 0)))
	const ack, psh, syn, fin, rst = 0x10, 0x08, 0x02, 0x01, 0x04
	cases := []struct {
		name  string
		frame []byte
		safe  bool
	}{
		{"ack", tcpFrame(ack, 0, 0), true},
		{"ack padded to 60 bytes", tcpFrame(ack, 0, 60), true},
		{"icmp", icmp, true},
		{"tcp data", tcpFrame(ack|psh, 100, 0), false},
		{"tcp 1 byte", tcpFrame(ack, 1, 0), false},
		{"syn", tcpFrame(syn, 0, 0), false},
		{"fin", tcpFrame(fin|ack, 0, 0), false},
		{"rst", tcpFrame(rst|ack, 0, 0), false},
		{"udp", innerFrame(r, 200), false},
	}
	setFlags := func(flags uint8) {
		var tx SclpUdpTxPort
		if err := o.TxPorts.Lookup(uint32(1), &tx); err != nil {
			t.Fatal(err)
		}
		tx.Flags = flags
		if err := o.TxPorts.Put(uint32(1), tx); err != nil {
			t.Fatal(err)
		}
		rk := SclpUdpRxKey{Peer: be32(localB), Local: be32(peerA), Vni: testVNI, Port: fastPort}
		if err := o.RxPorts.Put(rk, SclpUdpRxPort{Ifindex: fastTunnel, Mtu: 1500, Flags: uint32(flags)}); err != nil {
			t.Fatal(err)
		}
	}
	// SCTP is never sent by BPF, even taking all frames: its partial checksum is a CRC32c.
	for _, flags := range []uint8{UDPFastAllFrames, 0} {
		setFlags(flags)
		if ret, _ := run(t, o.Tx, sctp); ret != actNext {
			t.Errorf("sctp, flags %d: tx verdict %#x, want TC_ACT_UNSPEC", flags, ret)
		}
		if ret, _ := run(t, o.TxSock, append(append([]byte(nil), sctp[:14]...), sctp...)); ret == 0 {
			t.Errorf("sctp, flags %d: the socket filter skips it", flags)
		}
	}
	for _, c := range cases {
		// The datagram the sender would build (all frames), for the receive side.
		setFlags(UDPFastAllFrames)
		ret, dgram := run(t, o.Tx, c.frame)
		if ret != actRedirect {
			t.Fatalf("%s: all-frames tx verdict %#x", c.name, ret)
		}
		setFlags(0)
		txRet, _ := run(t, o.Tx, c.frame)
		// A test run of a socket filter pulls an Ethernet header (data then starts at the IP
		// header); a packet socket runs it with data at the MAC header. So the filter gets
		// the frame behind a copy of its own Ethernet header, as a packet socket shows it.
		sockRet, _ := run(t, o.TxSock, append(append([]byte(nil), c.frame[:14]...), c.frame...))
		order := o.counter(t, ustRxOrder)
		rxRet, _ := run(t, o.Rx, dgram)
		passed := o.counter(t, ustRxOrder) - order
		if took := txRet == actRedirect; took != c.safe {
			t.Errorf("%s: tx verdict %#x, want taken %v", c.name, txRet, c.safe)
		}
		if skip := sockRet == 0; skip != (txRet == actRedirect) {
			t.Errorf("%s: socket filter %#x disagrees with tx verdict %#x (a frame sent twice or never)", c.name, sockRet, txRet)
		}
		if took := rxRet == actRedirect; took != c.safe || passed != map[bool]uint64{true: 0, false: 1}[c.safe] {
			t.Errorf("%s: rx verdict %#x, order passes %d, want taken %v", c.name, rxRet, passed, c.safe)
		}
	}
}
