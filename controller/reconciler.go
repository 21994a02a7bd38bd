package controller

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// Options configures a Reconciler. Store, Flows, Links, Router and at least one datapath are
// required.
type Options struct {
	Store     Store
	Flows     Flows
	Links     Links
	Router    Router
	Datapaths map[offload.Mode]offload.Datapath
	Log       *slog.Logger
	// Resync is how often the agent re-checks the host (veths, flows) without an OVSDB
	// change, e.g. to restore flows after ovs-vswitchd restarted. Default 1 s.
	Resync time.Duration
	// Backoff bounds the retry delay after a failed pass. Default 250 ms .. 30 s.
	Backoff Backoff
	// Heartbeat is how often the agent refreshes its heartbeat. Default HeartbeatInterval.
	Heartbeat time.Duration
	// Now is the clock (tests inject one). Default time.Now.
	Now func() time.Time
	// StaleGrace is how long a port must have been missing from OVSDB (over at least
	// StaleAfter passes) before its veth pair and datapath state are removed. Default 2 s.
	StaleGrace time.Duration
	// Observe, if set, is called after every pass (metrics). It must not block; it may call
	// the Reconciler's read methods.
	Observe func(PassResult)
}

// PassResult describes one reconcile pass.
type PassResult struct {
	Start    time.Time
	Duration time.Duration
	// Err is the joined error of the pass (nil when everything converged or is pending).
	Err error
	// Ready reports whether every tunnel port is ready.
	Ready bool
	// Ports counts the tunnel ports recorded in OVSDB.
	Ports int
}

// HeartbeatInterval is the default heartbeat period; a heartbeat older than HeartbeatStale
// means no agent runs.
const (
	HeartbeatInterval = 2 * time.Second
	HeartbeatStale    = 3 * HeartbeatInterval
)

// PortState is what the agent knows about one tunnel port.
type PortState struct {
	Config   PortConfig        `json:"config"`
	OFPort   int               `json:"ofport"`
	Status   string            `json:"status"`
	Datapath map[string]uint64 `json:"datapath,omitempty"`
}

// Status prefixes besides StatusReady.
const (
	StatusPendingPrefix = "pending: "
	StatusErrorPrefix   = "error: "
)

// PendingError is a transient condition that the next pass resolves by itself (e.g. OVS has
// not opened a new port yet). It is reported as "pending: ..." and does not trigger backoff.
type PendingError struct{ Reason string }

// Error returns the reason, as the status shows it after "pending: ".
func (e *PendingError) Error() string { return e.Reason }

// Reconciler converges the host to the tunnel ports recorded in OVSDB.
type Reconciler struct {
	o Options

	// pass serialises reconcile passes and guards what only a pass touches. A pass talks to
	// OVSDB and the datapaths and can take long (an OVSDB outage): it never holds mu while it
	// does, so the views (Ports, Ready, Passes: /readyz, the status socket) never wait for it.
	pass    sync.Mutex
	running map[string]offload.PortSpec // ports the datapaths currently carry
	flows   map[string]uint64           // bridge -> cookie installed
	absent  map[string]int              // owned port name -> consecutive passes it was missing from OVSDB
	since   map[string]time.Time        // owned port name -> when it was first seen missing

	// mu guards the published results of the last pass and the heartbeat flag.
	mu     sync.Mutex
	states map[string]PortState
	passes int
	ready  bool // the last pass succeeded and every port is ready
	keepHB bool // leave the heartbeat on stop (a successor took over)
}

