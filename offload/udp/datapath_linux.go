//go:build linux

package udp

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os/exec"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Errors of the datapath.
var (
	// ErrClosed: the datapath was closed.
	ErrClosed = errors.New("udp datapath closed")
	// ErrWrongMode: the port spec asks for another mode than udp.
	ErrWrongMode = errors.New("port mode is not udp")
	// ErrConflict: another port already receives for the same (peer, VNI).
	ErrConflict = errors.New("another port has the same peer and VNI")
)

// Datapath runs mode=udp tunnel ports. It implements offload.Datapath. All sockets are
// opened in the network namespace of the thread that calls EnsurePort.
type Datapath struct {
	opts  Options
	ports *fallback.PortTable
	ids   *sclp.IDGenerator

	mu     sync.Mutex
	closed bool
	byName map[string]*port
	src    map[netip.Addr]*srcSockets
	rx     map[netip.AddrPort]*rxGroup
	gro    map[string]bool
	// retired keeps the counters of stopped receive groups.
	retired Stats
	// fast is the tc-BPF fast path (nil: off, not loaded yet or unavailable); fastTried
	// says loading was attempted (it is tried once, with the first port).
	fast      *fastPath
	fastTried bool
	// takeoverDone: FinishTakeover was called (the previous agent has stopped).
	takeoverDone bool
	fastStop     chan struct{} // closed by Close: ends the neighbour refresh
	// refreshDone is closed when the neighbour refresh has ended (nil: it never ran); Close
	// waits for it, since its thread sits in the datapath's network namespace.
	refreshDone chan struct{}
}

var _ offload.Datapath = (*Datapath)(nil)

// New returns a datapath with no ports.
func New(opts Options) (*Datapath, error) {
	opts.defaults()
	if opts.Exec == nil {
		opts.Exec = func(name string, args ...string) error {
			out, err := exec.Command(name, args...).CombinedOutput()
			if err != nil {
				return fmt.Errorf("%s %v: %w: %s", name, args, err, out)
			}
			return nil
		}
	}
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	return &Datapath{opts: opts, ports: new(fallback.PortTable),
		ids:    sclp.NewIDGenerator(binary.NativeEndian.Uint32(seed[:])),
		byName: map[string]*port{}, src: map[netip.Addr]*srcSockets{},
		rx: map[netip.AddrPort]*rxGroup{}, gro: map[string]bool{}}, nil
}

// port is one running tunnel port.
type port struct {
	spec     offload.PortSpec
	dst      unix.RawSockaddrInet4
	ids      *sclp.IDGenerator
	src      *srcSockets
	rx       *rxGroup
	inj      *fallback.Injector
	key      fallback.PortKey
	stopfd   int
	stopping atomic.Bool
	wg       sync.WaitGroup
	tx       txStats
	nice     int
	workers  []*txWorker
	// fastDeferred: the port's transmit fast path waits until no other agent sends on its
	// veth (takeover; finishTakeover starts it). ul and tunnel are what it then needs;
	// sockets the inodes of the port's transmit sockets (the fanout group's members that
	// are ours).
	fastDeferred bool
	// borrowed is the transmit sockets' filter of a port without a transmit fast path of
	// its own while another agent's sclp_udp_tx runs on its veth: that agent's
	// sclp_udp_txsock reading its map (nil: no filter).
	borrowed *ebpf.Program
	ul       net.Interface
	tunnel   int
	sockets  map[uint64]bool
}

// EnsurePort starts carrying spec; a port already running with the same spec is left alone,
// one with a different spec is restarted.
func (d *Datapath) EnsurePort(ctx context.Context, spec offload.PortSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.Mode != offload.ModeUDP {
		return fmt.Errorf("ensure port %s: %q: %w", spec.Name, spec.Mode, ErrWrongMode)
	}
	if spec.DstPort == 0 {
		spec.DstPort = offload.DefaultUDPPort
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return ErrClosed
	}
	if p, ok := d.byName[spec.Name]; ok {
		if p.spec == spec {
			return nil
		}
		d.removeLocked(p)
	}
	key := fallback.PortKey{Peer: spec.Peer, VNI: spec.VNI}
	if d.ports.Lookup(key) != nil {
		return fmt.Errorf("ensure port %s: peer %v vni %d: %w", spec.Name, spec.Peer, spec.VNI, ErrConflict)
	}
	p, err := d.startPort(spec, key)
	if err != nil {
		return fmt.Errorf("ensure port %s: %w", spec.Name, err)
	}
	d.byName[spec.Name] = p
	return nil
}

