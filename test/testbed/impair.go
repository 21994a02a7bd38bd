//go:build linux

package testbed

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Direction is the way a frame crosses an Impairer.
type Direction int

const (
	// AtoB is from the first host NewImpairedHosts returns to the second.
	AtoB Direction = 0
	// BtoA is from the second host to the first.
	BtoA Direction = 1
)

// String returns "a->b" or "b->a".
func (d Direction) String() string {
	if d == AtoB {
		return "a->b"
	}
	return "b->a"
}

// ImpairAction is what an Impairer did with a matched frame.
type ImpairAction uint8

const (
	// Forward relays the frame unchanged.
	Forward ImpairAction = iota
	// Drop discards the frame.
	Drop
	// Duplicate relays the frame twice in a row.
	Duplicate
	// Reorder holds the frame back and relays it right after the next matched frame of the
	// same direction (or after 50 ms without traffic, if nothing follows).
	Reorder
)

// String returns the action's lower-case name.
func (a ImpairAction) String() string {
	switch a {
	case Forward:
		return "forward"
	case Drop:
		return "drop"
	case Duplicate:
		return "duplicate"
	case Reorder:
		return "reorder"
	}
	return fmt.Sprintf("action(%d)", a)
}

// Pick selects matched frames by number: n counts the matched frames of one direction from
// 1. A nil Pick selects none.
type Pick func(n uint64) bool

// Every picks every k-th matched frame (k, 2k, ...); k <= 0 picks none.
func Every(k int) Pick {
	if k <= 0 {
		return nil
	}
	return func(n uint64) bool { return n%uint64(k) == 0 }
}

// Numbers picks exactly the matched frames numbered ns.
func Numbers(ns ...uint64) Pick {
	set := make(map[uint64]bool, len(ns))
	for _, n := range ns {
		set[n] = true
	}
	return func(n uint64) bool { return set[n] }
}

// ImpairConfig says which frames an Impairer impairs and how. A matched frame picked by more
// than one Pick is dropped if Drop picks it, else duplicated, else reordered; a Reorder pick
// while a frame is already held back is relayed unchanged (one frame is held at most).
type ImpairConfig struct {
	// Match selects the frames subject to impairment (see MatchIPv4Proto, MatchUDPDstPort);
	// every other frame is relayed untouched and not numbered. Nil matches nothing.
	Match func(frame []byte) bool
	// Drop, Duplicate and Reorder pick the matched frames to impair.
	Drop, Duplicate, Reorder Pick
	// OneWay impairs only AtoB; BtoA frames are relayed untouched (and not numbered).
	OneWay bool
	// Unpinned lets the relays run on any CPU. By default each direction's relay runs on its
	// own locked OS thread pinned to one CPU (a->b on CPU 0, b->a on CPU 1 if there is one),
	// as a NIC queue's interrupt is: every frame of a direction enters the far host's receive
	// path on one CPU, which per-CPU receive state (the rx program's merge slot) relies on.
	// Unpinned, a relay that migrates mid-message splits a message across CPUs.
	Unpinned bool
	// OnFrame, if set, is called for every matched frame with its direction, number and
	// action, from the relay goroutine of that direction, before the frame is relayed. The
	// frame is only valid during the call. It must not block for long.
	OnFrame func(dir Direction, n uint64, act ImpairAction, frame []byte)
}

// MatchIPv4Proto matches IPv4 packets (EtherType 0x0800, no VLAN tag) of IP protocol proto,
// for example 234 for SCLP in IP.
func MatchIPv4Proto(proto uint8) func([]byte) bool {
	return func(f []byte) bool {
		return len(f) >= 14+20 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[14+9] == proto
	}
}

// MatchUDPDstPort matches IPv4 UDP datagrams to port, for example SCLP in UDP.
func MatchUDPDstPort(port uint16) func([]byte) bool {
	isUDP := MatchIPv4Proto(unix.IPPROTO_UDP)
	return func(f []byte) bool {
		if !isUDP(f) {
			return false
		}
		ihl := int(f[14]&0xf) * 4
		return len(f) >= 14+ihl+8 && binary.BigEndian.Uint16(f[14+ihl+2:]) == port
	}
}

