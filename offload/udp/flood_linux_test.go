//go:build linux

package udp

import (
	"context"
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

// flood sends, from the calling namespace's socket fd, batches of 44 first segments of
// 60 KB messages that never finish (each its own id) to dst until stop is set.
func flood(fd int, dst netip.AddrPort, stop *atomic.Bool) (sent uint64) {
	snd, _ := newSender(1460, stop.Load)
	chunk := make([]byte, 1460)
	raw := sockaddr4(dst)
	id := uint32(0x10000)
	for !stop.Load() {
		// One sendmsg of 44 datagrams, each a first segment announcing 60000 more bytes.
		for k := range snd.perSend {
			h := sclp.Header{SrcPort: 50001, DstPort: sclp.VXLANPort, ID: id, First: true, Remaining: 60000}
			id += 2
			hb := snd.hdrs[k*sclp.HeaderLen : (k+1)*sclp.HeaderLen]
			h.Put(hb)
			snd.iov[2*k] = unix.Iovec{Base: &hb[0], Len: sclp.HeaderLen}
			snd.iov[2*k+1] = unix.Iovec{Base: &chunk[0], Len: uint64(len(chunk))}
		}
		snd.dst = raw
		if snd.flush(fd, snd.perSend) != nil {
			return sent
		}
		sent += uint64(snd.perSend)
	}
	return sent
}

// TestFloodOfFirstSegments: a configured peer floods first segments of messages that never
// finish while a legitimate TCP flow runs from another peer. The receiver's buffered bytes
// never exceed the cap, and the legitimate transfer stays intact; its rate with and without
// the flood is reported (2 shared vCPUs: the flood also competes for CPU).
func TestFloodOfFirstSegments(t *testing.T) {
	const capBytes = 16 << 20
	cfg := sclp.Config{MaxBytes: capBytes, MaxPeerBytes: capBytes / 2}
	p := newPair(t, pairOptions{opts: Options{Reassembly: &cfg},
		between: func(t testing.TB) []*testbed.Host { return testbed.NewHosts(t, testbed.HostsOptions{N: 3}) }})
	attacker, rx := p.hosts[2], p.hosts[1]
	// The attacker is a configured peer of the receiver (its own port), so its segments reach
	// the reassembler instead of being dropped as from an unknown peer.
	vm := testbed.NewVM(t, rx.NS, testbed.VMOptions{MTU: 1500})
	if err := rx.Do(func() error {
		return p.dps[1].EnsurePort(context.Background(), offload.PortSpec{Name: "sclpf", PeerName: vm.HostDev,
			Peer: attacker.IP, Local: rx.IP, Device: rx.Underlay, VNI: 5002, Mode: offload.ModeUDP, MTU: 1500})
	}); err != nil {
		t.Fatal(err)
	}
	p.ping(t)
	base := p.tcpTransfer(t, 32<<20, 64<<10)

	var fd int
	if err := attacker.Do(func() (err error) {
		fd, err = txSocket(netip.AddrPortFrom(attacker.IP, 50001), 8<<20)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	var stop atomic.Bool
	var sent uint64
	var maxBuf atomic.Int64
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); sent = flood(fd, netip.AddrPortFrom(rx.IP, offload.DefaultUDPPort), &stop) }()
	go func() {
		defer wg.Done()
		for !stop.Load() {
			if b := int64(p.dps[1].Stats().Reassembly.Reassembly.BufferedBytes); b > maxBuf.Load() {
				maxBuf.Store(b)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	time.Sleep(500 * time.Millisecond) // let the flood fill the buffers
	flooded := p.tcpTransfer(t, 32<<20, 64<<10)
	stop.Store(true)
	wg.Wait()
	st := p.dps[1].Stats()
	r := st.Reassembly.Reassembly
	t.Logf("legitimate TCP: %.2f Gbit/s alone, %.2f Gbit/s under flood (%.0f%%); flood: %d first segments sent, %d received",
		base, flooded, 100*flooded/base, sent, st.RxSegments)
	t.Logf("receiver: max buffered %d bytes (cap %d), evicted %d, over_limit %d, timed out %d",
		maxBuf.Load(), capBytes, r.Drops[sclp.DropEvicted], r.Drops[sclp.DropOverLimit], st.Reassembly.TimedOut())
	// The same flood from an address that is no port's peer is dropped per batch before
	// reassembly: what the legitimate flow loses then is the CPU the flood itself costs.
	if err := rx.Do(func() error { return p.dps[1].RemovePort(context.Background(), "sclpf") }); err != nil {
		t.Fatal(err)
	}
	stop.Store(false)
	wg.Add(1)
	go func() { defer wg.Done(); flood(fd, netip.AddrPortFrom(rx.IP, offload.DefaultUDPPort), &stop) }()
	time.Sleep(200 * time.Millisecond)
	unknown := p.tcpTransfer(t, 32<<20, 64<<10)
	stop.Store(true)
	wg.Wait()
	t.Logf("legitimate TCP under the same flood from an unconfigured address: %.2f Gbit/s (%.0f%%); %d batches dropped as unknown peer",
		unknown, 100*unknown/base, p.dps[1].Stats().RxUnknownPeer)
	if maxBuf.Load() > capBytes {
		t.Errorf("buffered %d bytes, cap %d", maxBuf.Load(), capBytes)
	}
	if r.Drops[sclp.DropEvicted]+r.Drops[sclp.DropOverLimit] == 0 {
		t.Errorf("the flood never reached the cap (nothing evicted): test did not test")
	}
}