// startPort opens everything a port needs and starts its transmit workers. The port is in
// the port table before its receive sockets exist: a receive socket that joins a
// SO_REUSEPORT group shared with a running agent (a takeover) gets datagrams at once, and
// without the entry it would drop them as from an unknown peer.
func (d *Datapath) startPort(spec offload.PortSpec, key fallback.PortKey) (p *port, err error) {
	ul, err := net.InterfaceByName(spec.Device)
	if err != nil {
		return nil, fmt.Errorf("underlay: %w", err)
	}
	if !d.opts.SkipGRO && !d.gro[spec.Device] {
		if err := d.opts.Exec("ethtool", "-K", spec.Device, "gro", "on"); err != nil {
			return nil, fmt.Errorf("enable gro (needed for UDP GRO on veth): %w", err)
		}
		d.gro[spec.Device] = true
	}
	peer, err := net.InterfaceByName(spec.PeerName)
	if err != nil {
		return nil, fmt.Errorf("tunnel peer: %w", err)
	}
	p = &port{spec: spec, key: key, ids: d.ids, stopfd: -1, nice: d.opts.WorkerNice,
		dst: sockaddr4(netip.AddrPortFrom(spec.Peer, spec.DstPort))}
	defer func() {
		if err != nil {
			d.stopPort(p)
		}
	}()
	if p.src, err = d.acquireSrc(spec.Local); err != nil {
		return p, err
	}
	if p.inj, err = fallback.NewInjector(fallback.InjectorOptions{Interface: spec.PeerName, MTU: spec.MTU}); err != nil {
		return p, err
	}
	d.ports.Set(key, p.inj)
	if p.rx, err = d.acquireRx(netip.AddrPortFrom(spec.Local, spec.DstPort)); err != nil {
		return p, err
	}
	if p.stopfd, err = eventFD(); err != nil {
		return p, err
	}
	fastTx := d.addFastPort(spec, ul.Index, peer.Index)
	if fastTx {
		// Another agent still sending on the veth (a takeover): no transmit fast path of our
		// own until it is gone; our sockets skip exactly what its program sends.
		var err error
		p.fastDeferred, err = d.fast.startTakeover(spec.Name, peer.Index, peer.Index&0xffff, d.opts.Standby)
		if err != nil {
			d.opts.Logf("udp datapath: %v", err)
		}
		p.ul, p.tunnel, p.sockets = *ul, peer.Index, map[uint64]bool{}
	} else {
		// No transmit fast path here, but maybe the running agent's (a takeover by an agent
		// without it): our sockets must skip what its program sends.
		var err error
		if p.borrowed, err = borrowForeignFilter(peer.Index, d.fast.ownTx()); err != nil {
			d.opts.Logf("udp datapath: port %s: its sockets may duplicate frames the running agent's fast path sends until that agent stops: %v", spec.Name, err)
		}
		p.tunnel = peer.Index
	}
	mss := ul.MTU - sclp.UDPOverhead
	for range d.opts.Workers {
		fd, err := packetSocket(peer.Index, peer.Index&0xffff, d.opts.SocketBuffer)
		if err != nil {
			return p, err
		}
		if fastTx {
			if err := d.fast.sockFilter(fd, spec.Name); err != nil {
				d.opts.Logf("udp datapath: port %s sends without the fast path: %v", spec.Name, err)
				fastTx, p.fastDeferred = false, false
			}
			var st unix.Stat_t
			if unix.Fstat(fd, &st) == nil {
				p.sockets[st.Ino] = true
			}
		} else if p.borrowed != nil {
			if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, p.borrowed.FD()); err != nil {
				d.opts.Logf("udp datapath: port %s: a socket may duplicate frames the running agent's fast path sends: %v", spec.Name, err)
			}
		}
		snd, err := newSender(mss, p.stopping.Load)
		if err != nil {
			unix.Close(fd)
			return p, err
		}
		w := &txWorker{p: p, fd: fd, snd: snd, buf: make([]byte, frameOff+sclp.MaxMessageLen+64),
			ubuf: make([]byte, sclp.MaxMessageLen)}
		p.workers = append(p.workers, w)
		p.wg.Add(1)
		go w.run()
	}
	if fastTx && !p.fastDeferred {
		// Every transmit socket skips what the program sends: the program may start.
		if err := d.fast.addTx(spec, ul, peer.Index); err != nil {
			d.opts.Logf("udp datapath: port %s sends without the fast path: %v", spec.Name, err)
		}
	}
	return p, nil
}

