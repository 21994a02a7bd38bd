package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/netip"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/informers"
	k8s "k8s.io/client-go/kubernetes"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// ErrNotReady is returned by Ready until the first reconcile has succeeded, and wraps the
// last error while reconciling fails.
var ErrNotReady = errors.New("kubernetes discovery not converged")

// Options are the optional dependencies of a Discovery.
type Options struct {
	// Logger receives one line per port change and per failure (slog.Default if nil).
	Logger *slog.Logger
	// MinBackoff and MaxBackoff bound the retry delay after a failed reconcile
	// (200 ms and 30 s if zero).
	MinBackoff, MaxBackoff time.Duration
}

// Status is a snapshot of discovery's progress.
type Status struct {
	// Synced is true once the Node informer has listed the cluster.
	Synced bool
	// Reconciles counts successful reconciles.
	Reconciles uint64
	// LastError is the error of the last reconcile, nil after a success.
	LastError error
	// Local is this node's address as last seen.
	Local netip.Addr
	// Peers maps the desired peers to their node names, as last computed.
	Peers map[netip.Addr]string
	// Skipped maps left-out nodes to the reason.
	Skipped map[string]string
}

// Discovery keeps one tunnel port per other selected node.
type Discovery struct {
	cfg    Config
	client k8s.Interface
	store  PortStore
	opts   Options
	log    *slog.Logger
	wake   chan struct{}

	mu     sync.Mutex
	status Status
}

// New returns a Discovery for cfg (validated here) that reads Nodes through client and
// writes ports through store. Run starts it.
func New(client k8s.Interface, cfg Config, store PortStore, opts Options) (*Discovery, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if client == nil || store == nil {
		return nil, fmt.Errorf("%w: nil client or store", ErrBadConfig)
	}
	if opts.MinBackoff <= 0 {
		opts.MinBackoff = 200 * time.Millisecond
	}
	if opts.MaxBackoff < opts.MinBackoff {
		opts.MaxBackoff = max(30*time.Second, opts.MinBackoff)
	}
	log := opts.Logger
	if log == nil {
		log = slog.Default()
	}
	return &Discovery{
		cfg: cfg, client: client, store: store, opts: opts,
		log:  log.With("component", "kubernetes-discovery", "node", cfg.NodeName, "bridge", cfg.Bridge),
		wake: make(chan struct{}, 1),
	}, nil
}

// Status returns a snapshot of the progress.
func (d *Discovery) Status() Status {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.status
	s.Peers, s.Skipped = maps.Clone(s.Peers), maps.Clone(s.Skipped)
	return s
}

// Ready returns nil when the last reconcile succeeded, for the agent's /readyz.
func (d *Discovery) Ready() error {
	s := d.Status()
	switch {
	case s.LastError != nil:
		return fmt.Errorf("%w: %w", ErrNotReady, s.LastError)
	case s.Reconciles == 0:
		return ErrNotReady
	}
	return nil
}

// Check is Ready with the signature of a health check (controller/metrics.Check.Fn), for the
// agent's /readyz: metrics.Check{Name: "kubernetes", Fn: d.Check}.
func (d *Discovery) Check(context.Context) error { return d.Ready() }

// Run watches Nodes and reconciles until ctx ends; it returns nil then. It returns an
// error only when the watch cannot start.
func (d *Discovery) Run(ctx context.Context) error {
	factory := informers.NewSharedInformerFactoryWithOptions(d.client, 0,
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = d.cfg.Selector }))
	nodes := factory.Core().V1().Nodes()
	informer := nodes.Informer()
	if _, err := informer.AddEventHandler(cache.ResourceEventHandlerFuncs{
		AddFunc:    func(any) { d.kick() },
		UpdateFunc: d.onUpdate,
		DeleteFunc: func(any) { d.kick() },
	}); err != nil {
		return fmt.Errorf("watch nodes: %w", err)
	}
	factory.Start(ctx.Done())
	defer factory.Shutdown()
	d.log.Info("waiting for the node list", "selector", d.cfg.Selector)
	if !cache.WaitForCacheSync(ctx.Done(), informer.HasSynced) {
		return nil // ctx ended
	}
	d.mu.Lock()
	d.status.Synced = true
	d.mu.Unlock()
	d.loop(ctx, nodes.Lister())
	return nil
}