// New checks opts and returns a Reconciler.
func New(opts Options) (*Reconciler, error) {
	if opts.Store == nil || opts.Flows == nil || opts.Links == nil || opts.Router == nil || len(opts.Datapaths) == 0 {
		return nil, errors.New("controller: Store, Flows, Links, Router and Datapaths are required")
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	if opts.Resync <= 0 {
		opts.Resync = time.Second
	}
	if opts.Backoff.Min <= 0 {
		opts.Backoff.Min = 250 * time.Millisecond
	}
	if opts.Backoff.Max < opts.Backoff.Min {
		opts.Backoff.Max = max(30*time.Second, opts.Backoff.Min)
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = HeartbeatInterval
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.StaleGrace <= 0 {
		opts.StaleGrace = 2 * time.Second
	}
	return &Reconciler{o: opts, running: map[string]offload.PortSpec{}, states: map[string]PortState{}, flows: map[string]uint64{}, absent: map[string]int{}, since: map[string]time.Time{}}, nil
}

// Run reconciles on every OVSDB change, every Resync, and after failures with backoff, and
// refreshes the heartbeat, until ctx ends. On the way out it removes the heartbeat (so the
// CLI knows at once that no agent runs) and leaves veths, flows and datapath state in place
// for a successor to adopt.
func (r *Reconciler) Run(ctx context.Context) error {
	failures := 0
	wake := time.NewTimer(0)
	defer wake.Stop()
	hb := time.NewTicker(r.o.Heartbeat)
	defer hb.Stop()
	r.heartbeat(ctx)
	for {
		select {
		case <-ctx.Done():
			r.mu.Lock()
			keep := r.keepHB
			r.mu.Unlock()
			if !keep {
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
				if err := r.o.Store.SetHeartbeat(cctx, ""); err != nil {
					r.o.Log.Warn("clear heartbeat", "err", err)
				}
				cancel()
			}
			return nil
		case <-hb.C:
			r.heartbeat(ctx)
			continue
		case <-r.o.Store.Changes():
		case <-wake.C:
		}
		next := r.o.Resync
		if err := r.Reconcile(ctx); err != nil && ctx.Err() == nil {
			failures++
			next = r.o.Backoff.Delay(failures)
			r.o.Log.Warn("reconcile failed; retrying", "attempt", failures, "in", next, "err", err)
		} else if failures > 0 {
			r.o.Log.Info("reconcile succeeded", "after_failures", failures)
			failures = 0
		}
		if !wake.Stop() {
			select {
			case <-wake.C:
			default:
			}
		}
		wake.Reset(next)
	}
}

func (r *Reconciler) heartbeat(ctx context.Context) {
	if err := r.o.Store.SetHeartbeat(ctx, r.o.Now().UTC().Format(time.RFC3339Nano)); err != nil && ctx.Err() == nil {
		r.o.Log.Warn("write heartbeat", "err", err)
	}
}

// Ports returns a snapshot of every tunnel port, sorted by name.
func (r *Reconciler) Ports() []PortState {
	r.mu.Lock()
	out := make([]PortState, 0, len(r.states))
	for _, s := range r.states {
		out = append(out, s)
	}
	r.mu.Unlock()
	sort.Slice(out, func(i, j int) bool { return out[i].Config.Name < out[j].Config.Name })
	for i := range out {
		dp := r.o.Datapaths[out[i].Config.Mode]
		if sr, ok := dp.(StatsReporter); ok && out[i].Status == StatusReady {
			if st, err := sr.PortStats(out[i].Config.Name); err == nil {
				out[i].Datapath = st
			}
		}
	}
	return out
}

// KeepHeartbeat makes Run leave the heartbeat in place when it stops: a successor agent has
// taken over and keeps writing it.
func (r *Reconciler) KeepHeartbeat() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.keepHB = true
}

// Ready reports whether the last pass succeeded with every tunnel port ready.
func (r *Reconciler) Ready() bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.ready
}

// Passes returns how many reconcile passes ran (for tests and the status socket).
func (r *Reconciler) Passes() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.passes
}

// Reconcile runs one pass: every owned port converged, stale state removed, flows checked,
// status written back. It returns the joined errors of everything that failed; what could be
// done was done.
func (r *Reconciler) Reconcile(ctx context.Context) error {
	start := r.o.Now()
	err := r.reconcile(ctx)
	if r.o.Observe != nil {
		r.mu.Lock()
		res := PassResult{Start: start, Duration: r.o.Now().Sub(start), Err: err, Ready: r.ready, Ports: len(r.states)}
		r.mu.Unlock()
		r.o.Observe(res)
	}
	return err
}