// stopTx stops a port's transmit workers: each drains its fanout socket and closes it
// (txWorker.run). Idempotent.
func (p *port) stopTx() {
	if p.stopping.Swap(true) {
		return
	}
	if p.stopfd >= 0 {
		signalFD(p.stopfd)
	}
	p.wg.Wait()
	if p.stopfd >= 0 {
		unix.Close(p.stopfd)
		p.stopfd = -1
	}
}

// stopPort stops a port and releases its resources (shared sockets by refcount). The order
// keeps every packet that reached one of the port's sockets: transmit workers drain and
// close their fanout sockets; the receive group (when this was its last port) leaves the
// reuseport group, drains and closes; only then does the port leave the port table and its
// injector close.
func (d *Datapath) stopPort(p *port) {
	if d.fast != nil {
		d.fast.stopRx(p.spec.Name) // from here on the port's datagrams take the socket
	}
	p.stopTx()
	if p.borrowed != nil {
		_ = p.borrowed.Close()
		p.borrowed = nil
	}
	if d.fast != nil {
		// After the transmit sockets closed: until then the transmit program sends what
		// their filter skips.
		d.fast.removePort(p.spec.Name)
	}
	if p.rx != nil {
		d.releaseRx(p.rx)
		p.rx = nil
	}
	if p.inj != nil && d.ports.Lookup(p.key) == fallback.Port(p.inj) {
		d.ports.Delete(p.key)
	}
	if p.inj != nil {
		p.inj.Close()
		p.inj = nil
	}
	if p.src != nil {
		d.releaseSrc(p.src)
		p.src = nil
	}
}

func (d *Datapath) removeLocked(p *port) {
	delete(d.byName, p.spec.Name)
	d.stopPort(p)
}

// Activate ends standby (Options.Standby): every receive group starts taking traffic, and
// groups opened later are active from the start. A successor agent calls it once every
// port is registered, before it retires the running agent. Without Standby it does nothing.
func (d *Datapath) Activate() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.opts.Standby = false
	var err error
	for _, g := range d.rx {
		if e := g.activate(); e != nil && err == nil {
			err = e
		}
	}
	return err
}

