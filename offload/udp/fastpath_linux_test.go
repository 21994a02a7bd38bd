//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestFastPathUDPAndPing: with the fast path taking every frame that fits
// (FastPathAllFrames), ping and 1 KB datagrams (one segment each) leave through the transmit
// program and take the receive program on the receiving host, arrive intact, and neither
// the workers nor the userspace injection carry them.
func TestFastPathUDPAndPing(t *testing.T) {
	p := newPair(t, pairOptions{opts: Options{FastPathAllFrames: true}})
	p.ping(t)
	before, before0 := p.dps[1].Stats(), p.dps[0].Stats()
	const n = 1000
	ok, bad, _ := p.udpTransfer(t, n, 1000, 20*time.Microsecond)
	after := p.dps[1].Stats()
	p.dump(t)
	fp := after.FastPath
	t.Logf("fast path on the receiver: %+v", fp)
	if !fp.Loaded {
		t.Fatal("fast path not loaded")
	}
	if bad != 0 || ok < n*95/100 {
		t.Fatalf("udp 1000 B: %d intact, %d corrupt of %d", ok, bad, n)
	}
	fast := after.Ports["sclp1"].RxFastFrames - before.Ports["sclp1"].RxFastFrames
	inj := after.Ports["sclp1"].RxInjectedFrames - before.Ports["sclp1"].RxInjectedFrames
	t.Logf("datagrams: %d intact; frames by BPF %d, by injection %d", ok, fast, inj)
	if info, err := p.dps[1].fast.objs.Rx.Info(); err == nil {
		n, _ := info.VerifiedInstructions()
		t.Logf("sclp_udp_rx: %d instructions verified", n)
	}
	if fast < uint64(ok) {
		t.Errorf("fast path delivered %d frames, want >= %d", fast, ok)
	}
	s0, s1 := before0.Ports["sclp0"], p.dps[0].Stats().Ports["sclp0"]
	txFast, txWorkers := s1.TxFastFrames-s0.TxFastFrames, s1.TxFrames-s0.TxFrames
	t.Logf("sender: %d frames by BPF, %d by the workers", txFast, txWorkers)
	if txFast < uint64(ok) {
		t.Errorf("transmit fast path sent %d frames, want >= %d", txFast, ok)
	}
}

// TestFastPathKeepsFlowOrder: by default the fast path carries pings but not UDP datagrams
// (a UDP flow may mix single datagrams with GSO frames, which take the workers: the fast
// path would let the small ones overtake), so 1 KB datagrams leave through the workers and
// arrive through the userspace injection, intact.
func TestFastPathKeepsFlowOrder(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)                          // resolves the next hop: the transmit entry follows
	time.Sleep(600 * time.Millisecond) // the neighbour refresh (500 ms) writes it
	b0 := p.dps[0].Stats().Ports["sclp0"]
	p.ping(t)
	a0 := p.dps[0].Stats().Ports["sclp0"]
	if pings := a0.TxFastFrames - b0.TxFastFrames; pings < 3 {
		t.Errorf("%d of 3 pings sent by the fast path", pings)
	}
	const n = 300
	ok, bad, _ := p.udpTransfer(t, n, 1000, 20*time.Microsecond)
	z0, z1 := p.dps[0].Stats().Ports["sclp0"], p.dps[1].Stats().Ports["sclp1"]
	t.Logf("udp: %d intact; sender: %d frames by BPF, %d by the workers; receiver: %d by BPF, %d injected",
		ok, z0.TxFastFrames-a0.TxFastFrames, z0.TxFrames-a0.TxFrames, z1.RxFastFrames, z1.RxInjectedFrames)
	if bad != 0 || ok < n*95/100 {
		t.Fatalf("udp 1000 B: %d intact, %d corrupt of %d", ok, bad, n)
	}
	if got := z0.TxFrames - a0.TxFrames; got < uint64(ok) {
		t.Errorf("workers sent %d frames during the UDP transfer, want >= %d (datagrams keep the socket path)", got, ok)
	}
	if got := z1.RxInjectedFrames; got < uint64(ok) {
		t.Errorf("receiver injected %d frames, want >= %d", got, ok)
	}
}

