package offload

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

const bedVNI = 4100

// bedOptions shape a two-host native (mode=ip) testbed without OVS.
type bedOptions struct {
	// TxChecksumOff turns tx checksumming off on both underlays (the checksum trap).
	TxChecksumOff bool
	// VMOffloads leaves TSO/GSO on in the VMs: they send up to 64 KB frames, which need the
	// userspace fallback on receive. Off: every frame fits one segment (BPF fast path).
	VMOffloads bool
	// Fallback runs offload/fallback (ring reader, reassembly, GSO injection) on each host.
	Fallback bool
	// NoCsumFix loads the tx program with its checksum fix switched off (negative control).
	NoCsumFix bool
	// MTU of the underlay (default 1500); the VMs get MTU - 54.
	MTU int
	// Legacy attaches with clsact filters, as on a kernel without TCX.
	Legacy bool
	// InnerMTU overrides the VMs' MTU (default MTU - 54): larger makes a jumbo overlay.
	InnerMTU int
	// Impair, if set, joins the two hosts through testbed.NewImpairedHosts with this config
	// (tx checksumming is then off on both underlays, as with TxChecksumOff).
	Impair *testbed.ImpairConfig
	// ExtraHosts adds hosts on the same underlay (through a bridge) without VM or datapath:
	// b.hosts[2:], for example a third peer.
	ExtraHosts int
	// Reassembly configures the fallback's reassembler (default sclp.DefaultConfig()).
	Reassembly *sclp.Config
	// RingSize is the exceptions ring buffer's size in bytes (default 4 MiB, a quarter of
	// DefaultRingSize).
	RingSize uint32
	// OnRefused, if set, is each host's fallback.RingReaderOptions.OnRefused (host index i).
	OnRefused func(i int, src netip.Addr)
}

// nativeBed: two hosts on a real 1500-byte underlay, a VM namespace on each, whose eth0 is
// the tunnel port and whose host end carries the tx program.
type nativeBed struct {
	t     testing.TB
	hosts []*testbed.Host
	vms   []*testbed.VM
	opts  []ManagerOptions
	specs []PortSpec
	mu    sync.Mutex
	mgrs  []*Manager
	// innerMTU is the VMs' (and tunnel ports') MTU.
	innerMTU int
	// impairer relays between the hosts when bedOptions.Impair is set.
	impairer *testbed.Impairer
	// reassembly is the fallback's reassembler config; fb[i] host i's fallback, once started.
	reassembly sclp.Config
	onRefused  func(i int, src netip.Addr)
	fb         []*bedFallback
}

// bedFallback is a running userspace finish of one host.
type bedFallback struct {
	pipe *fallback.Pipeline
	ring *fallback.RingReader
}

func newNativeBed(t testing.TB, o bedOptions) *nativeBed {
	t.Helper()
	testbed.RequireRoot(t)
	b := &nativeBed{t: t}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	b.innerMTU = o.MTU - 54
	if o.InnerMTU != 0 {
		b.innerMTU = o.InnerMTU
	}
	b.reassembly = sclp.DefaultConfig()
	b.onRefused = o.OnRefused
	if o.Reassembly != nil {
		b.reassembly = *o.Reassembly
	}
	ho := testbed.HostsOptions{TxChecksumOff: o.TxChecksumOff, MTU: o.MTU, N: 2 + o.ExtraHosts}
	if o.Impair != nil {
		if o.ExtraHosts != 0 {
			t.Fatal("bed: Impair and ExtraHosts do not combine")
		}
		b.hosts, b.impairer = testbed.NewImpairedHosts(t, ho, *o.Impair)
	} else {
		b.hosts = testbed.NewHosts(t, ho)
	}
	b.fb = make([]*bedFallback, 2)
	for i, h := range b.hosts[:2] {
		vm := testbed.NewVM(t, h.NS, testbed.VMOptions{
			Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.77.%d/24", i+1)), MTU: b.innerMTU,
		})
		if !o.VMOffloads {
			vm.RealFrames(t, vm.Dev)
		}
		vm.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
		b.vms = append(b.vms, vm)
		root := filepath.Join("/sys/fs/bpf", "sclp-ovs-test-"+h.Name)
		t.Cleanup(func() { os.RemoveAll(root) })
		mo := ManagerOptions{PinRoot: root, NetNS: "/run/netns/" + h.Name, RingSize: 1 << 22, forceLegacy: o.Legacy}
		if o.RingSize != 0 {
			mo.RingSize = o.RingSize
		}
		if o.NoCsumFix {
			mo.specHook = func(s *ebpf.CollectionSpec) error {
				return s.Variables[bpf.VarNoCsumFix].Set(uint32(1))
			}
		}
		b.opts = append(b.opts, mo)
		b.specs = append(b.specs, PortSpec{
			Name: "tun" + strconv.Itoa(i), PeerName: vm.HostDev, Peer: b.hosts[1-i].IP, Local: h.IP,
			Device: h.Underlay, VNI: bedVNI, Mode: ModeIP, MTU: b.innerMTU,
		})
		m, err := NewManager(b.opts[i])
		if err != nil {
			t.Fatal(err)
		}
		b.mgrs = append(b.mgrs, m)
		t.Cleanup(func() { b.manager(i).Uninstall() })
		if err := m.EnsurePort(context.Background(), b.specs[i]); err != nil {
			t.Fatalf("ensure port on %s: %v", h.Name, err)
		}
	}
	if o.Fallback {
		for i := range b.hosts[:2] {
			b.startFallback(i)
		}
	}
	return b
}