// FinishTakeover starts the transmit fast path of the ports that deferred it because
// another agent still sent on their veths when they started (a takeover: docs/udp-mode.md,
// "Handover without loss"), and returns once none is left deferred, or ctx's error. A port
// starts it only once no other datapath's sclp_udp_tx is on its veth and no other packet
// socket is in its fanout group; the datapath checks that by itself every neighbour
// refresh (500 ms), FinishTakeover checks every 20 ms. The caller says the previous agent
// has stopped (it retired, its status socket is gone): where packet sockets cannot be
// listed (no sock_diag), the ports then go by the TCX chain alone. Call it in the ports'
// network namespace (as EnsurePort). Without deferred ports it returns at once.
//
// A port without a transmit fast path of its own (Options.NoFastPath, NoFastPathTx, or a
// program that did not load) that started while another agent's sclp_udp_tx ran on its veth
// carries that agent's socket filter until the program is gone; FinishTakeover (and, with
// the fast path loaded, the neighbour refresh) removes it then. A datapath with NoFastPath
// has no refresh: a successor must call FinishTakeover.
func (d *Datapath) FinishTakeover(ctx context.Context) error {
	d.mu.Lock()
	d.takeoverDone = true
	d.mu.Unlock()
	for {
		d.mu.Lock()
		left := d.finishTakeover()
		d.mu.Unlock()
		if left == 0 {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%d ports still wait for the previous agent to leave their veths: %w", left, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// finishTakeover starts the deferred transmit fast path of every port whose veth no other
// agent uses any more (and detaches the borrowed filter of ports without a fast path once
// the other program is gone) and returns how many ports still wait. The sockets first get this
// datapath's filter (the port has no entry yet: they take everything, as the other agent's
// filter with its entry gone does), then the entry is written. Called with d.mu held, in
// the ports' network namespace.
func (d *Datapath) finishTakeover() (left int) {
	if d.closed {
		return 0
	}
	for name, p := range d.byName {
		if p.borrowed == nil || p.stopping.Load() {
			continue
		}
		// A port without a transmit fast path: once the other agent's program is gone
		// (it deleted its entry before, so the filter already passed everything), its
		// sockets need no filter.
		found, m, err := foreignTx(p.tunnel, d.fast.ownTx())
		if m != nil {
			m.Close()
		}
		if err != nil || found {
			left++
			continue
		}
		for _, w := range p.workers {
			if err := unix.SetsockoptInt(w.fd, unix.SOL_SOCKET, unix.SO_DETACH_BPF, 0); err != nil {
				d.opts.Logf("udp datapath: port %s: socket filter: %v", name, err)
			}
		}
		_ = p.borrowed.Close()
		p.borrowed = nil
	}
	if d.fast == nil {
		return left
	}
	for name, p := range d.byName {
		if !p.fastDeferred || p.stopping.Load() {
			continue
		}
		if !d.fast.othersGone(p.tunnel, p.tunnel&0xffff, p.sockets, d.takeoverDone) {
			left++
			continue
		}
		p.fastDeferred = false
		d.fast.dropBorrowed(name)
		ok := true
		for _, w := range p.workers {
			if err := d.fast.sockFilter(w.fd, name); err != nil {
				d.opts.Logf("udp datapath: port %s sends without the fast path: %v", name, err)
				ok = false
				break
			}
		}
		if !ok {
			continue
		}
		if err := d.fast.addTx(p.spec, &p.ul, p.tunnel); err != nil {
			d.opts.Logf("udp datapath: port %s sends without the fast path: %v", name, err)
		}
	}
	return left
}

// RemovePort stops the named port; removing an absent port succeeds.
func (d *Datapath) RemovePort(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if p, ok := d.byName[name]; ok {
		d.removeLocked(p)
	}
	return nil
}

// Close stops every port. Partial messages still being reassembled are lost; Stats().Rx
// .LostOnStop says how many.
func (d *Datapath) Close() error {
	var refreshDone chan struct{}
	defer func() { // after the unlock: the refresh may be waiting for the lock
		if refreshDone != nil {
			<-refreshDone
		}
	}()
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return nil
	}
	// Hand the traffic to whoever else is in the groups (a successor agent) before anything
	// stops delivering: every receive group leaves its reuseport group and keeps reading for
	// a moment, the transmit workers drain and close their fanout sockets, the receive groups
	// drain and close; only then do the ports leave the port table.
	for _, g := range d.rx {
		g.leave()
	}
	if len(d.rx) > 0 {
		time.Sleep(leaveSettle)
	}
	var wg sync.WaitGroup
	for _, p := range d.byName {
		wg.Add(1)
		go func() { defer wg.Done(); p.stopTx() }()
	}
	wg.Wait()
	for _, g := range d.rx {
		g.stop()
	}
	for _, p := range d.byName {
		d.removeLocked(p)
	}
	if d.fast != nil {
		d.retired.FastPath.add(d.fast.stats())
		d.fast.close()
		d.fast = nil
		close(d.fastStop)
		refreshDone = d.refreshDone
	}
	d.closed = true
	return nil
}

// addFastPort gives the port to the fast path, loading it with the first port. A failure
// is logged once per datapath (loading) or per port (attaching, maps), and the port runs
// on the socket path alone. It reports whether the port may also use the transmit fast path
// (its packet sockets then get the filter, and addTx follows).
func (d *Datapath) addFastPort(spec offload.PortSpec, underlay, tunnel int) bool {
	if d.opts.NoFastPath {
		return false
	}
	if !d.fastTried {
		d.fastTried = true
		f, err := loadFast()
		if err != nil {
			d.opts.Logf("udp datapath: running without the fast path: %v", err)
			return false
		}
		f.flags = fastFlags(d.opts.FastPathAllFrames)
		d.fast = f
		d.fastStop = make(chan struct{})
		d.startRefresh()
		if f.txErr != nil && !d.opts.NoFastPathTx {
			d.opts.Logf("udp datapath: sending without the fast path: %v", f.txErr)
		}
	}
	if d.fast == nil {
		return false
	}
	if err := d.fast.addPort(spec, underlay, tunnel, spec.MTU); err != nil {
		d.opts.Logf("udp datapath: port %s runs without the fast path: %v", spec.Name, err)
		return false
	}
	return !d.opts.NoFastPathTx && d.fast.tx != nil
}

// loadFast loads the fast path (a test seam: tests make it fail).
var loadFast = loadFastPath

// neighRefresh is how often the transmit fast path re-reads the next hops of its ports.
const neighRefresh = 500 * time.Millisecond

// startRefresh starts the goroutine that keeps the transmit entries' next-hop MACs current,
// with a netlink handle in the calling thread's network namespace. Without one it does not
// run: entries are then written only when a port starts.
func (d *Datapath) startRefresh() {
	nsh, err := netns.Get()
	if err != nil {
		return
	}
	h, err := netlink.NewHandleAt(nsh)
	if err != nil {
		nsh.Close()
		return
	}
	stop, done := d.fastStop, make(chan struct{})
	d.refreshDone = done
	go func() {
		defer close(done)
		defer nsh.Close()
		defer h.Close()
		t := time.NewTicker(neighRefresh)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			d.mu.Lock()
			deferred := false
			if d.fast != nil {
				d.fast.refreshAll(netlinkNeigh{h})
				for _, p := range d.byName {
					deferred = deferred || p.fastDeferred || p.borrowed != nil
				}
			}
			d.mu.Unlock()
			if deferred {
				// The TCX queries and the socket listing go by the thread's namespace.
				inNetns(nsh, func() {
					d.mu.Lock()
					d.finishTakeover()
					d.mu.Unlock()
				})
			}
		}
	}()
}

// inNetns runs fn with the calling goroutine locked to its thread, the thread in ns.
func inNetns(ns netns.NsHandle, fn func()) {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return
	}
	defer orig.Close()
	if err := netns.Set(ns); err != nil {
		runtime.UnlockOSThread()
		return
	}
	fn()
	if netns.Set(orig) == nil {
		runtime.UnlockOSThread()
	} // else the thread stays locked and ends with the goroutine
}

