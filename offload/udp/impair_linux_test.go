//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// impairConfig says which tunnel datagrams (UDP to offload.DefaultUDPPort, counted per
// direction from 1) the impairer drops, duplicates or delays behind the next one. Zero
// disables an impairment.
type impairConfig struct {
	dropEvery, dupEvery, reorderEvery int
}

// impairer is a deterministic L2 relay between two devices of a middle namespace: every
// frame is forwarded as is except tunnel datagrams, which are impaired per impairConfig.
type impairer struct {
	cfg                                     impairConfig
	fds                                     [2]int
	stopping                                atomic.Bool
	wg                                      sync.WaitGroup
	matched, dropped, duplicated, reordered atomic.Int64
}

// impairedHosts builds host1 -- [a0 mid a1] -- host2 with the relay running in mid.
func impairedHosts(t testing.TB, cfg impairConfig) ([]*testbed.Host, *impairer) {
	mid := testbed.NewNS(t, "mid")
	var hosts []*testbed.Host
	for i, dev := range []string{"a0", "a1"} {
		ns := testbed.NewNS(t, "h")
		testbed.LinkWith(t, ns, testbed.DefaultUnderlay, mid, dev, testbed.LinkOptions{MTU: 1500})
		ns.RealFrames(t, testbed.DefaultUnderlay)
		// Full checksums on the wire: the relay copies bytes, so a CHECKSUM_PARTIAL datagram
		// would reach the far host with an unfinished UDP checksum.
		ns.Ethtool(t, testbed.DefaultUnderlay, "gro", "on", "tx", "off")
		pfx := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 0, 0, byte(i + 1)}), 24)
		ns.MustRun(t, "ip", "addr", "add", pfx.String(), "dev", testbed.DefaultUnderlay)
		hosts = append(hosts, &testbed.Host{NS: ns, Underlay: testbed.DefaultUnderlay, IP: pfx.Addr(),
			Prefix: pfx, MTU: 1500, Index: i})
	}
	// The relay reads frames one by one: no GRO, no offloads on its devices.
	for _, dev := range []string{"a0", "a1"} {
		mid.Ethtool(t, dev, "gro", "off")
		mid.RealFrames(t, dev)
	}
	im := &impairer{cfg: cfg}
	err := mid.Do(func() error {
		for i, dev := range []string{"a0", "a1"} {
			ifi, err := net.InterfaceByName(dev)
			if err != nil {
				return err
			}
			fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
			if err != nil {
				return err
			}
			im.fds[i] = fd
			_ = setsockopts(fd, sockopt{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
				sockopt{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16 << 20})
			tv := unix.NsecToTimeval(int64(50 * time.Millisecond))
			_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
			if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifi.Index}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatalf("impairer: %v", err)
	}
	for i := range 2 {
		im.wg.Add(1)
		go im.relay(im.fds[i], im.fds[1-i])
	}
	t.Cleanup(im.stop)
	return hosts, im
}

func (im *impairer) stop() {
	if im.stopping.Swap(true) {
		return
	}
	im.wg.Wait()
	unix.Close(im.fds[0])
	unix.Close(im.fds[1])
}

// isTunnel reports whether frame is IPv4 UDP to the tunnel port.
func isTunnel(f []byte) bool {
	if len(f) < 14+20+8 || binary.BigEndian.Uint16(f[12:]) != 0x0800 || f[14+9] != 17 {
		return false
	}
	ihl := int(f[14]&0xf) * 4
	return len(f) >= 14+ihl+8 && binary.BigEndian.Uint16(f[14+ihl+2:]) == offload.DefaultUDPPort
}

// relay forwards from one device to the other until stopped.
func (im *impairer) relay(from, to int) {
	defer im.wg.Done()
	buf := make([]byte, 65536)
	var held []byte
	n := 0
	for !im.stopping.Load() {
		m, _, err := unix.Recvfrom(from, buf, 0)
		if err != nil {
			if held != nil && (errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR)) {
				_, _ = unix.Write(to, held) // nothing followed: release the delayed frame
				held = nil
			}
			continue
		}
		f := buf[:m]
		if !isTunnel(f) {
			_, _ = unix.Write(to, f)
			continue
		}
		n++
		im.matched.Add(1)
		c := im.cfg
		switch {
		case c.dropEvery > 0 && n%c.dropEvery == 0:
			im.dropped.Add(1)
			continue
		case c.dupEvery > 0 && n%c.dupEvery == 0:
			_, _ = unix.Write(to, f)
			im.duplicated.Add(1)
		case c.reorderEvery > 0 && n%c.reorderEvery == 0 && held == nil:
			held = append([]byte(nil), f...)
			im.reordered.Add(1)
			continue
		}
		_, _ = unix.Write(to, f)
		if held != nil {
			_, _ = unix.Write(to, held)
			held = nil
		}
	}
}

