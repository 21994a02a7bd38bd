package cli

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"golang.org/x/sys/unix"

	"github.com/cilium/ebpf/link"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// ipDatapath is mode=ip: the tc-eBPF manager (package offload) plus the userspace finish
// (offload/fallback): the rx program's exceptions ring -> reassembly -> GSO injection into
// the tunnel port's datapath-side veth.
type ipDatapath struct {
	m      *offload.Manager
	pipe   *fallback.Pipeline
	rd     *ringbuf.Reader
	cancel context.CancelFunc
	done   chan struct{}

	pins string

	// snap is the datapath-wide counter snapshot the per-port views share (PortStats is
	// called for every ready port on each metrics scrape, /readyz and status query).
	snap cached[ipSnapshot]

	mu   sync.Mutex
	spec map[string]offload.PortSpec
	inj  map[string]*fallback.Injector
	cnt  map[string]*offload.CountedPort // inj, counting the frames delivered (in the port table)
	keys map[string]fallback.PortKey
	mtu  map[string]int
}

// nsInode returns the inode of one of the process's namespaces ("net", "mnt").
func nsInode(pid, kind string) uint64 {
	var st unix.Stat_t
	if unix.Stat("/proc/"+pid+"/ns/"+kind, &st) != nil {
		return 0
	}
	return st.Ino
}

// pinPath returns the bpffs directory for mode=ip: the flag's value, or the default
// (offload.DefaultPinRoot, with the network namespace's inode appended outside the initial
// namespace so that simulated hosts on one machine never share pinned state).
func pinPath(flag string) string {
	if flag != "" {
		return flag
	}
	if self, init := nsInode("self", "net"), nsInode("1", "net"); self != 0 && self != init {
		return fmt.Sprintf("%s-netns%d", offload.DefaultPinRoot, self)
	}
	return offload.DefaultPinRoot
}

func newIPDatapath(ctx context.Context, cfg AgentConfig) (offload.Datapath, error) {
	cfg.PinPath = pinPath(cfg.PinPath)
	if nsInode("self", "mnt") != nsInode("1", "mnt") && strings.HasPrefix(cfg.PinPath, "/sys/") {
		// ip netns exec gives the process its own /sys: a bpffs mounted there dies with the
		// agent, and so would the pinned datapath.
		cfg.Log.Warn("the pin path lies in this process's private /sys (ip netns exec?): mode=ip stops forwarding when the agent exits; pass --pin-path on a bpffs mounted in the host's mount namespace (e.g. mount -t bpf bpf /run/sclp-ovs/bpf)",
			"pin_path", cfg.PinPath)
	}
	m, err := offload.NewManager(offload.ManagerOptions{PinRoot: cfg.PinPath})
	if err != nil {
		return nil, fmt.Errorf("%w: %v", errModeUnavailable, err)
	}
	pipe, err := fallback.NewPipeline(fallback.PipelineOptions{Workers: 1, Reassembly: sclp.DefaultConfig()})
	if err != nil {
		m.Close()
		return nil, err
	}
	rd, err := ringbuf.NewReader(m.ExceptionRing())
	if err != nil {
		m.Close()
		return nil, fmt.Errorf("exceptions ring: %w", err)
	}
	rctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	d := &ipDatapath{m: m, pipe: pipe, rd: rd, cancel: cancel, done: make(chan struct{}), pins: cfg.PinPath,
		snap: cached[ipSnapshot]{ttl: snapshotTTL, now: time.Now}, spec: map[string]offload.PortSpec{},
		inj: map[string]*fallback.Injector{}, cnt: map[string]*offload.CountedPort{}, keys: map[string]fallback.PortKey{}, mtu: map[string]int{}}
	// A peer the reassembler refuses (at its cap, completing nothing: a flood of first
	// segments) is throttled in BPF, so its flood costs what a non-peer's does.
	rr := fallback.NewRingReader(rd, pipe.Workers()[0], fallback.RingReaderOptions{OnRefused: m.NewThrottler(0).Refused})
	go func() {
		defer close(d.done)
		if err := rr.Run(rctx); err != nil && rctx.Err() == nil {
			cfg.Log.Error("mode=ip exceptions reader stopped", "err", err)
		}
	}()
	return d, nil
}