// ImpairCounters count what an Impairer did in one direction.
type ImpairCounters struct {
	// Relayed counts every frame read (matched or not); Matched the frames Match selected.
	Relayed, Matched uint64
	// Dropped, Duplicated and Reordered count matched frames by action.
	Dropped, Duplicated, Reordered uint64
	// Missed counts frames the kernel dropped before the relay read them (its socket's
	// receive buffer was full: PACKET_STATISTICS tp_drops). Non-zero means loss the config did
	// not ask for: the senders outran the relay.
	Missed uint64
}

// Add returns the sum of c and o.
func (c ImpairCounters) Add(o ImpairCounters) ImpairCounters {
	return ImpairCounters{Relayed: c.Relayed + o.Relayed, Matched: c.Matched + o.Matched,
		Dropped: c.Dropped + o.Dropped, Duplicated: c.Duplicated + o.Duplicated,
		Reordered: c.Reordered + o.Reordered, Missed: c.Missed + o.Missed}
}

// Impairer is a deterministic L2 relay between two devices of a middle namespace: one
// AF_PACKET socket per device and one goroutine per direction, which relays every frame as
// read and impairs the matched ones as its ImpairConfig says. The kernel has no netem; this
// replaces it for tests. It stops on the Cleanup of the TB that created it.
type Impairer struct {
	cfg      ImpairConfig
	fds      [2]int
	stopping atomic.Bool
	wg       sync.WaitGroup
	dirs     [2]dirCounters
	mu       sync.Mutex // guards missed and reading the sockets' statistics
	missed   [2]uint64
}

type dirCounters struct {
	relayed, matched, dropped, duplicated, reordered atomic.Uint64
}

// Counters returns what the impairer did in direction d so far.
func (im *Impairer) Counters(d Direction) ImpairCounters {
	c := &im.dirs[d]
	return ImpairCounters{Relayed: c.relayed.Load(), Matched: c.matched.Load(), Dropped: c.dropped.Load(),
		Duplicated: c.duplicated.Load(), Reordered: c.reordered.Load(), Missed: im.readMissed(d)}
}

// readMissed accumulates and returns the kernel's drop count of direction d's socket (the
// kernel resets it on every read).
func (im *Impairer) readMissed(d Direction) uint64 {
	im.mu.Lock()
	defer im.mu.Unlock()
	if !im.stopping.Load() && im.fds[d] >= 0 {
		if st, err := unix.GetsockoptTpacketStats(im.fds[d], unix.SOL_PACKET, unix.PACKET_STATISTICS); err == nil {
			im.missed[d] += uint64(st.Drops)
		}
	}
	return im.missed[d]
}

// Total returns the counters of both directions summed.
func (im *Impairer) Total() ImpairCounters { return im.Counters(AtoB).Add(im.Counters(BtoA)) }

// relayDevs are the middle namespace's ends of the links to the two hosts.
var relayDevs = [2]string{"a0", "a1"}

// NewImpairedHosts builds two hosts like NewHosts, but joined through a middle namespace
// whose Impairer relays between them: host0 ul0 -- a0 [mid] a1 -- ul0 host1. opts.N must be
// 0 or 2; KeepOffloads is ignored (the relay impairs real, MTU-sized frames) and tx
// checksumming is always off on the hosts' underlays: the relay copies bytes, so a
// CHECKSUM_PARTIAL packet would reach the far host with its checksum unfinished. The relay's
// own devices run without GRO or offloads, so it reads frames one by one as they were sent.
func NewImpairedHosts(tb TB, opts HostsOptions, cfg ImpairConfig) ([]*Host, *Impairer) {
	tb.Helper()
	opts.defaults()
	if opts.N != 2 {
		tb.Fatalf("testbed: NewImpairedHosts builds 2 hosts, not %d", opts.N)
	}
	opts.KeepOffloads, opts.TxChecksumOff = false, true
	mid := NewNS(tb, "mid")
	hosts := make([]*Host, 2)
	addr := opts.Subnet.Masked().Addr()
	for i := range hosts {
		addr = addr.Next()
		ns := NewNS(tb, fmt.Sprintf("%s%d", opts.Prefix, i+1))
		hosts[i] = &Host{NS: ns, Underlay: opts.Underlay, IP: addr,
			Prefix: netip.PrefixFrom(addr, opts.Subnet.Bits()), MTU: opts.MTU, Index: i}
		LinkWith(tb, ns, opts.Underlay, mid, relayDevs[i], LinkOptions{MTU: opts.MTU})
		hosts[i].configure(tb, opts)
		mid.Ethtool(tb, relayDevs[i], "gro", "off")
		mid.RealFrames(tb, relayDevs[i])
	}
	im := &Impairer{cfg: cfg, fds: [2]int{-1, -1}}
	tb.Cleanup(im.stop) // registered first: also closes sockets opened before a failure
	if err := mid.Do(im.open); err != nil {
		tb.Fatalf("testbed: impairer: %v", err)
	}
	for d := range 2 {
		im.wg.Add(1)
		go im.relay(Direction(d))
	}
	return hosts, im
}