func (b *nativeBed) manager(i int) *Manager {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.mgrs[i]
}

// startFallback runs the userspace finish of host i: ring reader -> reassembly -> GSO
// injection into the tunnel port's host end.
func (b *nativeBed) startFallback(i int) {
	t := b.t
	pipe, err := fallback.NewPipeline(fallback.PipelineOptions{Workers: 1, Reassembly: b.reassembly})
	if err != nil {
		t.Fatal(err)
	}
	var inj *fallback.Injector
	if err := b.hosts[i].Do(func() error {
		var err error
		inj, err = fallback.NewInjector(fallback.InjectorOptions{Interface: b.vms[i].HostDev, MTU: b.innerMTU})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inj.Close() }) // runs after the reader below has stopped
	pipe.Ports().Set(fallback.PortKey{Peer: b.hosts[1-i].IP, VNI: bedVNI}, inj)
	rd, err := ringbuf.NewReader(b.manager(i).ExceptionRing())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var ropts fallback.RingReaderOptions
	if f := b.onRefused; f != nil {
		ropts.OnRefused = func(src netip.Addr) { f(i, src) }
	}
	rr := fallback.NewRingReader(rd, pipe.Workers()[0], ropts)
	b.fb[i] = &bedFallback{pipe: pipe, ring: rr}
	done := make(chan struct{})
	go func() { defer close(done); _ = rr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		rd.Close()
		<-done
		t.Logf("fallback host %d: ring %+v, pipeline %+v", i, rr.Stats(), pipe.Stats())
	})
}

func (b *nativeBed) stats(i int) Stats {
	s, err := b.manager(i).Stats()
	if err != nil {
		b.t.Fatal(err)
	}
	return s
}

// transfer is what tcpTransfer measured.
type transfer struct {
	// Gbps is the goodput from dial to the receiver's last byte.
	Gbps float64
	// Retrans is the sender's TCP retransmitted segments (tcpi_total_retrans).
	Retrans uint32
}

