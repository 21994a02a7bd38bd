//go:build linux

package udp

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// flood sends, from the calling namespace's socket fd, batches of 44 first segments of
// 60 KB messages that never finish (each its own id) to dst until stop is set, counting them
// in sent.
func flood(fd int, dst netip.AddrPort, stop *atomic.Bool, sent *atomic.Uint64) {
	snd, _ := newSender(1460, stop.Load)
	chunk := make([]byte, 1460)
	hdrs := make([]byte, snd.perSend*sclp.HeaderLen)
	raw := sockaddr4(dst)
	id := uint32(0x10000)
	for !stop.Load() {
		// One sendmsg of 44 datagrams, each a first segment announcing 60000 more bytes.
		for k := range snd.perSend {
			h := sclp.Header{SrcPort: 50001, DstPort: sclp.VXLANPort, ID: id, First: true, Remaining: 60000}
			id += 2
			hb := hdrs[k*sclp.HeaderLen : (k+1)*sclp.HeaderLen]
			h.Put(hb)
			snd.iov[2*k] = unix.Iovec{Base: &hb[0], Len: sclp.HeaderLen}
			snd.iov[2*k+1] = unix.Iovec{Base: &chunk[0], Len: uint64(len(chunk))}
		}
		snd.dst = raw
		if snd.flush(fd, snd.perSend) != nil {
			return
		}
		sent.Add(uint64(snd.perSend))
	}
}