func (d *Datapath) acquireSrc(local netip.Addr) (*srcSockets, error) {
	if s, ok := d.src[local]; ok {
		s.refs++
		return s, nil
	}
	s, err := openSrcSockets(local, d.opts.SourcePorts, d.opts.SocketBuffer)
	if err != nil {
		return nil, err
	}
	s.refs = 1
	d.src[local] = s
	return s, nil
}

func (d *Datapath) releaseSrc(s *srcSockets) {
	if s.refs--; s.refs == 0 {
		delete(d.src, s.local)
		s.close()
	}
}

// acquireRx returns the receive group for local, starting it if needed.
func (d *Datapath) acquireRx(local netip.AddrPort) (*rxGroup, error) {
	if g, ok := d.rx[local]; ok {
		g.refs++
		return g, nil
	}
	pipe, err := fallback.NewPipeline(fallback.PipelineOptions{Workers: d.opts.Workers,
		Reassembly: perWorker(*d.opts.Reassembly, d.opts.Workers), Ports: d.ports})
	if err != nil {
		return nil, err
	}
	g := &rxGroup{local: local, pipe: pipe, ports: d.ports, refs: 1, expire: d.opts.ExpireInterval,
		nice: d.opts.WorkerNice}
	if d.opts.Standby {
		g.standby = make(chan struct{})
	}
	if g.stopfd, err = eventFD(); err != nil {
		return nil, err
	}
	for _, w := range pipe.Workers() {
		fd, err := rxSocket(local, d.opts.SocketBuffer)
		if err != nil {
			g.stop()
			return nil, err
		}
		g.fds = append(g.fds, fd)
		if g.standby != nil {
			// Out of reuseport selection at once; a datagram that came in between bind and
			// here stays queued until activate.
			if err := unix.Connect(fd, g.parking()); err != nil {
				g.stop()
				return nil, fmt.Errorf("standby receive socket %v: %w", local, err)
			}
		}
		r := newRxWorker(g, fd, w)
		g.workers = append(g.workers, r)
		g.wg.Add(1)
		go r.run()
	}
	d.rx[local] = g
	return g, nil
}

