//go:build linux

package observability

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// tunnel is two namespace hosts joined by a real 1500-byte underlay, one VM each, and a
// datapath per host carrying one tunnel port (sclp0 on host 0, sclp1 on host 1).
type tunnel struct {
	mode  offload.Mode
	hosts []*testbed.Host
	vms   []*testbed.VM
	specs []offload.PortSpec
	// sources are the hosts' metrics sources, ensure re-ensures host i's port (one control
	// loop pass), truth reads the datapaths' own counters as "host|metric" -> value.
	sources []metrics.DatapathSource
	ensure  []func(ctx context.Context) error
	truth   func() map[string]float64
	// live are extra /healthz checks per host (mode=ip: programs attached).
	live [][]metrics.Check
}

// newHostsAndVMs builds the hosts and VMs. IPv6 is off in the VMs and hosts so that the only
// frames crossing the tunnel are the ones the test sends (and ARP).
func newHostsAndVMs(t *testing.T, mode offload.Mode, innerMTU int) *tunnel {
	t.Helper()
	tn := &tunnel{mode: mode, hosts: testbed.NewHosts(t, testbed.HostsOptions{})}
	for i, h := range tn.hosts {
		noIPv6(t, h.NS)
		vm := testbed.NewVM(t, h.NS, testbed.VMOptions{HostDown: true, MTU: innerMTU,
			Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.79.%d/24", i+1))})
		noIPv6(t, vm.NS)
		h.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+vm.HostDev+".disable_ipv6=1")
		h.MustRun(t, "ip", "link", "set", vm.HostDev, "up")
		tn.vms = append(tn.vms, vm)
	}
	for i, h := range tn.hosts {
		tn.specs = append(tn.specs, offload.PortSpec{Name: "sclp" + strconv.Itoa(i), PeerName: tn.vms[i].HostDev,
			Peer: tn.hosts[1-i].IP, Local: h.IP, Device: h.Underlay, VNI: 5001, Mode: mode, MTU: innerMTU})
	}
	return tn
}

// newUDPTunnel carries the port with the mode=udp datapath (offload/udp).
func newUDPTunnel(t *testing.T) *tunnel {
	t.Helper()
	tn := newHostsAndVMs(t, offload.ModeUDP, 1500)
	var dps []*udp.Datapath
	for i, h := range tn.hosts {
		var dp *udp.Datapath
		err := h.Do(func() (err error) {
			if dp, err = udp.New(udp.Options{Workers: 2}); err != nil {
				return err
			}
			return dp.EnsurePort(context.Background(), tn.specs[i])
		})
		if err != nil {
			t.Fatalf("datapath on %s: %v", h.Name, err)
		}
		t.Cleanup(func() { dp.Close() })
		dps = append(dps, dp)
		spec := tn.specs[i]
		peers := map[string]netip.Addr{spec.Name: spec.Peer}
		tn.sources = append(tn.sources, metrics.UDPSource{Datapath: dp, Peers: func() map[string]netip.Addr { return peers }})
		tn.ensure = append(tn.ensure, func(ctx context.Context) error {
			return h.Do(func() error { return dp.EnsurePort(ctx, spec) })
		})
	}
	// The fast path (one-segment messages in tc-BPF, on by default) counts apart from the
	// sockets; the export adds it in, a frame it carries being one segment and one message.
	tn.truth = func() map[string]float64 {
		p0, s1 := dps[0].Stats().Ports["sclp0"], dps[1].Stats()
		fp1, p1 := s1.FastPath, s1.Ports["sclp1"]
		return map[string]float64{
			"0|sclp_ovs_tx_frames_total":                    float64(p0.TxFrames + p0.TxFastFrames),
			"0|sclp_ovs_tx_segments_total":                  float64(p0.TxSegments + p0.TxFastFrames),
			"0|sclp_ovs_tx_bytes_total":                     float64(p0.TxBytes + p0.TxFastBytes),
			"1|sclp_ovs_rx_segments_total":                  float64(s1.RxSegments + fp1.RxFrames),
			"1|sclp_ovs_rx_bytes_total":                     float64(s1.RxBytes + fp1.RxBytes + fp1.RxFrames*(sclp.HeaderLen+sclp.VXLANHeaderLen)),
			"1|sclp_ovs_rx_messages_total":                  float64(s1.Reassembly.Reassembly.Completed + fp1.RxFrames),
			"1|sclp_ovs_reassembly_completed_total":         float64(s1.Reassembly.Reassembly.Completed),
			"1|sclp_ovs_rx_frames_total|path=\"userspace\"": float64(p1.RxInjectedFrames),
			"1|sclp_ovs_rx_frames_total|path=\"kernel\"":    float64(p1.RxFastFrames),
		}
	}
	return tn
}

// ipInnerMTU is the VM MTU of mode=ip tunnels (1500 - outer IPv4 - SCLP - VXLAN - Ethernet).
const ipInnerMTU = 1446

// newIPTunnel carries the port with the mode=ip datapath: the tc-eBPF manager (package
// offload, pinned under a per-host bpffs root) and the userspace fallback (ring reader,
// reassembly, GSO injection). The VMs keep TSO, so large frames take the fallback.
func newIPTunnel(t *testing.T) *tunnel {
	t.Helper()
	tn := newHostsAndVMs(t, offload.ModeIP, ipInnerMTU)
	var mgrs []*offload.Manager
	var pipes []*fallback.Pipeline
	var cnts []*offload.CountedPort
	for i, h := range tn.hosts {
		root := filepath.Join("/sys/fs/bpf", "sclp-ovs-obs-"+h.Name)
		t.Cleanup(func() { os.RemoveAll(root) })
		m, err := offload.NewManager(offload.ManagerOptions{PinRoot: root, NetNS: "/run/netns/" + h.Name, RingSize: 1 << 22})
		if err != nil {
			t.Fatalf("mode=ip manager on %s: %v", h.Name, err)
		}
		t.Cleanup(func() { m.Uninstall() })
		spec := tn.specs[i]
		if err := m.EnsurePort(context.Background(), spec); err != nil {
			t.Fatalf("ensure port on %s: %v", h.Name, err)
		}
		pipe, cnt := startFallback(t, h, tn.vms[i], m, spec)
		cnts = append(cnts, cnt)
		mgrs = append(mgrs, m)
		pipes = append(pipes, pipe)
		tn.sources = append(tn.sources, metrics.IPSource{Datapath: m, Fallback: pipe, Ports: m,
			Injected: metrics.PortInjectStatsFunc(func() map[string]offload.InjectCounts {
				return map[string]offload.InjectCounts{spec.Name: cnt.Counts()}
			})})
		tn.ensure = append(tn.ensure, func(ctx context.Context) error { return m.EnsurePort(ctx, spec) })
		tn.live = append(tn.live, []metrics.Check{metrics.AttachedCheck(m.Ports, h.Do)})
	}
	tn.truth = func() map[string]float64 {
		s0, err0 := mgrs[0].Stats()
		s1, err1 := mgrs[1].Stats()
		p0, err2 := mgrs[0].PortPeerStats()
		p1, err3 := mgrs[1].PortPeerStats()
		if err := errors.Join(err0, err1, err2, err3); err != nil {
			t.Fatalf("read BPF stats: %v", err)
		}
		peer0 := fmt.Sprintf(`peer=%q`, tn.specs[1].Peer) // host 0 as host 1's peer
		return map[string]float64{
			"0|sclp_ovs_tx_messages_total": float64(s0.TxMessages),
			"0|sclp_ovs_tx_segments_total": float64(s0.TxSegments),
			"0|sclp_ovs_tx_bytes_total":    float64(s0.TxBytes),
			"1|sclp_ovs_rx_segments_total": float64(s1.RxSegments),
			"1|sclp_ovs_rx_bytes_total":    float64(s1.RxBytes),
			"1|sclp_ovs_rx_messages_total": float64(s1.RxFast + s1.RxMerged + pipes[1].Stats().Reassembly.Completed),
			"1|sclp_ovs_exceptions_total": float64(s1.RxExcMulti + s1.RxExcLarge + s1.RxExcOutOfOrder +
				s1.RxExcBusy + s1.RxExcMergedRun),
			// The per-port and per-peer series are the BPF programs' own breakdown.
			`0|sclp_ovs_tx_bytes_total|port="sclp0"`:                            float64(p0.Ports["sclp0"].TxBytes),
			`0|sclp_ovs_tx_segments_total|port="sclp0"`:                         float64(p0.Ports["sclp0"].TxSegments),
			`1|sclp_ovs_rx_frame_bytes_total|path="kernel",port="sclp1"`:        float64(p1.Ports["sclp1"].RxFrameBytes),
			"1|sclp_ovs_rx_segments_total|" + peer0:                             float64(p1.Peers[tn.specs[1].Peer].RxSegments),
			"1|sclp_ovs_rx_bytes_total|" + peer0 + `,port=""`:                   float64(p1.Peers[tn.specs[1].Peer].RxBytes),
			`1|sclp_ovs_tx_messages_total|port="sclp1",` + peer0:                float64(p1.Ports["sclp1"].TxMessages),
			`1|sclp_ovs_rx_frames_total|path="userspace",port="sclp1",` + peer0: float64(cnts[1].Counts().Frames),
			`1|sclp_ovs_rx_frame_bytes_total|path="userspace"`:                  float64(pipes[1].Stats().InjectedBytes),
		}
	}
	return tn
}

// startFallback runs host h's userspace finish for mode=ip: ring reader -> reassembly ->
// GSO injection into the tunnel port's datapath-side veth. It returns the pipeline and the
// port's injector, counting its deliveries.
func startFallback(t *testing.T, h *testbed.Host, vm *testbed.VM, m *offload.Manager, spec offload.PortSpec) (*fallback.Pipeline, *offload.CountedPort) {
	t.Helper()
	pipe, err := fallback.NewPipeline(fallback.PipelineOptions{Workers: 1, Reassembly: sclp.DefaultConfig()})
	if err != nil {
		t.Fatal(err)
	}
	var inj *fallback.Injector
	if err := h.Do(func() (err error) {
		inj, err = fallback.NewInjector(fallback.InjectorOptions{Interface: vm.HostDev, MTU: spec.MTU})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { inj.Close() }) // runs after the reader below has stopped
	cnt := &offload.CountedPort{Port: inj}
	pipe.Ports().Set(fallback.PortKey{Peer: spec.Peer, VNI: spec.VNI}, cnt)
	rd, err := ringbuf.NewReader(m.ExceptionRing())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	rr := fallback.NewRingReader(rd, pipe.Workers()[0], fallback.RingReaderOptions{})
	done := make(chan struct{})
	go func() { defer close(done); _ = rr.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		rd.Close()
		<-done
	})
	return pipe, cnt
}

// noIPv6 disables IPv6 in a namespace (existing and new devices).
func noIPv6(t *testing.T, ns *testbed.NS) {
	t.Helper()
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// hostAgent is the agent side of one host as far as metrics go: the datapath's statistics, a
// small control loop that re-ensures the tunnel port every 250 ms (as the reconciler does on
// resync) and records each pass, and the metrics server in the monitoring namespace.
type hostAgent struct {
	rec   metrics.ReconcileRecorder
	ready atomic.Bool
	addr  string
}

// startAgent starts host i's control loop and metrics endpoint on addr inside mon.
func startAgent(t *testing.T, tn *tunnel, i int, mon *testbed.NS, addr string) *hostAgent {
	t.Helper()
	a := &hostAgent{addr: addr}
	ensure := tn.ensure[i]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			start := time.Now()
			err := ensure(ctx)
			a.rec.Observe(time.Since(start), err)
			a.ready.Store(err == nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	src := tn.sources[i]
	var live []metrics.Check
	if i < len(tn.live) {
		live = tn.live[i]
	}
	err := mon.Do(func() error { // the listening socket lives in mon's loopback
		srv, _, err := metrics.StartAgent(ctx, metrics.AgentOptions{Addr: addr, Version: "observability-test",
			Datapaths: map[offload.Mode]metrics.DatapathSource{tn.mode: src},
			Controller: metrics.ControllerFunc(func() metrics.ControllerStats {
				st := metrics.ControllerStats{PortsDesired: 1, Reconcile: a.rec.Snapshot()}
				if a.ready.Load() {
					st.PortsReady = 1
				}
				return st // no OVSDB or OpenFlow in this test: reported as disconnected
			}),
			Live: append([]metrics.Check{{Name: "datapath", Fn: func(context.Context) error {
				_, err := src.DatapathStats()
				return err
			}}}, live...),
			Ready: []metrics.Check{{Name: "converged", Fn: func(context.Context) error {
				if !a.ready.Load() {
					return metrics.ErrNotConverged
				}
				return nil
			}}},
		})
		if err == nil {
			t.Cleanup(func() { srv.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatalf("metrics endpoint of host %d: %v", i, err)
	}
	return a
}

// tcpFor streams data from VM 0 to VM 1 for about d and returns the bytes the receiver got.
func (tn *tunnel) tcpFor(t *testing.T, d time.Duration) int64 {
	t.Helper()
	var ln net.Listener
	if err := tn.vms[1].Do(func() (err error) {
		ln, err = net.Listen("tcp4", tn.vms[1].IP.String()+":7100")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(d + 10*time.Second))
		var n int64
		buf := make([]byte, 256<<10)
		for {
			m, err := c.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		got <- n
	}()
	var conn net.Conn
	if err := tn.vms[0].Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", tn.vms[1].IP.String()+":7100", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = conn.SetDeadline(time.Now().Add(d + 10*time.Second))
	for end := time.Now().Add(d); time.Now().Before(end); {
		if _, err := conn.Write(buf); err != nil {
			t.Fatalf("tcp write: %v", err)
		}
	}
	conn.Close()
	select {
	case n := <-got:
		if n < 0 {
			t.Fatal("tcp receiver: accept failed")
		}
		return n
	case <-time.After(d + 15*time.Second):
		t.Fatal("tcp receiver did not finish")
	}
	return 0
}