// kick wakes the loop without blocking; one pending wake-up covers any number of events.
func (d *Discovery) kick() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// onUpdate wakes the loop only when labels or addresses changed: node status heartbeats
// are frequent and change neither.
func (d *Discovery) onUpdate(oldObj, newObj any) {
	o, ok1 := oldObj.(*corev1.Node)
	n, ok2 := newObj.(*corev1.Node)
	if !ok1 || !ok2 || !maps.Equal(o.Labels, n.Labels) || !equalAddresses(o.Status.Addresses, n.Status.Addresses) {
		d.kick()
	}
}

func equalAddresses(a, b []corev1.NodeAddress) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// loop reconciles on every wake-up, after each resync period, and after a backoff delay
// while reconciling fails.
func (d *Discovery) loop(ctx context.Context, lister listersv1.NodeLister) {
	backoff := d.opts.MinBackoff
	for {
		err := d.reconcile(ctx, lister)
		wait := d.cfg.Resync
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			d.log.Warn("reconcile failed; retrying", "err", err, "in", backoff)
			wait, backoff = backoff, min(2*backoff, d.opts.MaxBackoff)
		} else {
			backoff = d.opts.MinBackoff
		}
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-d.wake:
			t.Stop()
		case <-t.C:
		}
	}
}

// reconcile makes the store's mesh ports match the selected nodes once.
func (d *Discovery) reconcile(ctx context.Context, lister listersv1.NodeLister) error {
	err := d.reconcileOnce(ctx, lister)
	d.mu.Lock()
	d.status.LastError = err
	if err == nil {
		d.status.Reconciles++
	}
	d.mu.Unlock()
	return err
}

func (d *Discovery) reconcileOnce(ctx context.Context, lister listersv1.NodeLister) error {
	all, err := lister.List(labels.Everything())
	if err != nil {
		return fmt.Errorf("list nodes: %w", err)
	}
	mesh, err := DesiredMesh(all, d.cfg.NodeName, d.cfg.selector(), d.cfg.AddressType)
	if err != nil {
		return err
	}
	d.noteMesh(mesh)
	have, err := d.store.ListPeers(ctx, d.cfg.Bridge)
	if err != nil {
		return fmt.Errorf("list ports on %s: %w", d.cfg.Bridge, err)
	}
	return errors.Join(d.apply(ctx, mesh, have)...)
}

// apply ensures every desired peer and deletes every managed port without a node.
func (d *Discovery) apply(ctx context.Context, mesh Mesh, have []Peer) []error {
	byAddr := make(map[netip.Addr]Peer, len(have))
	for _, p := range have {
		byAddr[p.Addr] = p
	}
	var errs []error
	for addr, node := range mesh.Peers {
		want := d.cfg.portOptions(mesh.Local, node)
		if p, ok := byAddr[addr]; ok {
			if p.Options.ManagedBy != ManagedBy {
				continue // an operator's own port to this peer: leave it alone
			}
		}
		changed, err := d.store.EnsurePeer(ctx, d.cfg.Bridge, addr, want)
		if err != nil {
			errs = append(errs, fmt.Errorf("ensure port to %v (node %s): %w", addr, node, err))
			continue
		}
		if !changed {
			continue
		}
		d.log.Info("tunnel port ensured", "peer", addr, "peer_node", node, "local", want.Local, "vni", want.VNI, "mode", want.Mode)
	}
	for _, p := range have {
		if p.Options.ManagedBy != ManagedBy {
			continue
		}
		if _, ok := mesh.Peers[p.Addr]; ok {
			continue
		}
		if err := d.store.DeletePeer(ctx, d.cfg.Bridge, p.Addr); err != nil {
			errs = append(errs, fmt.Errorf("delete port %s to %v: %w", p.Port, p.Addr, err))
			continue
		}
		d.log.Info("tunnel port deleted", "peer", p.Addr, "port", p.Port, "peer_node", p.Options.Node)
	}
	return errs
}

// noteMesh records the mesh in the status and logs newly skipped nodes.
func (d *Discovery) noteMesh(m Mesh) {
	d.mu.Lock()
	prev := d.status.Skipped
	d.status.Local, d.status.Peers, d.status.Skipped = m.Local, m.Peers, m.Skipped
	d.mu.Unlock()
	for name, why := range m.Skipped {
		if prev[name] != why {
			d.log.Warn("node left out of the mesh", "peer_node", name, "reason", why)
		}
	}
}
