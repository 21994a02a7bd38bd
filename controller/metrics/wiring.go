package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
)

// This file holds what `sclp-ovs agent` needs to wire the metrics to its real parts in a few
// lines (see Wire).

// FlowsTracker wraps a controller.Flows and remembers whether the last OpenFlow exchange
// succeeded (ovs-ofctl has no persistent connection to watch).
type FlowsTracker struct {
	controller.Flows
	ok atomic.Bool
}

var _ controller.Flows = (*FlowsTracker)(nil)

// TrackFlows wraps f; give the result to the reconciler and its Connected to the metrics.
func TrackFlows(f controller.Flows) *FlowsTracker { return &FlowsTracker{Flows: f} }

// Cookies calls the wrapped Flows and records the outcome.
func (t *FlowsTracker) Cookies(ctx context.Context, bridge string, cookie, mask uint64) ([]uint64, error) {
	c, err := t.Flows.Cookies(ctx, bridge, cookie, mask)
	t.ok.Store(err == nil)
	return c, err
}

// Replace calls the wrapped Flows and records the outcome.
func (t *FlowsTracker) Replace(ctx context.Context, bridge string, cookie, mask uint64, flows []controller.Flow) error {
	err := t.Flows.Replace(ctx, bridge, cookie, mask, flows)
	t.ok.Store(err == nil)
	return err
}

// Connected reports whether the last exchange succeeded (false before the first).
func (t *FlowsTracker) Connected() bool { return t.ok.Load() }

// StoreReachable reports whether the OVSDB store answers (a read from its monitored cache,
// which fails while disconnected).
func StoreReachable(s controller.Store) func() bool {
	return func() bool {
		_, err := s.Bridges(context.Background())
		return err == nil
	}
}

// StoreCheck is the /healthz check "ovsdb": the store answers.
func StoreCheck(s controller.Store) Check {
	return Check{Name: "ovsdb", Fn: func(ctx context.Context) error {
		if _, err := s.Bridges(ctx); err != nil {
			return fmt.Errorf("ovsdb unreachable: %w", err)
		}
		return nil
	}}
}

// HealthChecker is implemented by a datapath that can tell whether its kernel state is in
// place (for mode=ip: programs attached, maps pinned). DatapathChecks turns each into a
// /healthz check.
type HealthChecker interface {
	HealthCheck(ctx context.Context) error
}

// DatapathChecks returns a check "datapath_<mode>" for every datapath implementing
// HealthChecker.
func DatapathChecks(dps map[offload.Mode]offload.Datapath) []Check {
	var out []Check
	for _, m := range sortedModes(dps) {
		if hc, ok := dps[m].(HealthChecker); ok {
			out = append(out, Check{Name: "datapath_" + string(m), Fn: hc.HealthCheck})
		}
	}
	return out
}

// PeersOf returns the peer of every port the reconciler knows (for UDPSource.Peers).
func PeersOf(r ReconcilerView) func() map[string]netip.Addr {
	return func() map[string]netip.Addr {
		ports := r.Ports()
		out := make(map[string]netip.Addr, len(ports))
		for _, p := range ports {
			out[p.Config.Name] = p.Config.Peer
		}
		return out
	}
}

// ErrNoStats is wrapped by DatapathSources for a datapath whose statistics it cannot read.
var ErrNoStats = errors.New("datapath has no statistics the metrics can read")

// DatapathSources picks the DatapathSource of each datapath: one that implements
// DatapathSource itself; a mode=udp datapath (UDPStatser) as UDPSource with peers; a mode=ip
// datapath (BPFStatser, plus FallbackStatser if it runs the fallback) as IPSource. A datapath
// with none of these is left out and reported in the error (the others still work).
func DatapathSources(dps map[offload.Mode]offload.Datapath, peers func() map[string]netip.Addr) (map[offload.Mode]DatapathSource, error) {
	out := map[offload.Mode]DatapathSource{}
	var errs []error
	for _, m := range sortedModes(dps) {
		if src := sourceOf(dps[m], peers); src != nil {
			out[m] = src
		} else {
			errs = append(errs, fmt.Errorf("mode=%s (%T): %w", m, dps[m], ErrNoStats))
		}
	}
	return out, errors.Join(errs...)
}