func (r *Reconciler) reconcile(ctx context.Context) error {
	r.pass.Lock()
	defer r.pass.Unlock()
	r.mu.Lock()
	r.passes++
	r.mu.Unlock()
	bridges, err := r.o.Store.Bridges(ctx)
	if err != nil {
		r.mu.Lock()
		r.ready = false
		r.mu.Unlock()
		return fmt.Errorf("read ovsdb: %w", err) // never remove anything blind
	}
	var errs []error
	present := map[string]bool{} // every owned port in OVSDB, valid or not
	states := map[string]PortState{}
	for _, b := range bridges {
		var portErrs = map[string]error{}
		for _, p := range b.Ports {
			if !Owned(p.ExternalIDs) {
				continue
			}
			present[p.Name] = true
			st, err := r.convergePort(ctx, b.Name, p)
			if err != nil {
				portErrs[p.Name] = err
				if !errors.As(err, new(*PendingError)) {
					errs = append(errs, err)
				}
			}
			states[p.Name] = st
		}
		if err := r.syncFlows(ctx, b); err != nil {
			err = fmt.Errorf("bridge %s: flows: %w", b.Name, err)
			errs = append(errs, err)
			for _, p := range b.Ports {
				if Owned(p.ExternalIDs) && portErrs[p.Name] == nil {
					portErrs[p.Name] = err
				}
			}
		}
		for _, p := range b.Ports {
			if !Owned(p.ExternalIDs) {
				continue
			}
			status := StatusReady
			var pe *PendingError
			if e := portErrs[p.Name]; errors.As(e, &pe) {
				status = StatusPendingPrefix + pe.Reason
			} else if e != nil {
				status = StatusErrorPrefix + e.Error()
			}
			st := states[p.Name]
			st.Status = status
			states[p.Name] = st
			if p.ExternalIDs[KeyStatus] != status {
				if err := r.o.Store.SetStatus(ctx, p.Name, status); err != nil {
					errs = append(errs, fmt.Errorf("port %s: write status: %w", p.Name, err))
				}
			}
		}
	}
	errs = append(errs, r.removeStale(ctx, present)...)
	ready := len(errs) == 0
	for _, st := range states {
		ready = ready && st.Status == StatusReady
	}
	r.mu.Lock()
	r.states, r.ready = states, ready
	r.mu.Unlock()
	return errors.Join(errs...)
}

// convergePort makes one port real: resolved config, veth pair, protected port, datapath.
func (r *Reconciler) convergePort(ctx context.Context, bridge string, p BridgePort) (PortState, error) {
	st := PortState{OFPort: p.OFPort}
	cfg, err := ConfigFromExternalIDs(bridge, p.Name, p.ExternalIDs)
	st.Config = cfg
	if err != nil {
		return st, err
	}
	cfg, err = Resolve(ctx, r.o.Router, cfg)
	st.Config = cfg
	if err != nil {
		return st, fmt.Errorf("port %s: %w", p.Name, err)
	}
	dp := r.o.Datapaths[cfg.Mode]
	if dp == nil {
		return st, fmt.Errorf("port %s: mode=%s is not available in this agent", p.Name, cfg.Mode)
	}
	if err := r.o.Links.EnsureVeth(ctx, Veth{Name: cfg.Name, PeerName: cfg.PeerName(), MTU: cfg.MTU}); err != nil {
		return st, fmt.Errorf("port %s: veth: %w", p.Name, err)
	}
	if !p.Protected {
		if err := r.o.Store.SetProtected(ctx, p.Name, true); err != nil {
			return st, fmt.Errorf("port %s: set protected: %w", p.Name, err)
		}
	}
	spec := cfg.PortSpec()
	if old, ok := r.running[p.Name]; !ok || old != spec {
		if ok && old.Mode != spec.Mode {
			if err := r.o.Datapaths[old.Mode].RemovePort(ctx, p.Name); err != nil {
				return st, fmt.Errorf("port %s: remove from %s datapath: %w", p.Name, old.Mode, err)
			}
		}
		delete(r.running, p.Name)
		if err := dp.EnsurePort(ctx, spec); err != nil {
			return st, fmt.Errorf("port %s: %s datapath: %w", p.Name, cfg.Mode, err)
		}
		r.running[p.Name] = spec
		r.o.Log.Info("port carried", "port", p.Name, "peer", cfg.Peer, "mode", cfg.Mode, "mtu", cfg.MTU, "dev", cfg.Device)
	}
	if p.OFPort <= 0 {
		reason := "waiting for ovs-vswitchd to open the port"
		if p.Error != "" {
			reason += " (it reports: " + p.Error + ")"
		}
		return st, &PendingError{Reason: reason}
	}
	return st, nil
}

