//go:build linux

package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
)

// fakeDP is a handwritten offload.Datapath without statistics.
type fakeDP struct{}

func (fakeDP) EnsurePort(context.Context, offload.PortSpec) error { return nil }
func (fakeDP) RemovePort(context.Context, string) error           { return nil }
func (fakeDP) Close() error                                       { return nil }

// fakeUDPDP looks like the cli's wrapped *udp.Datapath.
type fakeUDPDP struct {
	fakeDP
	st udp.Stats
}

func (f fakeUDPDP) Stats() udp.Stats { return f.st }

// fakeIPDP looks like a mode=ip datapath: BPF counters, a fallback pipeline, a health check.
type fakeIPDP struct {
	fakeDP
	st     bpf.Stats
	fb     fallback.Stats
	err    error
	health error
}

func (f *fakeIPDP) Stats() (bpf.Stats, error)             { return f.st, f.err }
func (f *fakeIPDP) FallbackStats() fallback.Stats         { return f.fb }
func (f *fakeIPDP) HealthCheck(ctx context.Context) error { return f.health }

// fakeFlows is a handwritten controller.Flows.
type fakeFlows struct{ err error }

func (f *fakeFlows) Cookies(context.Context, string, uint64, uint64) ([]uint64, error) {
	return nil, f.err
}
func (f *fakeFlows) Replace(context.Context, string, uint64, uint64, []controller.Flow) error {
	return f.err
}

// fakeStore is a handwritten controller.Store; only Bridges matters here.
type fakeStore struct{ err error }

func (f *fakeStore) Bridges(context.Context) ([]controller.Bridge, error) { return nil, f.err }
func (f *fakeStore) SetStatus(context.Context, string, string) error      { return nil }
func (f *fakeStore) SetProtected(context.Context, string, bool) error     { return nil }
func (f *fakeStore) SetHeartbeat(context.Context, string) error           { return nil }
func (f *fakeStore) Changes() <-chan struct{}                             { return nil }

func TestFlowsTracker(t *testing.T) {
	f := &fakeFlows{}
	tr := TrackFlows(f)
	if tr.Connected() {
		t.Fatal("connected before any exchange")
	}
	_, _ = tr.Cookies(context.Background(), "br-int", 0, 0)
	if !tr.Connected() {
		t.Fatal("not connected after a successful exchange")
	}
	f.err = errors.New("ovs-vswitchd gone")
	if err := tr.Replace(context.Background(), "br-int", 0, 0, nil); err == nil || tr.Connected() {
		t.Fatalf("after a failed exchange: err %v, connected %v", err, tr.Connected())
	}
}

func TestDatapathSources(t *testing.T) {
	var us udp.Stats
	us.Ports = map[string]udp.PortStats{"sclp0a000002": {TxBytes: 5}}
	ip := &fakeIPDP{}
	ip.st.RxFast = 3
	ip.fb.InjectedFrames = 4
	dps := map[offload.Mode]offload.Datapath{offload.ModeUDP: fakeUDPDP{st: us}, offload.ModeIP: ip}
	rec := &fakeReconciler{ports: []controller.PortState{{Config: controller.PortConfig{Name: "sclp0a000002",
		Peer: netip.MustParseAddr("10.0.0.2")}}}}
	src, err := DatapathSources(dps, PeersOf(rec))
	if err != nil || len(src) != 2 {
		t.Fatalf("sources %v, %v", src, err)
	}
	u, _ := src[offload.ModeUDP].DatapathStats()
	if s := u.Samples[0]; s.Port != "sclp0a000002" || s.Peer != "10.0.0.2" {
		t.Errorf("udp sample %+v: want port and peer from the reconciler", s)
	}
	i, err := src[offload.ModeIP].DatapathStats()
	if err != nil {
		t.Fatal(err)
	}
	var kernel, user uint64
	for _, s := range i.Samples {
		if s.Counter == RxFrames && s.Path == PathKernel {
			kernel = s.Value
		}
		if s.Counter == RxFrames && s.Path == PathUserspace {
			user = s.Value
		}
	}
	if kernel != 3 || user != 4 || i.Reassembly == nil {
		t.Errorf("ip source: kernel %d userspace %d reassembly %v", kernel, user, i.Reassembly)
	}
	ip.err = errors.New("map closed")
	if _, err := src[offload.ModeIP].DatapathStats(); err == nil {
		t.Error("a failed BPF read was not reported")
	}
	_, err = DatapathSources(map[offload.Mode]offload.Datapath{offload.ModeIP: fakeDP{}}, nil)
	if !errors.Is(err, ErrNoStats) {
		t.Errorf("datapath without statistics: %v", err)
	}
	if cs := DatapathChecks(dps); len(cs) != 1 || cs[0].Name != "datapath_ip" {
		t.Errorf("checks %+v", cs)
	}
}