// open creates the two packet sockets (inside the middle namespace).
func (im *Impairer) open() error {
	for i, dev := range relayDevs {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return fmt.Errorf("packet socket on %s: %w", dev, err)
		}
		im.fds[i] = fd
		// Never read back what the relay itself writes; a deep buffer so bursts are not lost.
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1); err != nil {
			return fmt.Errorf("PACKET_IGNORE_OUTGOING: %w", err)
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20)
		tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
			return fmt.Errorf("bind %s: %w", dev, err)
		}
	}
	return nil
}

// stop ends both relays and closes the sockets; idempotent.
func (im *Impairer) stop() {
	if im.stopping.Swap(true) {
		return
	}
	im.wg.Wait()
	im.mu.Lock()
	defer im.mu.Unlock()
	for i, fd := range im.fds {
		if fd >= 0 {
			unix.Close(fd)
			im.fds[i] = -1
		}
	}
}

// relay moves frames in direction d until stopped. Each read waits at most 50 ms, so a stop
// takes effect within that.
func (im *Impairer) relay(d Direction) {
	defer im.wg.Done()
	if !im.cfg.Unpinned {
		// The goroutine exits with its thread locked, so the runtime discards the thread and
		// its affinity never reaches other goroutines.
		runtime.LockOSThread()
		var set unix.CPUSet
		set.Set(int(d) % runtime.NumCPU())
		_ = unix.SchedSetaffinity(0, &set)
	}
	from, to := im.fds[d], im.fds[1-d]
	c := &im.dirs[d]
	buf := make([]byte, 65536)
	var held []byte // the frame held back by Reorder (one at most)
	release := func() {
		if held != nil {
			_, _ = unix.Write(to, held)
			held = nil
		}
	}
	var n uint64
	for !im.stopping.Load() {
		m, _, err := unix.Recvfrom(from, buf, 0)
		if err != nil {
			if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
				release() // nothing followed: let the held frame go
			}
			continue
		}
		f := buf[:m]
		c.relayed.Add(1)
		if im.cfg.Match == nil || (im.cfg.OneWay && d != AtoB) || !im.cfg.Match(f) {
			_, _ = unix.Write(to, f)
			continue
		}
		n++
		c.matched.Add(1)
		act := im.action(n, held != nil)
		if im.cfg.OnFrame != nil {
			im.cfg.OnFrame(d, n, act, f)
		}
		switch act {
		case Drop:
			c.dropped.Add(1)
			continue
		case Duplicate:
			c.duplicated.Add(1)
			_, _ = unix.Write(to, f)
		case Reorder:
			c.reordered.Add(1)
			held = append([]byte(nil), f...)
			continue
		}
		_, _ = unix.Write(to, f)
		release()
	}
	release()
}

// action decides what to do with matched frame n.
func (im *Impairer) action(n uint64, holding bool) ImpairAction {
	picked := func(p Pick) bool { return p != nil && p(n) }
	switch {
	case picked(im.cfg.Drop):
		return Drop
	case picked(im.cfg.Duplicate):
		return Duplicate
	case picked(im.cfg.Reorder) && !holding:
		return Reorder
	}
	return Forward
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }
