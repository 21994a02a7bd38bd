//go:build linux

package udp

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// pairOptions configure a two-host udp-mode setup.
type pairOptions struct {
	innerMTU int     // VM and tunnel port MTU (default 1500)
	opts     Options // datapath options
	// between, if set, builds the underlay itself (an impairer) and returns the two hosts.
	between func(t testing.TB) []*testbed.Host
}

// pair is two hosts joined by an underlay, one VM per host, a udp datapath per host.
type pair struct {
	hosts []*testbed.Host
	vms   []*testbed.VM
	dps   []*Datapath
	specs []offload.PortSpec
	opts  pairOptions
}

// newPair builds the setup; everything is removed by t.Cleanup.
func newPair(t testing.TB, o pairOptions) *pair {
	t.Helper()
	testbed.RequireRoot(t)
	if o.innerMTU == 0 {
		o.innerMTU = 1500
	}
	p := &pair{opts: o}
	if o.between != nil {
		p.hosts = o.between(t)
	} else {
		p.hosts = testbed.NewHosts(t, testbed.HostsOptions{})
	}
	for i, h := range p.hosts[:2] {
		vm := testbed.NewVM(t, h.NS, testbed.VMOptions{MTU: o.innerMTU,
			Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.77.%d/24", i+1))})
		p.vms = append(p.vms, vm)
		other := p.hosts[1-i]
		p.specs = append(p.specs, offload.PortSpec{Name: "sclp" + strconv.Itoa(i), PeerName: vm.HostDev,
			Peer: other.IP, Local: h.IP, Device: h.Underlay, VNI: 5001, Mode: offload.ModeUDP, MTU: o.innerMTU})
	}
	for i := range p.hosts[:2] {
		p.start(t, i)
	}
	return p
}

// start creates host i's datapath and port (in the host's namespace).
func (p *pair) start(t testing.TB, i int) {
	t.Helper()
	var dp *Datapath
	err := p.hosts[i].Do(func() error {
		var err error
		if dp, err = New(p.opts.opts); err != nil {
			return err
		}
		return dp.EnsurePort(context.Background(), p.specs[i])
	})
	if err != nil {
		t.Fatalf("start datapath on %s: %v", p.hosts[i].Name, err)
	}
	if len(p.dps) <= i {
		p.dps = append(p.dps, dp)
	} else {
		p.dps[i] = dp
	}
	t.Cleanup(func() { dp.Close() })
}

// ping checks VM 0 reaches VM 1.
func (p *pair) ping(t testing.TB) {
	t.Helper()
	var out string
	var err error
	for range 3 { // the first attempt may race neighbour resolution on a fresh underlay
		if out, err = p.vms[0].Ping(p.vms[1].IP, 3); err == nil {
			return
		}
	}
	t.Fatalf("ping through the tunnel: %v\n%s", err, out)
}

// tcpTransfer sends n random bytes from VM 0 to VM 1 over TCP and checks the sha256 on both
// ends. It returns the throughput in Gbit/s.
func (p *pair) tcpTransfer(t testing.TB, n int, writeSize int) float64 {
	t.Helper()
	var ln net.Listener
	if err := p.vms[1].Do(func() (err error) {
		ln, err = net.Listen("tcp4", p.vms[1].IP.String()+":7000")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		sum [32]byte
		n   int64
		err error
	}
	done := make(chan result, 1)
	go func() {
		if tl, ok := ln.(*net.TCPListener); ok {
			_ = tl.SetDeadline(time.Now().Add(30 * time.Second))
		}
		c, err := ln.Accept()
		if err != nil {
			done <- result{err: err}
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(15 * time.Second))
		h := sha256.New()
		m, err := io.Copy(h, c)
		var r result
		copy(r.sum[:], h.Sum(nil))
		r.n, r.err = m, err
		done <- r
	}()
	data := make([]byte, n)
	_, _ = rand.Read(data)
	want := sha256.Sum256(data)
	var conn net.Conn
	if err := p.vms[0].Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", p.vms[1].IP.String()+":7000", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_ = conn.SetDeadline(time.Now().Add(15 * time.Second))
	for off := 0; off < len(data); off += writeSize {
		if _, err := conn.Write(data[off:min(off+writeSize, len(data))]); err != nil {
			p.dump(t)
			t.Fatalf("write at %d: %v", off, err)
		}
	}
	conn.Close()
	r := <-done
	el := time.Since(start)
	if r.err != nil {
		p.dump(t)
		t.Fatalf("receiver: %v after %d bytes", r.err, r.n)
	}
	if r.n != int64(n) || r.sum != want {
		t.Fatalf("received %d bytes with sha256 %x, sent %d with %x", r.n, r.sum, n, want)
	}
	return float64(n) * 8 / el.Seconds() / 1e9
}

// udpTransfer sends count datagrams of size bytes from VM 0 to VM 1 (each carrying its
// index and a checksum of its random content) and returns how many arrived intact, how many
// arrived corrupted, and the goodput.
func (p *pair) udpTransfer(t testing.TB, count, size int, pace time.Duration) (ok, bad int, gbps float64) {
	t.Helper()
	var rc *net.UDPConn
	if err := p.vms[1].Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", &net.UDPAddr{IP: p.vms[1].IP.AsSlice(), Port: 7001})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	_ = rc.SetReadBuffer(64 << 20)
	var got, corrupt atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		buf := make([]byte, 70000)
		for {
			_ = rc.SetReadDeadline(time.Now().Add(2 * time.Second))
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			if n != size || sha256.Sum256(buf[32:n]) != [32]byte(buf[:32]) {
				corrupt.Add(1)
				continue
			}
			got.Add(1)
		}
	}()
	var sc *net.UDPConn
	if err := p.vms[0].Do(func() (err error) {
		sc, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: p.vms[1].IP.AsSlice(), Port: 7001})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	msg := make([]byte, size)
	start := time.Now()
	for i := range count {
		_, _ = rand.Read(msg[32:])
		s := sha256.Sum256(msg[32:])
		copy(msg, s[:])
		if _, err := sc.Write(msg); err != nil && !errors.Is(err, unix.ECONNREFUSED) {
			t.Fatalf("udp write %d: %v", i, err)
		}
		if pace > 0 {
			time.Sleep(pace)
		}
	}
	el := time.Since(start)
	wg.Wait()
	return int(got.Load()), int(corrupt.Load()), float64(got.Load()) * float64(size) * 8 / el.Seconds() / 1e9
}

// counters reads a device's statistics in a namespace.
func counters(t testing.TB, ns *testbed.NS, dev string, names ...string) []uint64 {
	t.Helper()
	out := make([]uint64, len(names))
	for i, n := range names {
		s := strings.TrimSpace(ns.MustRun(t, "cat", "/sys/class/net/"+dev+"/statistics/"+n))
		out[i], _ = strconv.ParseUint(s, 10, 64)
	}
	return out
}

// frameWatch records the largest frame leaving dev in ns until stopped.
type frameWatch struct {
	fd     int
	max    atomic.Int64
	frames atomic.Int64
	done   chan struct{}
}

func watchFrames(t testing.TB, ns *testbed.NS, dev string) *frameWatch {
	t.Helper()
	w := &frameWatch{done: make(chan struct{})}
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		w.fd = fd
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		tv := unix.NsecToTimeval(int64(200 * time.Millisecond))
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	})
	if err != nil {
		t.Fatal(err)
	}
	go func() {
		defer close(w.done)
		buf := make([]byte, 128)
		for {
			n, from, err := unix.Recvfrom(w.fd, buf, unix.MSG_TRUNC)
			if errors.Is(err, unix.EBADF) {
				return
			}
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				w.frames.Add(1)
				if int64(n) > w.max.Load() {
					w.max.Store(int64(n))
				}
			}
		}
	}()
	return w
}

// stop ends the watch and returns the largest outgoing IP packet seen and the frame count.
func (w *frameWatch) stop() (maxIP int, frames int64) {
	unix.Shutdown(w.fd, unix.SHUT_RDWR)
	unix.Close(w.fd)
	select {
	case <-w.done:
	case <-time.After(time.Second):
	}
	return int(w.max.Load()), w.frames.Load()
}

// dump logs both datapaths' statistics.
func (p *pair) dump(t testing.TB) {
	for i, dp := range p.dps {
		st := dp.Stats()
		t.Logf("host %d: ports %+v", i, st.Ports)
		t.Logf("host %d: rx datagrams %d segments %d short %d reassembly %+v", i, st.RxDatagrams, st.RxSegments, st.RxShort, st.Reassembly)
	}
}