// syncFlows makes the owned flows on one bridge the current generation.
func (r *Reconciler) syncFlows(ctx context.Context, b Bridge) error {
	want, cookie := BridgeFlows(b)
	have, err := r.o.Flows.Cookies(ctx, b.Name, CookieBase, CookieMask)
	if err != nil {
		return err
	}
	current := len(have) == len(want)
	for _, c := range have {
		current = current && c == cookie
	}
	if current {
		r.flows[b.Name] = cookie
		return nil
	}
	if err := r.o.Flows.Replace(ctx, b.Name, CookieBase, CookieMask, want); err != nil {
		return err
	}
	r.flows[b.Name] = cookie
	r.o.Log.Info("flows installed", "bridge", b.Name, "flows", len(want), "cookie", fmt.Sprintf("%#x", cookie), "had", len(have))
	return nil
}

// StaleAfter is how many consecutive passes a port must be missing from OVSDB (and for at
// least Options.StaleGrace) before its veth pair and datapath state are removed: a guard
// against acting on a cache that is being refilled after a reconnect.
const StaleAfter = 2

// removeStale removes datapath ports and veth pairs that sclp-ovs owns but OVSDB no longer
// lists.
func (r *Reconciler) removeStale(ctx context.Context, present map[string]bool) []error {
	var errs []error
	owned, err := r.o.Links.Owned(ctx)
	if err != nil {
		return append(errs, fmt.Errorf("list veths: %w", err))
	}
	seen := map[string]bool{}
	for _, name := range owned {
		seen[name] = true
	}
	for name := range r.running {
		seen[name] = true
	}
	for name := range r.absent {
		if !seen[name] || present[name] {
			delete(r.absent, name)
			delete(r.since, name)
		}
	}
	now := r.o.Now()
	stale := func(name string) bool {
		return !present[name] && r.absent[name] >= StaleAfter && now.Sub(r.since[name]) >= r.o.StaleGrace
	}
	for name := range seen {
		if !present[name] {
			if r.absent[name] == 0 {
				r.since[name] = now
			}
			r.absent[name]++
		}
	}
	for name, spec := range r.running {
		if !stale(name) {
			continue
		}
		if err := r.o.Datapaths[spec.Mode].RemovePort(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("stale port %s: datapath: %w", name, err))
			continue
		}
		delete(r.running, name)
		r.o.Log.Info("stale port removed from datapath", "port", name)
	}
	for _, name := range owned {
		if !stale(name) {
			continue
		}
		// A pair left by an earlier agent: its datapath state may be pinned, so ask every
		// datapath (RemovePort is idempotent).
		for mode, dp := range r.o.Datapaths {
			if err := dp.RemovePort(ctx, name); err != nil {
				errs = append(errs, fmt.Errorf("stale port %s: %s datapath: %w", name, mode, err))
			}
		}
		if err := r.o.Links.DeleteVeth(ctx, name); err != nil {
			errs = append(errs, fmt.Errorf("stale veth %s: %w", name, err))
			continue
		}
		delete(r.absent, name)
		delete(r.since, name)
		r.o.Log.Info("stale veth removed", "port", name)
	}
	return errs
}
