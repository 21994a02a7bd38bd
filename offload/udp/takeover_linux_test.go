//go:build linux

package udp

import (
	"context"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestTakeoverNoDuplicates: a successor datapath (Standby, transmit fast path on) joins a
// running one on host 0, as an agent taking over does, and small datagrams flow from VM 0 to
// VM 1 over 16 flows (spread over both datapaths' fanout sockets) while both run, then again
// after the old one closed and FinishTakeover returned. Every datagram arrives exactly once
// in both phases: while the old datapath's sockets are in the fanout group the successor
// sends nothing through its own program (its sockets skip exactly what the old one's program
// sends, or with an old datapath without a transmit fast path take everything); after, the
// successor's own transmit fast path carries the one-segment frames.
//
// old_nofastpath: the running datapath has no transmit fast path (an earlier version, or
// --udp-fast-path=false); equal: both have it (the successor borrows the old one's filter);
// new_nofastpath: only the old one has it (a downgrade; the successor's sockets carry the
// old one's filter until its program is gone).
// Found by review: 700 of 1600 datagrams were delivered twice in the first case.
func TestTakeoverNoDuplicates(t *testing.T) {
	t.Run("old_nofastpath", func(t *testing.T) { testTakeoverDuplicates(t, true, false) })
	t.Run("equal", func(t *testing.T) { testTakeoverDuplicates(t, false, false) })
	t.Run("new_nofastpath", func(t *testing.T) { testTakeoverDuplicates(t, false, true) })
}

func testTakeoverDuplicates(t *testing.T, oldNoFast, newNoFast bool) {
	// Every-frame mode (Options.FastPathAllFrames): by default the fast path leaves UDP
	// datagrams to the sockets (flow order) and carries only frames such as TCP ACKs and
	// ICMP, with the same socket filter and program, so the same rules apply to those.
	p := newPair(t, pairOptions{opts: Options{NoFastPath: oldNoFast, FastPathAllFrames: true}})
	p.ping(t)
	old := p.dps[0]
	var succ *Datapath
	if err := p.hosts[0].Do(func() (err error) {
		if succ, err = New(Options{Standby: true, FastPathAllFrames: true, NoFastPath: newNoFast}); err != nil {
			return err
		}
		return succ.EnsurePort(context.Background(), p.specs[0])
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { succ.Close() })
	if err := succ.Activate(); err != nil {
		t.Fatal(err)
	}
	succ.mu.Lock()
	deferred, borrowed := succ.byName["sclp0"].fastDeferred, succ.byName["sclp0"].borrowed != nil
	if succ.fast != nil {
		borrowed = borrowed || succ.fast.keys["sclp0"].borrowed != nil
	}
	succ.mu.Unlock()
	if deferred == newNoFast || borrowed == oldNoFast {
		t.Errorf("successor: transmit fast path deferred %v (want %v), old datapath's filter borrowed %v (want %v)",
			deferred, !newNoFast, borrowed, !oldNoFast)
	}
	// Longer than a neighbour refresh: a successor that did not defer would have written its
	// transmit entry by now.
	time.Sleep(neighRefresh + 200*time.Millisecond)
	rc := newDupCounter(t, p.vms[1], 7200)

	const flows, per = 16, 50
	rc.send(t, p.vms[0], p.vms[1], 0, flows, per)
	rc.check(t, "both datapaths running", flows*per)
	st := succ.Stats().Ports["sclp0"]
	if st.TxFastFrames != 0 {
		t.Errorf("the successor sent %d frames through its own program while the old datapath's sockets were in the group", st.TxFastFrames)
	}
	// The frames went where they should: when the old datapath has the transmit fast path
	// its program sends them all; else the fanout gives part of them to the successor's
	// sockets.
	if ot := old.Stats().Ports["sclp0"]; oldNoFast && (ot.TxFastFrames != 0 || st.TxFrames == 0) ||
		!oldNoFast && ot.TxFastFrames < flows*per {
		t.Errorf("unexpected split: old %+v, successor %+v", ot, st)
	}

	if err := old.Close(); err != nil {
		t.Fatal(err)
	}
	if oldNoFast || newNoFast {
		if err := p.hosts[0].Do(func() error {
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			return succ.FinishTakeover(ctx)
		}); err != nil {
			t.Fatal(err)
		}
	} else {
		// Without FinishTakeover: the neighbour refresh finds the veth free by itself.
		deferred := func() bool {
			succ.mu.Lock()
			defer succ.mu.Unlock()
			return succ.byName["sclp0"].fastDeferred || succ.byName["sclp0"].borrowed != nil
		}
		for end := time.Now().Add(3 * time.Second); deferred() && time.Now().Before(end); {
			time.Sleep(20 * time.Millisecond)
		}
		if deferred() {
			t.Fatal("the successor's transmit fast path is still deferred 3 s after the old datapath closed")
		}
	}
	rc.send(t, p.vms[0], p.vms[1], flows*per, flows, per)
	rc.check(t, "after the takeover", 2*flows*per)
	succ.mu.Lock()
	if succ.byName["sclp0"].fastDeferred || succ.byName["sclp0"].borrowed != nil {
		t.Errorf("the successor still defers its fast path or carries the old filter after FinishTakeover")
	}
	succ.mu.Unlock()
	if n := succ.Stats().Ports["sclp0"].TxFastFrames; newNoFast != (n == 0) {
		t.Errorf("the successor's transmit fast path sent %d frames after the takeover (want some iff it has one)", n)
	}
}

// dupCounter counts numbered datagrams received on a VM.
type dupCounter struct {
	c    *net.UDPConn
	mu   sync.Mutex
	seen map[uint32]int
}

func newDupCounter(t testing.TB, vm *testbed.VM, port int) *dupCounter {
	t.Helper()
	r := &dupCounter{seen: map[uint32]int{}}
	if err := vm.Do(func() (err error) {
		r.c, err = net.ListenUDP("udp4", &net.UDPAddr{IP: vm.IP.AsSlice(), Port: port})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	_ = r.c.SetReadBuffer(8 << 20)
	done := make(chan struct{})
	go func() {
		defer close(done)
		b := make([]byte, 2048)
		for {
			n, err := r.c.Read(b)
			if err != nil {
				return
			}
			if n >= 4 {
				r.mu.Lock()
				r.seen[binary.BigEndian.Uint32(b)]++
				r.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { r.c.Close(); <-done })
	return r
}

// send sends flows*per 200-byte datagrams numbered from first, each flow from its own
// source port.
func (r *dupCounter) send(t testing.TB, from, to *testbed.VM, first, flows, per int) {
	t.Helper()
	b := make([]byte, 200)
	for f := range flows {
		var sc *net.UDPConn
		if err := from.Do(func() (err error) {
			sc, err = net.DialUDP("udp4", nil, &net.UDPAddr{IP: to.IP.AsSlice(), Port: r.c.LocalAddr().(*net.UDPAddr).Port})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		for i := range per {
			binary.BigEndian.PutUint32(b, uint32(first+f*per+i))
			if _, err := sc.Write(b); err != nil {
				t.Errorf("send: %v", err)
			}
			time.Sleep(100 * time.Microsecond)
		}
		sc.Close()
	}
}

// check waits (bounded) until want distinct datagrams arrived, lets late copies come, and
// fails on any loss or duplicate.
func (r *dupCounter) check(t testing.TB, phase string, want int) {
	t.Helper()
	count := func() (distinct, dups int) {
		r.mu.Lock()
		defer r.mu.Unlock()
		for _, c := range r.seen {
			distinct++
			dups += c - 1
		}
		return distinct, dups
	}
	for end := time.Now().Add(3 * time.Second); time.Now().Before(end); time.Sleep(20 * time.Millisecond) {
		if d, _ := count(); d >= want {
			break
		}
	}
	time.Sleep(100 * time.Millisecond) // duplicates come right after their originals
	d, dups := count()
	t.Logf("%s: %d of %d distinct, %d duplicates", phase, d, want, dups)
	if d != want || dups != 0 {
		t.Errorf("%s: %d of %d datagrams lost, %d delivered twice (want 0 and 0)", phase, want-d, want, dups)
	}
}

// TestFastPortCountersFailure: a port whose counters cannot be written (addPort fails
// before it takes a reference to its local address) leaves the references of another port
// on the same local address and underlay as they were (review finding: it dropped one it
// never took, so the local address left the map while a port still used it).
func TestFastPortCountersFailure(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (BPF)")
	}
	f, err := loadFastPath()
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(f.close)
	f.attach = func(int, *ebpf.Program) (link.Link, error) { return nopLink{}, nil }
	spec := offload.PortSpec{Name: "a", Peer: netip.MustParseAddr("10.0.0.2"), Local: netip.MustParseAddr("10.0.0.1"),
		VNI: 7, DstPort: 7777, Device: "ul0"}
	if err := f.addPort(spec, 3, 10, 1400); err != nil {
		t.Fatal(err)
	}
	// Counters that take no entry for ifindex 11.
	small, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4,
		ValueSize: f.objs.PortStats.ValueSize(), MaxEntries: 1})
	if err != nil {
		t.Fatal(err)
	}
	stats := f.objs.PortStats
	f.objs.PortStats = small
	spec.Name, spec.Peer = "b", netip.MustParseAddr("10.0.0.3")
	err = f.addPort(spec, 3, 11, 1400)
	f.objs.PortStats = stats
	small.Close()
	if err == nil {
		t.Fatal("addPort with a full counter map succeeded")
	}
	k := bpf.SclpUdpLocalKey{Addr: be32(spec.Local), Port: spec.DstPort}
	var v uint32
	if n := f.locals[k]; n != 1 || f.objs.Locals.Lookup(k, &v) != nil {
		t.Errorf("local address references %d (want 1), in the map: %v", n, f.objs.Locals.Lookup(k, &v) == nil)
	}
	if rl := f.links[3]; rl == nil || rl.refs != 1 {
		t.Errorf("underlay link %+v, want one reference", rl)
	}
}

// nopLink is a link that was never attached.
type nopLink struct{ link.Link }

func (nopLink) Close() error { return nil }

// TestFanoutMembers: the sock_diag listing finds exactly the packet sockets of one fanout
// group (by inode) in the calling thread's namespace, and none of another group's.
func TestFanoutMembers(t *testing.T) {
	if testing.Short() || os.Geteuid() != 0 {
		t.Skip("needs root (namespaces)")
	}
	ns := testbed.NewNS(t, "fo")
	err := ns.Do(func() error {
		lo, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		want := map[uint64]bool{}
		for g, n := range map[int]int{0x1234: 3, 0x1235: 1} {
			for range n {
				fd, err := packetSocket(lo.Index, g, 1<<16)
				if err != nil {
					return err
				}
				t.Cleanup(func() { unix.Close(fd) })
				var st unix.Stat_t
				if err := unix.Fstat(fd, &st); err != nil {
					return err
				}
				if g == 0x1234 {
					want[st.Ino] = true
				}
			}
		}
		got, err := fanoutMembers(0x1234)
		if err != nil {
			return err
		}
		if len(got) != len(want) {
			t.Errorf("group members %v, want %v", got, want)
		}
		for _, ino := range got {
			if !want[ino] {
				t.Errorf("inode %d listed, not in the group (want %v)", ino, want)
			}
		}
		if got, err := fanoutMembers(0x4321); err != nil || len(got) != 0 {
			t.Errorf("empty group: %v, %v", got, err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
