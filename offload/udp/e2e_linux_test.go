//go:build linux

package udp

import (
	"bytes"
	"io"
	"net"
	"strconv"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestTCPAndPing: two hosts with real 1500-byte frames on the wire, VM namespaces on the tunnel
// ports; ping, then 8 MB of random data over TCP in 64 KB writes arriving byte-identical, with
// every outgoing underlay packet at most 1500 bytes.
func TestTCPAndPing(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)
	w := watchFrames(t, p.hosts[0].NS, p.hosts[0].Underlay)
	before := counters(t, p.hosts[0].NS, p.hosts[0].Underlay, "tx_packets", "tx_bytes")
	gbps := p.tcpTransfer(t, 8<<20, 64<<10)
	after := counters(t, p.hosts[0].NS, p.hosts[0].Underlay, "tx_packets", "tx_bytes")
	maxIP, frames := w.stop()
	pk, by := after[0]-before[0], after[1]-before[1]
	t.Logf("8 MB over TCP at %.2f Gbit/s; underlay tx %d packets, %d bytes (avg %d); largest IP packet %d of %d watched",
		gbps, pk, by, by/max(pk, 1), maxIP, frames)
	if maxIP > 1500 || maxIP == 0 {
		t.Errorf("largest outgoing underlay packet %d bytes, want 1..1500 (real frames)", maxIP)
	}
	if pk < (8<<20)/1500 {
		t.Errorf("only %d underlay packets for 8 MB: frames larger than the MTU crossed", pk)
	}
	st := p.dps[1].Stats()
	t.Logf("receiver: %d GRO batches, %d segments (%.1f per batch), %d frames injected, drops %v",
		st.RxDatagrams, st.RxSegments, float64(st.RxSegments)/float64(max(st.RxDatagrams, 1)),
		st.Reassembly.InjectedFrames, st.Reassembly.Reassembly.Drops)
	if st.Reassembly.InjectedFrames == 0 {
		t.Errorf("receiver injected nothing")
	}
	ps := p.dps[0].Stats().Ports["sclp0"]
	if ps.TxMessages == 0 || ps.TxSegments <= ps.TxMessages {
		t.Errorf("sender port stats %+v: expected segmented messages", ps)
	}
}

// TestUDPSmall sends 1200-byte datagrams (one segment each) and checks content.
func TestUDPSmall(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t) // resolve ARP first: the kernel queues only 3 packets per unresolved neighbour
	ok, bad, _ := p.udpTransfer(t, 2000, 1200, 20*time.Microsecond)
	p.dump(t)
	t.Logf("udp 1200 B: %d of 2000 intact, %d corrupt", ok, bad)
	if bad != 0 || ok < 1900 {
		t.Fatalf("udp 1200 B: %d intact, %d corrupt of 2000", ok, bad)
	}
}

// TestJumboInner: a 64 KB inner MTU (VMs and tunnel ports at 65000) over the 1500-byte wire;
// 60,000-byte UDP datagrams cross as 42-segment messages, intact, and TCP too.
func TestJumboInner(t *testing.T) {
	p := newPair(t, pairOptions{innerMTU: 65000})
	p.ping(t)
	ok, bad, gbps := p.udpTransfer(t, 500, 60000, 0)
	st := p.dps[1].Stats()
	p.dump(t)
	t.Logf("udp 60000 B: %d of 500 intact, %d corrupt, %.2f Gbit/s goodput; receiver drops %v",
		ok, bad, gbps, st.Reassembly.Reassembly.Drops)
	if bad != 0 {
		t.Fatalf("%d corrupted datagrams", bad)
	}
	if ok < 450 {
		t.Fatalf("only %d of 500 60 KB datagrams arrived", ok)
	}
	p.tcpTransfer(t, 4<<20, 64<<10)
}

// TestPortFlap: the tunnel port's datapath-side veth goes down and up; the workers survive
// and traffic resumes.
func TestPortFlap(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)
	h, dev := p.hosts[0], p.vms[0].HostDev
	h.MustRun(t, "ip", "link", "set", dev, "down")
	time.Sleep(200 * time.Millisecond)
	h.MustRun(t, "ip", "link", "set", dev, "up")
	p.ping(t)
	p.tcpTransfer(t, 4<<20, 64<<10)
}

// TestFlowsSpread: 16 parallel TCP flows are spread over the transmit workers (fanout hash)
// and the receive workers (SO_REUSEPORT over the source-port buckets).
func TestFlowsSpread(t *testing.T) {
	p := newPair(t, pairOptions{opts: Options{Workers: 2}})
	p.ping(t)
	var ln net.Listener
	if err := p.vms[1].Do(func() (err error) {
		ln, err = net.Listen("tcp4", p.vms[1].IP.String()+":7002")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const flows, size = 16, 1 << 20
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(io.Discard, c) }()
		}
	}()
	var wg sync.WaitGroup
	errs := make(chan error, flows)
	for range flows {
		var c net.Conn
		if err := p.vms[0].Do(func() (err error) {
			c, err = net.DialTimeout("tcp4", p.vms[1].IP.String()+":7002", 5*time.Second)
			return err
		}); err != nil {
			t.Fatal(err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer c.Close()
			_ = c.SetDeadline(time.Now().Add(20 * time.Second))
			_, err := c.Write(make([]byte, size))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(200 * time.Millisecond)
	tx := p.dps[0].Stats().Ports["sclp0"].TxFramesPerWorker
	rx := p.dps[1].Stats().RxSegmentsPerWorker
	t.Logf("transmit frames per worker %v, receive segments per worker %v", tx, rx)
	for i, n := range tx {
		if n == 0 {
			t.Errorf("transmit worker %d sent nothing: %v", i, tx)
		}
	}
	for i, n := range rx {
		if n == 0 {
			t.Errorf("receive worker %d got nothing: %v", i, rx)
		}
	}
}

// TestUDPGSOFromVM: a VM application sending with UDP_SEGMENT hands the tunnel port one UDP
// GSO frame per write; the datapath cuts it into its datagrams, which arrive intact.
func TestUDPGSOFromVM(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)
	var rc *net.UDPConn
	if err := p.vms[1].Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: p.vms[1].IP.AsSlice(), Port: 7003})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetReadBuffer(4 << 20) // the burst of 200 datagrams must not overflow the default
	var sc *net.UDPConn
	if err := p.vms[0].Do(func() (err error) {
		sc, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: p.vms[1].IP.AsSlice(), Port: 7003})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	raw, _ := sc.SyscallConn()
	_ = raw.Control(func(fd uintptr) { _ = unix.SetsockoptInt(int(fd), unix.SOL_UDP, unix.UDP_SEGMENT, 1000) })
	const writes, per = 20, 10
	for i := range writes {
		b := make([]byte, per*1000)
		for j := range b {
			b[j] = byte(i*per + j/1000)
		}
		if _, err := sc.Write(b); err != nil {
			t.Fatal(err)
		}
	}
	got := 0
	buf := make([]byte, 2000)
	for got < writes*per {
		_ = rc.SetReadDeadline(time.Now().Add(2 * time.Second))
		n, err := rc.Read(buf)
		if err != nil {
			break
		}
		if n != 1000 || !bytes.Equal(buf[:n], bytes.Repeat(buf[:1], 1000)) {
			t.Fatalf("datagram of %d bytes, content %x...", n, buf[:8])
		}
		got++
	}
	ps := p.dps[0].Stats().Ports["sclp0"]
	t.Logf("%d of %d datagrams; sender: %d frames, %d messages, %d unsupported", got, writes*per,
		ps.TxFrames, ps.TxMessages, ps.TxUnsupportedGSO)
	if got < writes*per*9/10 {
		t.Fatalf("only %d of %d datagrams arrived", got, writes*per)
	}
	if ps.TxMessages <= ps.TxFrames {
		t.Errorf("no UDP GSO frame was split (frames %d, messages %d)", ps.TxFrames, ps.TxMessages)
	}
}

// TestUDPFragmented: 60,000-byte datagrams larger than the VM's MTU leave the VM as 42-43 IP
// fragments, each its own message (two segments each at a 1500 inner MTU, one at 1438 = wire
// MTU minus the encapsulation); paced, the receiving VM reassembles every datagram intact.
func TestUDPFragmented(t *testing.T) {
	for _, mtu := range []int{1500, 1438} {
		t.Run(strconv.Itoa(mtu), func(t *testing.T) {
			p := newPair(t, pairOptions{innerMTU: mtu})
			p.ping(t)
			ok, bad, _ := p.udpTransfer(t, 200, 60000, 2*time.Millisecond)
			p.dump(t)
			out, _ := p.vms[1].Command("sh", "-c", "grep -E '^(Ip|Udp):' /proc/net/snmp").Output()
			t.Logf("udp 60000 B, inner MTU %d: %d of 200 intact, %d corrupt; receiving VM:\n%s", mtu, ok, bad, out)
			if bad != 0 || ok < 190 {
				t.Fatalf("udp 60000 B over inner MTU %d: %d intact, %d corrupt of 200", mtu, ok, bad)
			}
		})
	}
}