func TestWire(t *testing.T) {
	store := &fakeStore{}
	ip := &fakeIPDP{}
	rec := &fakeReconciler{passes: 1}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	tr := TrackFlows(&fakeFlows{})
	_, _ = tr.Cookies(ctx, "br-int", 0, 0)
	// The address is taken (as by the previous agent during a takeover): Wire keeps trying.
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var discovery atomic.Pointer[error] // an extra readiness check, as Kubernetes discovery
	notSynced := errors.New("kubernetes discovery not converged")
	discovery.Store(&notSynced)
	ep := Wire(ctx, WireOptions{Addr: busy.Addr().String(), Version: "w", Reconciler: rec, Store: store,
		Datapaths: map[offload.Mode]offload.Datapath{offload.ModeIP: ip}, Flows: tr, Recorder: &ReconcileRecorder{},
		Ready: []Check{{Name: "kubernetes", Fn: func(context.Context) error { return *discovery.Load() }}}})
	defer ep.Close()
	select {
	case <-ep.Ready():
		t.Fatal("endpoint ready on an address in use")
	case <-time.After(300 * time.Millisecond):
	}
	busy.Close()
	select {
	case <-ep.Ready():
	case <-time.After(5 * time.Second):
		t.Fatal("endpoint not serving 5 s after the address was freed")
	}
	base := "http://" + ep.Addr().String()
	_, body := get(t, base+"/metrics")
	for _, want := range []string{"sclp_ovs_ovsdb_connected 1", "sclp_ovs_openflow_connected 1",
		`sclp_ovs_source_up{source="datapath_ip"} 1`, "sclp_ovs_reconcile_duration_seconds_count 0",
		`sclp_ovs_exceptions_total{mode="ip",reason="multi_segment"} 0`} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", want)
		}
	}
	code, body := get(t, base+"/readyz")
	if code != 503 || !strings.Contains(body, "[-] kubernetes: kubernetes discovery not converged") {
		t.Errorf("/readyz with the extra ready check failing = %d %q", code, body)
	}
	if code, body := get(t, base+"/healthz"); code != 200 {
		t.Errorf("/healthz = %d %q: a readiness check must not fail liveness", code, body)
	}
	var converged error
	discovery.Store(&converged)
	if code, body := get(t, base+"/readyz"); code != 200 {
		t.Errorf("/readyz %d %q", code, body)
	}
	store.err = errors.New("not connected")
	ip.health = errors.New("tx program detached from sclp0p")
	code, body = get(t, base+"/healthz")
	if code != 503 || !strings.Contains(body, "[-] ovsdb: ovsdb unreachable") || !strings.Contains(body, "[-] datapath_ip: tx program detached") {
		t.Errorf("/healthz = %d %q", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "sclp_ovs_ovsdb_connected 0") {
		t.Error("ovsdb_connected still 1 with the store failing")
	}
}

// fakePortIPDP is fakeIPDP with per-port and per-peer BPF counters and per-port injections.
type fakePortIPDP struct {
	fakeIPDP
	pp  offload.PortPeerStats
	inj map[string]offload.InjectCounts
}

func (f *fakePortIPDP) PortPeerStats() (offload.PortPeerStats, error)    { return f.pp, nil }
func (f *fakePortIPDP) PortInjectStats() map[string]offload.InjectCounts { return f.inj }

// TestIPSourcePerPort: a mode=ip datapath with per-port counters gets its frames delivered by
// userspace per port (with the port's peer) instead of the pipeline's per-host count.
func TestIPSourcePerPort(t *testing.T) {
	peer := netip.MustParseAddr("10.0.0.2")
	dp := &fakePortIPDP{
		pp: offload.PortPeerStats{Ports: map[string]bpf.PortCounters{"sclp0a000002": {RxFrames: 3}},
			PortPeer: map[string]netip.Addr{"sclp0a000002": peer}, Peers: map[netip.Addr]bpf.PeerCounters{}},
		inj: map[string]offload.InjectCounts{"sclp0a000002": {Frames: 40, Bytes: 2_000_000}},
	}
	dp.fb.InjectedFrames, dp.fb.InjectedBytes = 41, 2_000_100 // one frame to a port removed since
	src, err := DatapathSources(map[offload.Mode]offload.Datapath{offload.ModeIP: dp}, nil)
	if err != nil {
		t.Fatal(err)
	}
	st, err := src[offload.ModeIP].DatapathStats()
	if err != nil {
		t.Fatal(err)
	}
	var user []Sample
	for _, s := range st.Samples {
		if (s.Counter == RxFrames || s.Counter == RxFrameBytes) && s.Path == PathUserspace {
			user = append(user, s)
		}
	}
	want := []Sample{
		{Counter: RxFrames, Port: "sclp0a000002", Peer: "10.0.0.2", Path: PathUserspace, Value: 40},
		{Counter: RxFrameBytes, Port: "sclp0a000002", Peer: "10.0.0.2", Path: PathUserspace, Value: 2_000_000},
	}
	if fmt.Sprint(user) != fmt.Sprint(want) {
		t.Fatalf("userspace deliveries %+v, want %+v (per port, none per host)", user, want)
	}
}