// floodProcessCPU is this process's CPU time (user + system). The process runs the flooder,
// the kernel's receive path of the flood (in the sending thread's softirq) and the receive
// workers, so the difference per flood segment between a configured and an unknown flooder
// is what the receive workers spend on a segment past the unknown-peer check; unlike a rate,
// it hardly depends on what else the shared vCPUs run.
func floodProcessCPU() time.Duration {
	var ru unix.Rusage
	_ = unix.Getrusage(unix.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// floodRounds is how many rounds TestFloodOfFirstSegments measures; each round runs one
// legitimate transfer of floodTransferSize bytes without flood, one under the configured
// peer's flood and one under the same flood from an unknown address, back to back, so that
// the ratios within a round see the same load on the shared vCPUs.
const (
	floodRounds       = 3
	floodTransferSize = 24 << 20
)

// legitRun is one legitimate transfer: its rate and whether its receive worker was the one
// taking the flood (SO_REUSEPORT hashes each 4-tuple to one of the workers' sockets).
type legitRun struct {
	gbps   float64
	shared bool
}

// String formats the run as its rate, marked when it shared the flood's worker.
func (r legitRun) String() string {
	if r.shared {
		return fmt.Sprintf("%.2f(shared)", r.gbps)
	}
	return fmt.Sprintf("%.2f", r.gbps)
}

// medianOf returns the median of v (0 if empty).
func medianOf(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	v = slices.Sorted(slices.Values(v))
	if n := len(v); n%2 == 0 {
		return (v[n/2-1] + v[n/2]) / 2
	}
	return v[len(v)/2]
}

// delta returns b-a per worker.
func delta(a, b []uint64) []uint64 {
	d := make([]uint64, len(b))
	for i := range b {
		d[i] = b[i]
		if i < len(a) {
			d[i] -= a[i]
		}
	}
	return d
}

// floodBed is the setup of TestFloodOfFirstSegments: the pair, the attacker host and its
// socket, and the flooder's tunnel port on the receiver.
type floodBed struct {
	p        *pair
	attacker *testbed.Host
	vm       *testbed.VM
	fd       int
	sent     atomic.Uint64 // flood segments sent
}

// addPort makes the attacker a configured peer of the receiver (its own port), so its
// segments reach the reassembler instead of being dropped as from an unknown peer.
func (b *floodBed) addPort(t testing.TB) {
	t.Helper()
	rx := b.p.hosts[1]
	if err := rx.Do(func() error {
		return b.p.dps[1].EnsurePort(context.Background(), offload.PortSpec{Name: "sclpf", PeerName: b.vm.HostDev,
			Peer: b.attacker.IP, Local: rx.IP, Device: rx.Underlay, VNI: 5002, Mode: offload.ModeUDP, MTU: 1500})
	}); err != nil {
		t.Fatal(err)
	}
}

// removePort makes the attacker an unknown address again.
func (b *floodBed) removePort(t testing.TB) {
	t.Helper()
	if err := b.p.hosts[1].Do(func() error { return b.p.dps[1].RemovePort(context.Background(), "sclpf") }); err != nil {
		t.Fatal(err)
	}
}

// startFlood floods the receiver from the attacker, counting segments in b.sent, until the
// returned function is called.
func (b *floodBed) startFlood() (stop func()) {
	var halt atomic.Bool
	done := make(chan struct{})
	go func() {
		defer close(done)
		flood(b.fd, netip.AddrPortFrom(b.p.hosts[1].IP, offload.DefaultUDPPort), &halt, &b.sent)
	}()
	return func() { halt.Store(true); <-done }
}

// cpuPerSegment returns the process CPU time per flood segment sent over d (no legitimate
// traffic runs meanwhile).
func (b *floodBed) cpuPerSegment(d time.Duration) time.Duration {
	c0, n0 := floodProcessCPU(), b.sent.Load()
	time.Sleep(d)
	c1, n1 := floodProcessCPU(), b.sent.Load()
	if n1 == n0 {
		return 0
	}
	return (c1 - c0) / time.Duration(n1-n0)
}

// floodWorker returns the receive worker that takes the flood (it comes from one 4-tuple,
// so one worker takes all of it) and its segments in 100 ms.
func (b *floodBed) floodWorker() (worker int, segs uint64) {
	w0 := b.p.dps[1].Stats().RxSegmentsPerWorker
	time.Sleep(100 * time.Millisecond)
	for i, n := range delta(w0, b.p.dps[1].Stats().RxSegmentsPerWorker) {
		if n > segs {
			worker, segs = i, n
		}
	}
	return worker, segs
}

// transfer runs one legitimate transfer; with floodWorker >= 0 it says whether the transfer
// shared that worker (the other workers took less than half of its segments).
func (b *floodBed) transfer(t testing.TB, floodWorker int) legitRun {
	before := b.p.dps[1].Stats().RxSegmentsPerWorker
	r := legitRun{gbps: b.p.tcpTransfer(t, floodTransferSize, 64<<10)}
	if floodWorker >= 0 {
		others := uint64(0)
		for i, n := range delta(before, b.p.dps[1].Stats().RxSegmentsPerWorker) {
			if i != floodWorker {
				others += n
			}
		}
		r.shared = others < floodTransferSize/1460/2
	}
	return r
}

// TestFloodOfFirstSegments: a configured peer floods first segments of messages that never
// finish while a legitimate TCP flow runs from another peer. The receiver's buffered bytes
// never exceed the cap, the flood is refused at its peer's cap rather than evicting, and the
// legitimate transfers stay intact. Each round measures the legitimate rate without flood,
// under the configured peer's flood, and under the same flood from an unknown address
// (dropped per GRO batch before reassembly); the ratios within each round and their medians
// are reported, and each flooded transfer says whether it shared the flood's receive worker
// (2 shared vCPUs: the flood also competes for CPU, so the ratio is reported, not asserted).
func TestFloodOfFirstSegments(t *testing.T) {
	const capBytes = 16 << 20
	cfg := sclp.Config{MaxBytes: capBytes, MaxPeerBytes: capBytes / 2}
	p := newPair(t, pairOptions{opts: Options{Reassembly: &cfg},
		between: func(t testing.TB) []*testbed.Host { return testbed.NewHosts(t, testbed.HostsOptions{N: 3}) }})
	b := &floodBed{p: p, attacker: p.hosts[2], vm: testbed.NewVM(t, p.hosts[1].NS, testbed.VMOptions{MTU: 1500})}
	if err := b.attacker.Do(func() (err error) {
		b.fd, err = txSocket(netip.AddrPortFrom(b.attacker.IP, 50001), 8<<20)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(b.fd) })
	p.ping(t)
	var stopSampling atomic.Bool
	var maxBuf atomic.Int64
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		for !stopSampling.Load() {
			if n := int64(p.dps[1].Stats().Reassembly.Reassembly.BufferedBytes); n > maxBuf.Load() {
				maxBuf.Store(n)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	var alone, configured, unknown []legitRun
	var rConf, rUnk, cpuConf, cpuUnk []float64
	var confTime time.Duration // how long the flooder was a configured peer
	for round := range floodRounds {
		alone = append(alone, b.transfer(t, -1))
		b.addPort(t)
		confStart := time.Now()
		stop := b.startFlood()
		time.Sleep(200 * time.Millisecond) // let the flood fill its peer's cap
		cc := b.cpuPerSegment(300 * time.Millisecond)
		fw, fsegs := b.floodWorker()
		configured = append(configured, b.transfer(t, fw))
		b.removePort(t)
		confTime += time.Since(confStart)
		time.Sleep(100 * time.Millisecond)
		cu := b.cpuPerSegment(300 * time.Millisecond)
		unknown = append(unknown, b.transfer(t, -1))
		stop()
		rConf = append(rConf, configured[round].gbps/alone[round].gbps)
		rUnk = append(rUnk, unknown[round].gbps/alone[round].gbps)
		cpuConf, cpuUnk = append(cpuConf, float64(cc)), append(cpuUnk, float64(cu))
		t.Logf("round %d: legitimate TCP %.2f Gbit/s alone, %v under a configured peer's flood (%.0f%%; the flood on worker %d, %d segments in 100 ms), %.2f under the same flood from an unknown address (%.0f%%); process CPU per flood segment %v configured, %v unknown",
			round, alone[round].gbps, configured[round], 100*rConf[round], fw, fsegs, unknown[round].gbps, 100*rUnk[round], cc, cu)
	}
	stopSampling.Store(true)
	<-sampled
	st := p.dps[1].Stats()
	r := st.Reassembly.Reassembly
	t.Logf("legitimate TCP, medians of %d rounds: %.2f Gbit/s alone; under a configured peer's flood %.0f%% of alone; under the same flood from an unknown address %.0f%%",
		floodRounds, medianOf(gbpsOf(alone)), 100*medianOf(rConf), 100*medianOf(rUnk))
	t.Logf("process CPU per flood segment, medians: %v from a configured peer, %v from an unknown address (%.2fx)",
		time.Duration(medianOf(cpuConf)), time.Duration(medianOf(cpuUnk)), medianOf(cpuConf)/medianOf(cpuUnk))
	t.Logf("flood: %d first segments sent, receiver: %d segments (per worker %v), %d batches dropped as unknown peer, %d batches dropped at full sockets",
		b.sent.Load(), st.RxSegments, st.RxSegmentsPerWorker, st.RxUnknownPeer, st.RxSocketDrops)
	t.Logf("receiver: max buffered %d bytes (cap %d), refused (over_limit) %d, evicted %d, timed out %d",
		maxBuf.Load(), capBytes, r.Drops[sclp.DropOverLimit], r.Drops[sclp.DropEvicted], st.Reassembly.TimedOut())
	if maxBuf.Load() > capBytes {
		t.Errorf("buffered %d bytes, cap %d", maxBuf.Load(), capBytes)
	}
	if r.Drops[sclp.DropEvicted]+r.Drops[sclp.DropOverLimit] == 0 {
		t.Errorf("the flood never reached the cap (nothing evicted or refused): test did not test")
	}
	// The flooder completes nothing, so it earns no eviction credit: at its cap its messages
	// are refused but for its spare eviction per 100 us in each worker; evicting for every
	// flood segment (the old policy) is the cost this test guards against.
	spares := uint64(confTime/(100*time.Microsecond)) * uint64(len(st.RxSegmentsPerWorker))
	if ev := r.Drops[sclp.DropEvicted]; ev > spares+1000 {
		t.Errorf("%d partial messages evicted (%d refused) in %v of configured flood: more than the %d spare evictions; the flood made the receiver evict",
			ev, r.Drops[sclp.DropOverLimit], confTime, spares)
	}
}

// gbpsOf returns the rates of runs.
func gbpsOf(runs []legitRun) []float64 {
	v := make([]float64, len(runs))
	for i, r := range runs {
		v[i] = r.gbps
	}
	return v
}