func (d *Datapath) releaseRx(g *rxGroup) {
	if g.refs--; g.refs == 0 {
		delete(d.rx, g.local)
		g.stop()
		g.pipe.Stop()
		d.retired.addGroup(g)
	}
}

// leave takes the group's sockets out of the SO_REUSEPORT group without closing them, so
// that the kernel steers new datagrams to the other members (a successor agent's sockets)
// while these still hold what was queued. A connected UDP socket is skipped by reuseport
// selection and only matches datagrams from the address it is connected to; the sockets are
// connected to port 9 (discard) of their own address, from which no tunnel traffic comes.
// The workers keep reading meanwhile. Idempotent; called with Datapath.mu held.
func (g *rxGroup) leave() {
	if g.left {
		return
	}
	g.left = true
	for _, fd := range g.fds {
		_ = unix.Connect(fd, g.parking()) // on failure the socket leaves at close, as before
	}
}

// parking is where a receive socket is connected to take it out of reuseport selection:
// port 9 (discard) of its own address, from which no tunnel traffic comes.
func (g *rxGroup) parking() *unix.SockaddrInet4 {
	to := &unix.SockaddrInet4{Addr: g.local.Addr().As4(), Port: 9}
	if g.local.Addr().IsUnspecified() {
		to.Addr = [4]byte{127, 0, 0, 1}
	}
	return to
}

// activate ends a standby group's standby: its sockets are disconnected (connect
// AF_UNSPEC; the bound address and port stay), so the kernel picks them again, and the
// workers start reading, first what queued meanwhile. Called with Datapath.mu held.
func (g *rxGroup) activate() error {
	if g.standby == nil || g.activated {
		return nil
	}
	g.activated = true
	var err error
	if !g.left {
		for _, fd := range g.fds {
			if e := disconnect(fd); e != nil && err == nil {
				err = fmt.Errorf("activate receive socket %v: %w", g.local, e)
			}
		}
	}
	close(g.standby)
	return err
}

// stop leaves the reuseport group (if not done yet), lets the workers drain their sockets,
// ends them and closes the sockets. Idempotent; called with Datapath.mu held.
func (g *rxGroup) stop() {
	if g.stopped {
		return
	}
	g.stopped = true
	if !g.left {
		g.leave()
		time.Sleep(leaveSettle)
	}
	g.stopping.Store(true)
	signalFD(g.stopfd)
	if g.standby != nil && !g.activated {
		g.activated = true
		close(g.standby) // workers that never started read only what queued, then stop
	}
	g.wg.Wait()
	for _, fd := range g.fds {
		unix.Close(fd)
	}
	unix.Close(g.stopfd)
}

// perWorker divides the datapath-wide reassembly caps among n workers (each worker has its
// own reassembler), so the sum over workers never exceeds the configured caps.
func perWorker(c sclp.Config, n int) sclp.Config {
	if n <= 1 {
		return c
	}
	d := sclp.DefaultConfig()
	div := func(v, def int) int {
		if v == 0 {
			v = def
		}
		return max(v/n, 1)
	}
	c.MaxBytes = div(c.MaxBytes, d.MaxBytes)
	c.MaxEntries = div(c.MaxEntries, d.MaxEntries)
	c.MaxPeerBytes = div(c.MaxPeerBytes, d.MaxPeerBytes)
	c.MaxPeerEntries = div(c.MaxPeerEntries, d.MaxPeerEntries)
	return c
}