func (d *ipDatapath) EnsurePort(ctx context.Context, spec offload.PortSpec) error {
	if err := d.m.EnsurePort(ctx, spec); err != nil && !errors.Is(err, offload.ErrNoNeighbor) {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.spec[spec.Name] = spec
	key := fallback.PortKey{Peer: spec.Peer, VNI: spec.VNI}
	if in, ok := d.inj[spec.Name]; ok && d.keys[spec.Name] == key && d.mtu[spec.Name] == spec.MTU &&
		in.Interface() == spec.PeerName {
		return nil
	}
	d.dropLocked(spec.Name)
	inj, err := fallback.NewInjector(fallback.InjectorOptions{Interface: spec.PeerName, MTU: spec.MTU})
	if err != nil {
		return fmt.Errorf("injector on %s: %w", spec.PeerName, err)
	}
	cnt := &offload.CountedPort{Port: inj}
	d.inj[spec.Name], d.cnt[spec.Name], d.keys[spec.Name], d.mtu[spec.Name] = inj, cnt, key, spec.MTU
	d.pipe.Ports().Set(key, cnt)
	return nil
}

// PortInjectStats returns the frames the userspace finish delivered into each port
// (controller/metrics exports them per port).
func (d *ipDatapath) PortInjectStats() map[string]offload.InjectCounts {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := make(map[string]offload.InjectCounts, len(d.cnt))
	for name, c := range d.cnt {
		out[name] = c.Counts()
	}
	return out
}

func (d *ipDatapath) dropLocked(name string) {
	if in, ok := d.inj[name]; ok {
		if d.pipe.Ports().Lookup(d.keys[name]) == fallback.Port(d.cnt[name]) {
			d.pipe.Ports().Delete(d.keys[name])
		}
		in.Close()
		delete(d.inj, name)
		delete(d.cnt, name)
		delete(d.keys, name)
		delete(d.mtu, name)
	}
}

func (d *ipDatapath) RemovePort(ctx context.Context, name string) error {
	d.mu.Lock()
	d.dropLocked(name)
	delete(d.spec, name)
	d.mu.Unlock()
	return d.m.RemovePort(ctx, name)
}

// Close stops the userspace finish and releases the manager; pinned programs and maps keep
// forwarding until the next agent adopts them.
func (d *ipDatapath) Close() error {
	d.cancel()
	d.rd.Close()
	<-d.done
	d.mu.Lock()
	for name := range d.inj {
		d.dropLocked(name)
	}
	d.mu.Unlock()
	return d.m.Close()
}

// PortStats reports the mode=ip datapath's counters: the port's and its peer's (BPF per-port
// and per-peer maps) and the host's (prefixed host_).
func (d *ipDatapath) PortStats(name string) (map[string]uint64, error) {
	snap, err := d.snap.get(d.snapshot)
	if err != nil {
		return nil, err
	}
	s, pp := snap.host, snap.ports
	d.mu.Lock()
	spec, cnt := d.spec[name], d.cnt[name]
	d.mu.Unlock()
	out := hostCounters(s, d.pipe.Stats())
	if c, ok := pp.Ports[name]; ok {
		maps.Copy(out, portCounters(c, pp.Peers[pp.PortPeer[name]]))
	}
	if cnt != nil {
		in := cnt.Counts()
		out["rx_frames_userspace"], out["rx_frame_bytes_userspace"] = in.Frames, in.Bytes
	}
	// The ids of the programs attached for this port (tx on the datapath-side veth, rx on
	// the underlay), from the pinned TCX links.
	for kind, dev := range map[string]string{"tx": spec.PeerName, "rx": spec.Device} {
		if id, ok := d.progID(kind, dev); ok {
			out[kind+"_prog_id"] = id
		}
	}
	return out, nil
}

// ipSnapshot is one read of the datapath's host and per-port/per-peer BPF counters.
type ipSnapshot struct {
	host  bpf.Stats
	ports offload.PortPeerStats
}

// snapshotTTL is how long PortStats reuses one counter snapshot across ports.
const snapshotTTL = 200 * time.Millisecond

func (d *ipDatapath) snapshot() (ipSnapshot, error) {
	s, err := d.m.Stats()
	if err != nil {
		return ipSnapshot{}, err
	}
	pp, err := d.m.PortPeerStats()
	if err != nil {
		return ipSnapshot{}, err
	}
	return ipSnapshot{host: s, ports: pp}, nil
}

// portCounters are the BPF per-port counters of a port and the receive counters of its peer
// that show and stats print (PortStats adds the frames the userspace fallback injected into
// the port, rx_frames_userspace, from the port's CountedPort).
func portCounters(c bpf.PortCounters, p bpf.PeerCounters) map[string]uint64 {
	var drops uint64
	for _, v := range c.TxDrops {
		drops += v
	}
	return map[string]uint64{
		"tx_messages": c.TxMessages, "tx_segments": c.TxSegments, "tx_bytes": c.TxBytes, "tx_drops": drops,
		"rx_frames_bpf": c.RxFrames, "rx_frame_bytes_bpf": c.RxFrameBytes, "rx_merged_bpf": c.RxMerged,
		"peer_rx_segments": p.RxSegments, "peer_rx_bytes": p.RxBytes,
	}
}

// hostCounters are the per-host counters of mode=ip that show and stats print for each port.
func hostCounters(s bpf.Stats, f fallback.Stats) map[string]uint64 {
	return map[string]uint64{
		"host_tx_messages": s.TxMessages, "host_tx_segments": s.TxSegments, "host_tx_bytes": s.TxBytes,
		"host_tx_drops":    s.TxDropNoPort + s.TxDropTooBig + s.TxDropBadConfig + s.TxDropNoNeigh + s.TxDropCsum + s.TxDropError,
		"host_rx_segments": s.RxSegments, "host_rx_bytes": s.RxBytes, "host_rx_fast": s.RxFast,
		"host_rx_merged":     s.RxMerged,
		"host_rx_exceptions": s.RxExcMulti + s.RxExcLarge + s.RxExcOutOfOrder + s.RxExcBusy + s.RxExcMergedRun,
		"host_rx_ring_full":  s.RxRingFull,
		"host_rx_drops": s.RxDropShort + s.RxDropEmpty + s.RxDropBadIP + s.RxDropBadPort + s.RxDropUnknownPeer +
			s.RxDropBadRemaining + s.RxDropBadChecksum + s.RxDropBadVXLAN + s.RxDropUnknownVNI +
			s.RxDropTooBig + s.RxDropError,
		"host_fallback_injected_frames": f.InjectedFrames, "host_fallback_inject_errors": f.InjectErrors,
	}
}

func (d *ipDatapath) progID(kind, dev string) (uint64, bool) {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return 0, false
	}
	l, err := link.LoadPinnedLink(filepath.Join(d.pins, "links", fmt.Sprintf("%s-%d", kind, ifi.Index)), nil)
	if err != nil {
		return 0, false
	}
	defer l.Close()
	info, err := l.Info()
	if err != nil {
		return 0, false
	}
	return uint64(info.Program), true
}

// Stats returns the BPF counters (controller/metrics reads them as the mode=ip source).
func (d *ipDatapath) Stats() (bpf.Stats, error) { return d.m.Stats() }

// PortPeerStats returns the BPF counters per tunnel port and per peer (controller/metrics
// labels the mode=ip series with them).
func (d *ipDatapath) PortPeerStats() (offload.PortPeerStats, error) { return d.m.PortPeerStats() }

// FallbackStats returns the userspace finish's counters.
func (d *ipDatapath) FallbackStats() fallback.Stats { return d.pipe.Stats() }

// HealthCheck asks the kernel whether every port's programs are attached (/healthz).
func (d *ipDatapath) HealthCheck(ctx context.Context) error {
	return metrics.AttachedCheck(d.m.Ports, nil).Fn(ctx)
}