func sortedModes(dps map[offload.Mode]offload.Datapath) []offload.Mode {
	ms := make([]offload.Mode, 0, len(dps))
	for m := range dps {
		ms = append(ms, m)
	}
	sort.Slice(ms, func(i, j int) bool { return ms[i] < ms[j] })
	return ms
}

// fallbackAdapter turns a FallbackStatser into a PipelineStatser.
type fallbackAdapter struct{ f FallbackStatser }

func (a fallbackAdapter) Stats() fallback.Stats { return a.f.FallbackStats() }

// WireOptions are the agent's parts that Wire connects to the metrics.
type WireOptions struct {
	// Addr is --metrics-address ("" means DefaultAddress).
	Addr    string
	Version string
	// Reconciler, Store and Datapaths are the agent's; Flows the tracker the reconciler was
	// given (optional); Recorder the pass recorder the controller reports to (optional).
	Reconciler ReconcilerView
	Store      controller.Store
	Datapaths  map[offload.Mode]offload.Datapath
	Flows      *FlowsTracker
	Recorder   *ReconcileRecorder
	// Ready are readiness checks besides convergence (e.g. Kubernetes node discovery:
	// Check{Name: "kubernetes", Fn: (*kubernetes.Discovery).Check}); /readyz fails while any
	// of them fails, /healthz ignores them.
	Ready []Check
	Log   interface{ Warn(string, ...any) }
}

// Endpoint is the agent's metrics endpoint started by Wire.
type Endpoint struct {
	ready chan struct{}
	done  chan struct{}
	stop  context.CancelFunc
	mu    sync.Mutex
	srv   *Server
}

// Ready is closed once the endpoint listens.
func (e *Endpoint) Ready() <-chan struct{} { return e.ready }

// Addr returns the listening address, nil before Ready.
func (e *Endpoint) Addr() net.Addr {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.srv == nil {
		return nil
	}
	return e.srv.Addr()
}

// Close stops the endpoint (and any retry) and waits for it.
func (e *Endpoint) Close() {
	e.stop()
	<-e.done
}

// listenRetry is how often Wire retries a listen that failed.
const listenRetry = time.Second

// Wire starts the agent's metrics endpoint: every datapath's statistics, the reconciler's
// state, /healthz (OVSDB reachable, datapath health checks) and /readyz (converged, plus
// o.Ready), until
// ctx ends or Close. If the address cannot be bound (e.g. the previous agent still serves it
// during a takeover), Wire logs it and retries every second in the background: metrics never
// stop the agent.
func Wire(ctx context.Context, o WireOptions) *Endpoint {
	peers := PeersOf(o.Reconciler)
	sources, err := DatapathSources(o.Datapaths, peers)
	if err != nil && o.Log != nil {
		o.Log.Warn("some datapath statistics are not exported", "err", err)
	}
	cs := ReconcilerSource{Reconciler: o.Reconciler, Recorder: o.Recorder}
	live := DatapathChecks(o.Datapaths)
	if o.Store != nil {
		cs.OVSDBConnected = StoreReachable(o.Store)
		live = append([]Check{StoreCheck(o.Store)}, live...)
	}
	if o.Flows != nil {
		cs.OpenFlowConnected = o.Flows.Connected
	}
	opts := AgentOptions{Addr: o.Addr, Version: o.Version, Datapaths: sources,
		Controller: cs, Live: live, Ready: append([]Check{ConvergedCheck(o.Reconciler)}, o.Ready...)}
	ctx, cancel := context.WithCancel(ctx)
	e := &Endpoint{ready: make(chan struct{}), done: make(chan struct{}), stop: cancel}
	go func() {
		defer close(e.done)
		for warned := false; ; {
			srv, _, err := StartAgent(ctx, opts)
			if err == nil {
				e.mu.Lock()
				e.srv = srv
				e.mu.Unlock()
				close(e.ready)
				<-ctx.Done()
				srv.Close()
				srv.Wait()
				return
			}
			if !warned && o.Log != nil {
				o.Log.Warn("metrics endpoint not serving yet; retrying every second", "err", err)
				warned = true
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(listenRetry):
			}
		}
	}()
	return e
}