// TestImpairedTCP: reordered, duplicated and dropped segments; 16 MB over TCP arrive
// byte-identical (lost messages are retransmitted by TCP, never delivered corrupted).
func TestImpairedTCP(t *testing.T) {
	var im *impairer
	p := newPair(t, pairOptions{between: func(t testing.TB) []*testbed.Host {
		var hosts []*testbed.Host
		hosts, im = impairedHosts(t, impairConfig{dropEvery: 211, dupEvery: 13, reorderEvery: 7})
		return hosts
	}})
	p.ping(t)
	gbps := p.tcpTransfer(t, 16<<20, 64<<10)
	st := p.dps[1].Stats().Reassembly
	t.Logf("16 MB intact at %.2f Gbit/s; impairer: %d tunnel datagrams, %d dropped, %d duplicated, %d reordered; receiver drops %v",
		gbps, im.matched.Load(), im.dropped.Load(), im.duplicated.Load(), im.reordered.Load(), st.Reassembly.Drops)
	if im.dropped.Load() == 0 || im.duplicated.Load() == 0 || im.reordered.Load() == 0 {
		t.Fatal("the impairer did not impair")
	}
}

// TestImpairedUDPAccounting: 60,000-byte datagrams (42-segment messages) through the impairer:
// none arrives corrupted, and every message that did not arrive is counted by the receiver as
// a partial message that expired (timeout or orphan) or was evicted.
func TestImpairedUDPAccounting(t *testing.T) {
	var im *impairer
	p := newPair(t, pairOptions{innerMTU: 65000, between: func(t testing.TB) []*testbed.Host {
		var hosts []*testbed.Host
		hosts, im = impairedHosts(t, impairConfig{dropEvery: 499, dupEvery: 37, reorderEvery: 11})
		return hosts
	}})
	p.ping(t)
	const sent = 400
	ok, bad, _ := p.udpTransfer(t, sent, 60000, 2*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // past the 1 s reassembly timeout
	st := p.dps[1].Stats().Reassembly
	lost := sent - ok
	t.Logf("%d of %d intact, %d corrupt, %d lost; impairer: %d datagrams, %d dropped, %d duplicated, %d reordered; receiver: timed out %d, evicted %d, drops %v",
		ok, sent, bad, lost, im.matched.Load(), im.dropped.Load(), im.duplicated.Load(), im.reordered.Load(),
		st.TimedOut(), st.Evicted(), st.Reassembly.Drops)
	if bad != 0 {
		t.Fatalf("%d corrupted datagrams delivered", bad)
	}
	if im.dropped.Load() == 0 || im.duplicated.Load() == 0 || im.reordered.Load() == 0 {
		t.Fatal("the impairer did not impair")
	}
	// A lost message is a partial message that expires: "timeout" when its first segment
	// arrived, "orphan" when the first was the one dropped. Orphans also count duplicates
	// that arrive after their message completed (they cannot be told apart from an early
	// non-first segment), so: timeouts + evicted <= lost <= timeouts + orphans + evicted.
	lo := st.Reassembly.Drops[sclp.DropTimeout] + st.Evicted()
	if uint64(lost) < lo || uint64(lost) > st.TimedOut()+st.Evicted() {
		t.Errorf("%d messages lost, but counted %d timeouts, %d orphans, %d evicted", lost,
			st.Reassembly.Drops[sclp.DropTimeout], st.Reassembly.Drops[sclp.DropOrphan], st.Evicted())
	}
	if d := st.Reassembly.Drops; d[sclp.DropDuplicate] == 0 {
		t.Errorf("no duplicate counted: %v", d)
	}
	if st.Reassembly.BufferedEntries != 0 {
		t.Errorf("%d partial messages still held after the timeout", st.Reassembly.BufferedEntries)
	}
}