// TestFastPathTCP: a TCP transfer with the fast path on arrives byte-identical; the ACKs
// (one-segment messages) leave through the transmit program and reach the sending host
// through the receive program, the data (multi-segment messages) takes the workers and the
// injection, and every frame a tunnel port sent arrives exactly once (fast path + injection
// = frames sent by the workers + by the program, both ways). The "tx off" variant turns the
// underlays' transmit checksum offload off: the kernel then finishes the inner checksum of
// every CHECKSUM_PARTIAL frame the program encapsulated in software, and the UDP checksum
// the program computed for it (local checksum offload) must still verify.
func TestFastPathTCP(t *testing.T) {
	t.Run("veth", func(t *testing.T) { testFastPathTCP(t, false) })
	t.Run("tx off", func(t *testing.T) { testFastPathTCP(t, true) })
}

func testFastPathTCP(t *testing.T, txOff bool) {
	p := newPair(t, pairOptions{})
	if txOff {
		for _, h := range p.hosts[:2] {
			h.MustRun(t, "ethtool", "-K", h.Underlay, "tx", "off")
		}
	}
	p.ping(t)
	b0, b1 := p.dps[0].Stats(), p.dps[1].Stats()
	p.tcpTransfer(t, 4<<20, 64<<10)
	time.Sleep(200 * time.Millisecond) // the last FIN/ACK in flight
	a0, a1 := p.dps[0].Stats(), p.dps[1].Stats()
	type counts struct{ tx, txFast, fast, inj uint64 }
	d := func(a, b PortStats) counts {
		return counts{a.TxFrames - b.TxFrames, a.TxFastFrames - b.TxFastFrames,
			a.RxFastFrames - b.RxFastFrames, a.RxInjectedFrames - b.RxInjectedFrames}
	}
	c0, c1 := d(a0.Ports["sclp0"], b0.Ports["sclp0"]), d(a1.Ports["sclp1"], b1.Ports["sclp1"])
	t.Logf("data direction: host 0 sent %d frames by workers, %d by BPF; host 1 took %d by BPF, %d by injection", c0.tx, c0.txFast, c1.fast, c1.inj)
	t.Logf("ack direction: host 1 sent %d frames by workers, %d by BPF; host 0 took %d by BPF, %d by injection", c1.tx, c1.txFast, c0.fast, c0.inj)
	t.Logf("host 0 fast path %+v", a0.FastPath)
	t.Logf("host 1 fast path %+v", a1.FastPath)
	sent1 := c1.tx + c1.txFast
	if c0.fast == 0 || c0.fast < sent1/2 {
		t.Errorf("ACKs: %d of %d frames took the receive fast path, want most", c0.fast, sent1)
	}
	if c1.txFast == 0 || c1.txFast < sent1/2 {
		t.Errorf("ACKs: %d of %d frames took the transmit fast path, want most", c1.txFast, sent1)
	}
	if c1.inj == 0 || c0.tx == 0 {
		t.Errorf("data: nothing sent by the workers (%d) or injected on the receiving host (%d)", c0.tx, c1.inj)
	}
	if c0.fast+c0.inj != sent1 || c1.fast+c1.inj != c0.tx+c0.txFast {
		t.Errorf("frames lost or duplicated: host 1 sent %d+%d, host 0 delivered %d+%d; host 0 sent %d+%d, host 1 delivered %d+%d",
			c1.tx, c1.txFast, c0.fast, c0.inj, c0.tx, c0.txFast, c1.fast, c1.inj)
	}
	for i, fp := range []FastPathStats{a0.FastPath, a1.FastPath} {
		if fp.RxDropChecksum != 0 || fp.RxDropError != 0 || fp.TxDropChecksum != 0 || fp.TxDropError != 0 {
			t.Errorf("host %d: fast path drops %+v", i, fp)
		}
	}
}

// probe is one hand-built datagram sent to host 1's port from host 0's underlay (a packet
// socket: CHECKSUM_NONE, so the program verifies the UDP checksum itself).
type probe struct {
	name   string
	src    netip.Addr // outer source
	badSum bool       // corrupt the UDP checksum
	noSum  bool       // send UDP checksum 0
	short  bool       // a UDP payload of 6 bytes: a truncated SCLP header
}

// TestFastPathRejects: hand-built datagrams with a valid UDP checksum (checked by the
// program) are delivered by the fast path with the inner UDP checksum finished; one with a
// bad UDP checksum is dropped and counted by the program (veth GRO leaves it CHECKSUM_NONE;
// a good one GRO marks CHECKSUM_UNNECESSARY, and with GRO off the program verifies it); one without UDP checksum, one
// from a source that is no peer and one with a truncated SCLP header are left to the socket,
// which delivers, counts as unknown peer and counts as short.
func TestFastPathRejects(t *testing.T) {
	// Every frame that fits: the hand-built datagrams carry inner UDP.
	p := newPair(t, pairOptions{opts: Options{FastPathAllFrames: true}})
	p.ping(t)
	h0, h1 := p.hosts[0], p.hosts[1]
	for _, vm := range p.vms { // no IPv6 chatter (router solicitations) in the counters
		vm.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	}
	stranger := h0.Prefix.Masked().Addr().As4()
	stranger[3] = 250
	h0.MustRun(t, "ip", "addr", "add", netip.AddrFrom4(stranger).String()+"/32", "dev", h0.Underlay)
	var dmac net.HardwareAddr
	if err := h1.Do(func() error {
		ifi, err := net.InterfaceByName(h1.Underlay)
		dmac = ifi.HardwareAddr
		return err
	}); err != nil {
		t.Fatal(err)
	}
	var fd int
	if err := h0.Do(func() error {
		ifi, err := net.InterfaceByName(h0.Underlay)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	rx := openVMCapture(t, p.vms[1])

	cases := []struct {
		probe
		groOff                                                                bool // receiving underlay's GRO off: nothing verified the checksum before the program
		fast, checked, dropCsum, noPort, noSum, unknownPeer, short, delivered bool
	}{
		{probe: probe{name: "good", src: h0.IP}, fast: true, delivered: true},
		{probe: probe{name: "good, gro off", src: h0.IP}, groOff: true, fast: true, checked: true, delivered: true},
		{probe: probe{name: "bad checksum", src: h0.IP, badSum: true}, dropCsum: true},
		{probe: probe{name: "no checksum", src: h0.IP, noSum: true}, noSum: true, delivered: true},
		{probe: probe{name: "not a peer", src: netip.AddrFrom4(stranger)}, noPort: true, unknownPeer: true},
		{probe: probe{name: "truncated sclp", src: h0.IP, short: true}, short: true},
	}
	for i, c := range cases {
		if c.groOff {
			h1.MustRun(t, "ethtool", "-K", h1.Underlay, "gro", "off")
		}
		before := p.dps[1].Stats()
		frame := probeFrame(t, c.probe, p, dmac, i)
		if _, err := unix.Write(fd, frame); err != nil {
			t.Fatalf("%s: send: %v", c.name, err)
		}
		got, csumOK := rx.wait(i, 500*time.Millisecond)
		after := p.dps[1].Stats()
		if c.groOff {
			h1.MustRun(t, "ethtool", "-K", h1.Underlay, "gro", "on")
		}
		f0, f1 := before.FastPath, after.FastPath
		t.Logf("%s: delivered %v (inner checksum ok %v); fast path %+v", c.name, got, csumOK, f1)
		check := func(what string, want bool, a, b uint64) {
			if (a != b) != want {
				t.Errorf("%s: %s changed %d -> %d, want change %v", c.name, what, b, a, want)
			}
		}
		check("fast path frames", c.fast, f1.RxFrames, f0.RxFrames)
		check("fast path checksums checked", c.checked, f1.RxChecksumChecked, f0.RxChecksumChecked)
		// With GRO on, veth GRO has verified the checksum (CHECKSUM_UNNECESSARY) before tc.
		if c.fast && !c.checked && f1.RxChecksumTrusted == f0.RxChecksumTrusted {
			t.Errorf("%s: delivered without a checksum checked or trusted", c.name)
		}
		check("fast path checksum drops", c.dropCsum, f1.RxDropChecksum, f0.RxDropChecksum)
		check("fast path unknown (peer, VNI)", c.noPort, f1.RxPassNoPort, f0.RxPassNoPort)
		check("fast path no checksum", c.noSum, f1.RxPassNoChecksum, f0.RxPassNoChecksum)
		check("socket unknown peer", c.unknownPeer, after.RxUnknownPeer, before.RxUnknownPeer)
		check("socket short", c.short, after.RxShort, before.RxShort)
		if got != c.delivered {
			t.Errorf("%s: delivered %v, want %v", c.name, got, c.delivered)
		}
		if c.fast && !csumOK {
			t.Errorf("%s: the fast path delivered the inner UDP checksum unfinished", c.name)
		}
	}
}

// probeFrame builds the outer frame of a probe: a one-segment message to VM 1 whose inner
// UDP datagram (to port 7002, payload "probe N") carries only the pseudo-header sum in its
// checksum field, as a sender reading a CHECKSUM_PARTIAL frame sends it.
func probeFrame(t testing.TB, c probe, p *pair, dmac net.HardwareAddr, n int) []byte {
	t.Helper()
	payload := []byte(fmt.Sprintf("probe %d", n))
	inner := make([]byte, 14+20+8+len(payload))
	copy(inner[0:6], p.vms[1].MAC)
	copy(inner[6:12], p.vms[0].MAC)
	binary.BigEndian.PutUint16(inner[12:], 0x0800)
	ip := inner[14:]
	ip[0], ip[8], ip[9] = 0x45, 64, 17
	binary.BigEndian.PutUint16(ip[2:], uint16(20+8+len(payload)))
	s, d := p.vms[0].IP.As4(), p.vms[1].IP.As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	binary.BigEndian.PutUint16(ip[10:], sclp.Checksum(ip[:20]))
	u := ip[20:]
	binary.BigEndian.PutUint16(u[0:], 40000)
	binary.BigEndian.PutUint16(u[2:], 7002)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(payload)))
	copy(u[8:], payload)
	ps := uint64(binary.BigEndian.Uint16(s[0:])) + uint64(binary.BigEndian.Uint16(s[2:])) +
		uint64(binary.BigEndian.Uint16(d[0:])) + uint64(binary.BigEndian.Uint16(d[2:])) + 17 + uint64(len(u))
	binary.BigEndian.PutUint16(u[6:], sclp.Fold(ps)) // not final (CHECKSUM_PARTIAL style)

	msg := make([]byte, sclp.VXLANHeaderLen+len(inner))
	copy(msg[sclp.VXLANHeaderLen:], inner)
	sclp.PutVXLAN(msg, p.specs[1].VNI)
	o := sclp.PacketOptions{Src: c.src, Dst: p.hosts[1].IP, UDPDstPort: offload.DefaultUDPPort}
	copy(o.DstMAC[:], dmac)
	h := sclp.Header{SrcPort: sclp.SourcePort(inner), DstPort: sclp.VXLANPort, ID: 0x1234, First: true}
	var out []byte
	var err error
	if c.short {
		// Ethernet + IPv4 + UDP + 6 bytes.
		full, _ := sclp.AppendPacket(nil, o, h, msg)
		out = full[:14+20+8+6]
		binary.BigEndian.PutUint16(out[16:], 20+8+6)
		out[24], out[25] = 0, 0
		binary.BigEndian.PutUint16(out[24:], sclp.Checksum(out[14:34]))
		binary.BigEndian.PutUint16(out[38:], 8+6)
		out[40], out[41] = 0, 0 // no UDP checksum
		return out
	}
	if out, err = sclp.AppendPacket(nil, o, h, msg); err != nil {
		t.Fatal(err)
	}
	switch {
	case c.badSum:
		out[40] ^= 0x5a
	case c.noSum:
		out[40], out[41] = 0, 0
	}
	return out
}

// vmCapture reads the IPv4 packets arriving at a VM's device and records the probes (UDP to
// port 7002, payload "probe N") with whether their UDP checksum verifies.
type vmCapture struct {
	fd  int
	mu  sync.Mutex
	got map[int]bool
}

func openVMCapture(t testing.TB, vm *testbed.VM) *vmCapture {
	t.Helper()
	c := &vmCapture{got: map[int]bool{}}
	err := vm.Do(func() error {
		ifi, err := net.InterfaceByName(vm.Dev)
		if err != nil {
			return err
		}
		if c.fd, err = unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP))); err != nil {
			return err
		}
		tv := unix.NsecToTimeval(int64(100 * time.Millisecond))
		_ = unix.SetsockoptTimeval(c.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(c.fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(c.fd, b, 0)
			if errors.Is(err, unix.EBADF) {
				return
			}
			if err != nil || n < 28 || b[9] != 17 || binary.BigEndian.Uint16(b[22:]) != 7002 {
				continue
			}
			var k int
			if _, err := fmt.Sscanf(string(b[28:n]), "probe %d", &k); err != nil {
				continue
			}
			ps := sclp.Sum(b[12:20], 17+uint64(n-20))
			ok := sclp.Fold(sclp.Sum(b[20:n], ps)) == 0xffff
			c.mu.Lock()
			c.got[k] = ok
			c.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		unix.Shutdown(c.fd, unix.SHUT_RDWR)
		unix.Close(c.fd)
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	})
	return c
}

// wait reports whether probe k arrived within d, and whether its UDP checksum verified.
func (c *vmCapture) wait(k int, d time.Duration) (got, csumOK bool) {
	for end := time.Now().Add(d); ; time.Sleep(10 * time.Millisecond) {
		c.mu.Lock()
		ok, got := c.got[k]
		c.mu.Unlock()
		if got || time.Now().After(end) {
			return got, ok
		}
	}
}

// fakeNeigh is a next-hop table with one answer.
type fakeNeigh struct {
	mac [6]byte
	ok  bool
}

func (n *fakeNeigh) nextHop(int, netip.Addr) ([6]byte, bool) { return n.mac, n.ok }

// fakeLink stands for the transmit program's link (only Close is called).
type fakeLink struct{ link.Link }

func (fakeLink) Close() error { return nil }

// TestFastPathNeighbourRefresh: a port's transmit entry exists exactly while its next hop is
// resolved, and follows a changed MAC (so that the packet sockets take every frame while
// the program could not send it).
func TestFastPathNeighbourRefresh(t *testing.T) {
	testbed.RequireRoot(t)
	f, err := loadFastPath()
	if err != nil {
		t.Fatal(err)
	}
	defer f.close()
	if f.tx == nil {
		t.Fatalf("transmit half not loaded: %v", f.txErr)
	}
	const tunnel = 42
	f.keys["p"] = fastPortKeys{tunnel: tunnel, txLink: fakeLink{}, peer: netip.MustParseAddr("10.0.0.2"),
		tx: bpf.SclpUdpTxPort{Ifindex: 3, MaxFrame: 1452}}
	entry := func() (bpf.SclpUdpTxPort, bool) {
		var v bpf.SclpUdpTxPort
		err := f.tx.TxPorts.Lookup(uint32(tunnel), &v)
		return v, err == nil
	}
	nb := &fakeNeigh{}
	f.refreshPort("p", nb)
	if _, ok := entry(); ok {
		t.Fatal("entry written without a next hop")
	}
	for _, mac := range [][6]byte{{2, 0, 0, 0, 0, 1}, {2, 0, 0, 0, 0, 2}} {
		nb.mac, nb.ok = mac, true
		f.refreshPort("p", nb)
		if v, ok := entry(); !ok || v.Dmac != mac || v.MaxFrame != 1452 {
			t.Fatalf("entry %+v (present %v), want dmac %x", v, ok, mac)
		}
	}
	nb.ok = false
	f.refreshPort("p", nb)
	if _, ok := entry(); ok {
		t.Fatal("entry kept after the next hop went away")
	}
}

// TestFastPathUnavailable: when the programs cannot be loaded, each datapath logs it once
// (not per port) and runs on the socket path: ping and one-segment datagrams still arrive.
func TestFastPathUnavailable(t *testing.T) {
	orig := loadFast
	loadFast = func() (*fastPath, error) { return nil, fmt.Errorf("test: %w", ErrFastPathUnavailable) }
	t.Cleanup(func() { loadFast = orig })
	var mu sync.Mutex
	var logs []string
	logf := func(format string, args ...any) {
		mu.Lock()
		defer mu.Unlock()
		logs = append(logs, fmt.Sprintf(format, args...))
	}
	p := newPair(t, pairOptions{opts: Options{Logf: logf}})
	p.ping(t)
	ok, bad, _ := p.udpTransfer(t, 200, 1000, 50*time.Microsecond)
	if bad != 0 || ok < 190 {
		t.Fatalf("udp 1000 B without the fast path: %d intact, %d corrupt of 200", ok, bad)
	}
	mu.Lock()
	defer mu.Unlock()
	t.Logf("logged: %q", logs)
	if len(logs) != 2 { // one per datapath (two hosts)
		t.Errorf("%d log lines, want one per datapath (2)", len(logs))
	}
	for _, dp := range p.dps {
		if st := dp.Stats(); st.FastPath.Loaded || st.Ports[p.specs[0].Name].RxFastFrames != 0 {
			t.Errorf("fast path counters with the fast path unavailable: %+v", st.FastPath)
		}
	}
}