// tcpTransfer sends n random bytes from VM 0 to VM 1 over TCP in 64 KB writes and checks
// their sha256; it returns the goodput and the sender's retransmissions.
func (b *nativeBed) tcpTransfer(n int, seed uint64) transfer {
	t := b.t
	t.Helper()
	var ln net.Listener
	dst := netip.AddrPortFrom(b.vms[1].IP, 5001)
	if err := b.vms[1].Do(func() error {
		var err error
		ln, err = net.Listen("tcp4", dst.String())
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
	res := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			res <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		k, err := io.Copy(h, c)
		res <- result{sum: [32]byte(h.Sum(nil)), n: k, err: err}
	}()
	var conn net.Conn
	start := time.Now()
	if err := b.vms[0].Do(func() error {
		var err error
		conn, err = net.DialTimeout("tcp4", dst.String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	conn.SetDeadline(time.Now().Add(60 * time.Second))
	r := rand.New(rand.NewChaCha8([32]byte{byte(seed), byte(seed >> 8)}))
	h := sha256.New()
	buf := make([]byte, 64<<10)
	for sent := 0; sent < n; {
		k := min(len(buf), n-sent)
		for j := 0; j < k; j += 8 {
			binary.LittleEndian.PutUint64(buf[j:], r.Uint64())
		}
		h.Write(buf[:k])
		if _, err := conn.Write(buf[:k]); err != nil {
			t.Fatalf("tcp write after %d bytes: %v", sent, err)
		}
		sent += k
	}
	conn.(*net.TCPConn).CloseWrite()
	got := <-res
	el := time.Since(start)
	var tr transfer
	if rc, err := conn.(*net.TCPConn).SyscallConn(); err == nil {
		_ = rc.Control(func(fd uintptr) {
			if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
				tr.Retrans = info.Total_retrans
			}
		})
	}
	conn.Close()
	if got.err != nil || got.n != int64(n) || got.sum != [32]byte(h.Sum(nil)) {
		t.Fatalf("tcp: received %d of %d bytes, err %v, sha256 match %v", got.n, n, got.err, got.sum == [32]byte(h.Sum(nil)))
	}
	tr.Gbps = float64(n) * 8 / el.Seconds() / 1e9
	return tr
}

// udpExchange sends count datagrams of random sizes up to maxLen from VM 0 to VM 1 and
// checks that each received one is byte-identical to the one sent with its index; it
// returns how many arrived.
func (b *nativeBed) udpExchange(count, maxLen int) int {
	t := b.t
	t.Helper()
	dst := netip.AddrPortFrom(b.vms[1].IP, 5002)
	var rc, sc *net.UDPConn
	if err := b.vms[1].Do(func() error {
		var err error
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	rc.SetReadBuffer(8 << 20)
	if err := b.vms[0].Do(func() error {
		var err error
		sc, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	payload := func(i int) []byte {
		r := rand.New(rand.NewPCG(uint64(i), 99))
		p := make([]byte, 4+r.IntN(maxLen-4))
		for j := range p {
			p[j] = byte(r.Uint32())
		}
		binary.BigEndian.PutUint32(p, uint32(i))
		return p
	}
	for i := 0; i < count; i++ {
		if _, err := sc.Write(payload(i)); err != nil {
			t.Fatalf("udp write %d: %v", i, err)
		}
		if i%20 == 19 {
			time.Sleep(2 * time.Millisecond)
		}
	}
	got := 0
	buf := make([]byte, 65536)
	for got < count {
		rc.SetReadDeadline(time.Now().Add(time.Second))
		n, err := rc.Read(buf)
		if err != nil {
			break
		}
		i := int(binary.BigEndian.Uint32(buf))
		if i >= count || string(buf[:n]) != string(payload(i)) {
			t.Fatalf("udp datagram %d (%d bytes) differs from what was sent", i, n)
		}
		got++
	}
	return got
}

// wireCapture counts the frames a host's underlay receives, from a packet socket (which
// sees them before tc ingress).
type wireCapture struct {
	mu                  sync.Mutex
	sclp, other, maxLen int
	fd                  int
	done                chan struct{}
}

func (b *nativeBed) capture(i int) *wireCapture {
	t := b.t
	w := &wireCapture{done: make(chan struct{})}
	if err := b.hosts[i].Do(func() error {
		ifi, err := net.InterfaceByName(b.hosts[i].Underlay)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		w.fd = fd
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 64<<20)
		tv := unix.Timeval{Usec: 100000}
		_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index})
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	go func() {
		defer close(w.done)
		buf := make([]byte, 1<<16)
		for {
			select {
			case <-stop:
				return
			default:
			}
			n, from, err := unix.Recvfrom(w.fd, buf, unix.MSG_TRUNC)
			if err != nil {
				continue
			}
			if ll, ok := from.(*unix.SockaddrLinklayer); ok && ll.Pkttype == unix.PACKET_OUTGOING {
				continue
			}
			w.mu.Lock()
			if n >= 34 && binary.BigEndian.Uint16(buf[12:]) == 0x0800 && buf[23] == sclp.IPProtocol {
				w.sclp++
				w.maxLen = max(w.maxLen, n)
			} else {
				w.other++
			}
			w.mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-w.done
		unix.Close(w.fd)
	})
	return w
}

func (w *wireCapture) counts() (sclpFrames, maxLen int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.sclp, w.maxLen
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// rxPackets reads a device's rx packet counter inside a namespace.
func rxPackets(t *testing.T, ns *testbed.NS, dev string) int {
	out := ns.MustRun(t, "cat", "/sys/class/net/"+dev+"/statistics/rx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// fallbackStats returns host i's fallback counters: the pipeline's and the ring reader's.
func (b *nativeBed) fallbackStats(i int) (fallback.Stats, fallback.RingStats) {
	f := b.fb[i]
	if f == nil {
		b.t.Fatalf("bed: host %d runs no fallback", i)
	}
	return f.pipe.Stats(), f.ring.Stats()
}

// bufferPeak is the largest reassembler buffer use a sampler saw.
type bufferPeak struct {
	Bytes, Entries, Samples int
}

// sampleBuffered samples host i's reassembler buffer use every 2 ms until the returned
// function is called; that returns the peaks (stopping is idempotent).
func (b *nativeBed) sampleBuffered(i int) func() bufferPeak {
	f := b.fb[i]
	if f == nil {
		b.t.Fatalf("bed: host %d runs no fallback", i)
	}
	var (
		mu   sync.Mutex
		peak bufferPeak
		once sync.Once
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		tk := time.NewTicker(2 * time.Millisecond)
		defer tk.Stop()
		for {
			r := f.pipe.Stats().Reassembly
			mu.Lock()
			peak.Bytes, peak.Entries = max(peak.Bytes, r.BufferedBytes), max(peak.Entries, r.BufferedEntries)
			peak.Samples++
			mu.Unlock()
			select {
			case <-stop:
				return
			case <-tk.C:
			}
		}
	}()
	end := func() bufferPeak {
		once.Do(func() { close(stop); <-done })
		mu.Lock()
		defer mu.Unlock()
		return peak
	}
	b.t.Cleanup(func() { end() })
	return end
}
