package offload

import (
	"context"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// floodVNI is the VNI of the attacker's tunnel port on the receiver.
const floodVNI = bedVNI + 1

// floodNative sends, from a raw IPv4 socket (protocol 234, the kernel adds the IPv4
// header) in the attacker's namespace, first segments of 61,468-byte messages that never
// finish: valid SCLP header and checksum, valid VXLAN header for vni, each its own id, 1,480
// bytes of IP payload. It sends as fast as one goroutine can until stop is set or limit has
// passed, and returns how many it sent.
func floodNative(fd int, vni uint32, stop *atomic.Bool, limit time.Duration) (sent uint64) {
	const payload = 1500 - 20 - sclp.HeaderLen
	pkt := make([]byte, sclp.HeaderLen+payload)
	chunk := pkt[sclp.HeaderLen:]
	sclp.PutVXLAN(chunk, vni)
	for i := sclp.VXLANHeaderLen; i < len(chunk); i++ {
		chunk[i] = byte(i)
	}
	deadline := time.Now().Add(limit)
	for id := uint32(0x40000000); !stop.Load(); id += 2 {
		h := sclp.Header{SrcPort: 50001, DstPort: sclp.VXLANPort, ID: id, First: true, Remaining: 60000}
		h.Checksum = sclp.SegmentChecksum(h, chunk)
		h.Put(pkt)
		if _, err := unix.Write(fd, pkt); err != nil && err != unix.ENOBUFS && err != unix.EAGAIN {
			return sent
		}
		sent++
		if sent%1024 == 0 && time.Now().After(deadline) {
			return sent
		}
	}
	return sent
}

// floodKind is what a round of the flood test runs next to the legitimate transfer.
type floodKind int

const (
	floodNone      floodKind = iota // the legitimate transfer alone
	floodPeer                       // the flood from a configured peer: it reaches the reassembler
	floodUnknown                    // the same flood from an address that is no peer: BPF drops it first
	floodThrottled                  // the flood from a peer, with refusals throttling it in BPF
	numFloodKinds
)

func (k floodKind) String() string {
	return [...]string{"alone", "flood from a peer", "flood from a non-peer", "peer flood, throttled"}[k]
}

// floodRound is one legitimate transfer, alone or under a flood, with the counter deltas.
type floodRound struct {
	kind  floodKind
	tr    transfer
	rx    Stats                       // receiver's BPF counters (delta)
	drops [sclp.NumDropReasons]uint64 // receiver's reassembler drops (delta)
	sent  uint64
	secs  float64
	// legitTx is the legitimate sender's segments (its tx program), legitIn an estimate of
	// those the receiver's reassembler got: pieces minus the flood's refused and evicted ones
	// (the flood's partial messages still held, at most per-peer cap / 64 KiB = 128, are not
	// subtracted).
	legitTx, legitIn uint64
}

// TestFloodOfFirstSegmentsNative: mode=ip. A third host, a configured peer of the receiver
// (its own tunnel port), floods first segments of messages that never finish, from a raw
// socket as fast as it can, while a legitimate TCP flow (TSO VMs: 64 KB frames, reassembled
// by the userspace fallback) runs from the other peer. Rounds alone, under the flood, and
// under the same flood from a non-peer (dropped by the rx program before its checksum and
// the ring: what the flood costs by merely being sent on this 2-vCPU box) and under the flood
// from the peer with the reassembler's refusals throttling the peer in BPF (offload.Throttler:
// its first segments of multi-segment messages dropped after the checksum, before the ring) are
// interleaved; the legitimate rate, the rx program's ring-buffer and throttle drops and the
// reassembler's drops are reported for each. Asserted too: throttling happens exactly in the
// throttled rounds. Asserted: the flood reached the reassembler (it hit the per-peer cap:
// refused or evicted partial messages), the buffered bytes never exceeded the cap (sampled
// every 2 ms), and the legitimate data arrived intact. Rate ratios are reported, not
// asserted (2 shared vCPUs).
func TestFloodOfFirstSegmentsNative(t *testing.T) {
	cfg := sclp.DefaultConfig()
	cfg.MaxBytes, cfg.MaxPeerBytes = 16<<20, 8<<20
	// Partial messages of the legitimate peer that the reassembler discards (it reports them
	// here; the flood's own come from another address): what the flood cost that peer.
	var legitLost [sclp.NumDropReasons]atomic.Uint64
	legitSrc := netip.MustParseAddr("10.0.0.1") // host 0 (NewHosts numbering)
	cfg.OnDrop = func(k sclp.Key, reason sclp.DropReason, _ int) {
		if k.Src == legitSrc {
			legitLost[reason].Add(1)
		}
	}
	// The throttled rounds turn throttling on; the throttler exists once the bed does.
	var throttleOn atomic.Bool
	var throttler atomic.Pointer[Throttler]
	onRefused := func(i int, src netip.Addr) {
		if th := throttler.Load(); i == 1 && th != nil && throttleOn.Load() {
			th.Refused(src)
		}
	}
	b := newNativeBed(t, bedOptions{VMOffloads: true, Fallback: true, ExtraHosts: 1, Reassembly: &cfg,
		RingSize: DefaultRingSize, OnRefused: onRefused})
	throttler.Store(b.manager(1).NewThrottler(DefaultThrottle))
	attacker, rx := b.hosts[2], b.hosts[1]
	if b.hosts[0].IP != legitSrc {
		t.Fatalf("host 0 is %v, not %v", b.hosts[0].IP, legitSrc)
	}
	vm := testbed.NewVM(t, rx.NS, testbed.VMOptions{MTU: b.innerMTU})
	floodPort := PortSpec{Name: "flood", PeerName: vm.HostDev, Peer: attacker.IP, Local: rx.IP,
		Device: rx.Underlay, VNI: floodVNI, Mode: ModeIP, MTU: b.innerMTU}
	if out, err := b.vms[0].Ping(b.vms[1].IP, 3); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	var fd int
	if err := attacker.Do(func() (err error) {
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, sclp.IPProtocol); err != nil {
			return err
		}
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
		return unix.Connect(fd, &unix.SockaddrInet4{Addr: rx.IP.As4()})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	b.tcpTransfer(8<<20, 20) // warm up
	peak := b.sampleBuffered(1)
	var rounds []floodRound
	for i := range 3 * int(numFloodKinds) {
		k := floodKind(i % int(numFloodKinds))
		throttleOn.Store(k == floodThrottled)
		r := b.floodRound(k, fd, floodPort, uint64(30+i))
		throttleOn.Store(false)
		rounds = append(rounds, r)
		time.Sleep(2 * DefaultThrottle) // a throttled round's entry expires
	}
	time.Sleep(cfg.Timeout + 200*time.Millisecond) // what the rounds broke expires
	pk := peak()
	fs, rs := b.fallbackStats(1)
	st := fs.Reassembly
	for _, r := range rounds {
		t.Logf("%-21v: legitimate %.2f Gbit/s (%d retransmissions); flood %d first segments (%.0f kpps); rx program: segments %d, to ring %d, ring full %d, unknown peer %d, throttled %d; reassembler: over_limit %d, evicted %d; legitimate segments sent %d, reached the reassembler ~%d",
			r.kind, r.tr.Gbps, r.tr.Retrans, r.sent, float64(r.sent)/r.secs/1e3, r.rx.RxSegments, r.rx.RxExcMulti+r.rx.RxExcLarge,
			r.rx.RxRingFull, r.rx.RxDropUnknownPeer, r.rx.RxThrottled, r.drops[sclp.DropOverLimit], r.drops[sclp.DropEvicted], r.legitTx, r.legitIn)
		if (r.kind == floodThrottled) != (r.rx.RxThrottled > 0) {
			t.Errorf("%v round: %d segments throttled by the rx program", r.kind, r.rx.RxThrottled)
		}
	}
	alone, peer, unknown := floodMedian(rounds, floodNone), floodMedian(rounds, floodPeer), floodMedian(rounds, floodUnknown)
	thr := floodMedian(rounds, floodThrottled)
	t.Logf("legitimate TCP, medians of 3: %.2f Gbit/s alone, %.2f under the flood from a peer (%.0f%%), %.2f under it throttled (%.0f%%), %.2f under the flood from a non-peer (%.0f%%); its partial messages the reassembler discarded: %d; throttler %+v",
		alone, peer, 100*peer/alone, thr, 100*thr/alone, unknown, 100*unknown/alone, sumLoads(legitLost[:]), throttler.Load().Stats())
	t.Logf("receiver reassembler: buffer peak %d bytes / %d entries (cap %d, per peer %d; %d samples); over_limit %d, evicted %d, timeout %d, orphan %d, completed %d; ring reader %+v",
		pk.Bytes, pk.Entries, cfg.MaxBytes, cfg.MaxPeerBytes, pk.Samples, st.Drops[sclp.DropOverLimit], st.Drops[sclp.DropEvicted],
		st.Drops[sclp.DropTimeout], st.Drops[sclp.DropOrphan], st.Completed, rs)
	if pk.Bytes > cfg.MaxBytes || pk.Samples < 10 {
		t.Errorf("buffered %d bytes (%d samples), cap %d", pk.Bytes, pk.Samples, cfg.MaxBytes)
	}
	var sent uint64
	for _, r := range rounds {
		sent += r.sent
	}
	if sent == 0 || st.Drops[sclp.DropOverLimit]+st.Drops[sclp.DropEvicted] == 0 {
		t.Errorf("the flood (%d first segments sent) never reached the reassembler's cap: test did not test", sent)
	}
}

// floodRound runs one 32 MB legitimate transfer next to a flood of kind k (the attacker's
// port floodPort exists only for floodPeer rounds) and returns its measurements.
func (b *nativeBed) floodRound(k floodKind, fd int, floodPort PortSpec, seed uint64) floodRound {
	t := b.t
	r := floodRound{kind: k}
	ctx := context.Background()
	if k == floodPeer || k == floodThrottled {
		if err := b.manager(1).EnsurePort(ctx, floodPort); err != nil {
			t.Fatal(err)
		}
		defer func() {
			if err := b.manager(1).RemovePort(ctx, floodPort.Name); err != nil {
				t.Fatal(err)
			}
		}()
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	before, txBefore := b.stats(1), b.stats(0)
	fb, _ := b.fallbackStats(1)
	start := time.Now()
	if k != floodNone {
		wg.Add(1)
		go func() { defer wg.Done(); r.sent = floodNative(fd, floodVNI, &stop, 20*time.Second) }()
		time.Sleep(300 * time.Millisecond) // the flood fills the attacker's share first
	}
	r.tr = b.tcpTransfer(32<<20, seed)
	stop.Store(true)
	wg.Wait()
	r.secs = time.Since(start).Seconds()
	r.rx = b.stats(1).Sub(before)
	fa, _ := b.fallbackStats(1)
	for i := range r.drops {
		r.drops[i] = fa.Reassembly.Drops[i] - fb.Reassembly.Drops[i]
	}
	r.legitTx = b.stats(0).Sub(txBefore).TxSegments
	r.legitIn = fa.Pieces - fb.Pieces - r.drops[sclp.DropOverLimit] - r.drops[sclp.DropEvicted]
	return r
}

// sumLoads returns the sum of the counters.
func sumLoads(c []atomic.Uint64) uint64 {
	var n uint64
	for i := range c {
		n += c[i].Load()
	}
	return n
}

// floodMedian returns the median legitimate rate of the rounds of kind k.
func floodMedian(rounds []floodRound, k floodKind) float64 {
	var v []float64
	for _, r := range rounds {
		if r.kind == k {
			v = append(v, r.tr.Gbps)
		}
	}
	slices.Sort(v)
	return v[len(v)/2]
}
