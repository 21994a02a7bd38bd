package controllertest

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"sort"
	"sync"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// Flows is an in-memory controller.Flows: bridge -> installed flows.
type Flows struct {
	mu    sync.Mutex
	flows map[string][]controller.Flow
	// Err, when set, is returned by every method.
	Err error
	// Replaces counts Replace calls.
	Replaces int
}

// NewFlows returns an empty flow table.
func NewFlows() *Flows { return &Flows{flows: map[string][]controller.Flow{}} }

// Cookies implements controller.Flows.
func (f *Flows) Cookies(ctx context.Context, bridge string, cookie, mask uint64) ([]uint64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return nil, f.Err
	}
	var out []uint64
	for _, fl := range f.flows[bridge] {
		if fl.Cookie&mask == cookie&mask {
			out = append(out, fl.Cookie)
		}
	}
	return out, nil
}

// Replace implements controller.Flows.
func (f *Flows) Replace(ctx context.Context, bridge string, cookie, mask uint64, flows []controller.Flow) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.Err != nil {
		return f.Err
	}
	f.Replaces++
	kept := slices.DeleteFunc(f.flows[bridge], func(fl controller.Flow) bool { return fl.Cookie&mask == cookie&mask })
	f.flows[bridge] = append(kept, flows...)
	return nil
}

// Table returns a copy of a bridge's flows.
func (f *Flows) Table(bridge string) []controller.Flow {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.flows[bridge])
}

// Flush drops every flow, as an ovs-vswitchd restart does.
func (f *Flows) Flush() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows = map[string][]controller.Flow{}
}

// Add installs a foreign flow (not owned by sclp-ovs).
func (f *Flows) Add(bridge string, fl controller.Flow) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.flows[bridge] = append(f.flows[bridge], fl)
}

// Link is one fake veth pair.
type Link struct {
	controller.Veth
	Owned bool
	Up    bool
}

// Links is an in-memory controller.Links.
type Links struct {
	mu    sync.Mutex
	links map[string]*Link
	// Creates, Fixes and Deletes count changes made.
	Creates, Fixes, Deletes int
	// Err, when set, is returned by EnsureVeth.
	Err error
}

// NewLinks returns a host without veths.
func NewLinks() *Links { return &Links{links: map[string]*Link{}} }

// EnsureVeth implements controller.Links.
func (l *Links) EnsureVeth(ctx context.Context, v controller.Veth) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.Err != nil {
		return l.Err
	}
	cur, ok := l.links[v.Name]
	switch {
	case !ok:
		l.links[v.Name] = &Link{Veth: v, Owned: true, Up: true}
		l.Creates++
	case !cur.Owned:
		return fmt.Errorf("link %s exists and is not owned by sclp-ovs", v.Name)
	case cur.Veth != v || !cur.Up:
		cur.Veth, cur.Up = v, true
		l.Fixes++
	}
	return nil
}

// DeleteVeth implements controller.Links.
func (l *Links) DeleteVeth(ctx context.Context, name string) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if cur, ok := l.links[name]; ok {
		if !cur.Owned {
			return fmt.Errorf("link %s is not owned by sclp-ovs", name)
		}
		delete(l.links, name)
		l.Deletes++
	}
	return nil
}

// Owned implements controller.Links.
func (l *Links) Owned(ctx context.Context) ([]string, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for n, k := range l.links {
		if k.Owned {
			out = append(out, n)
		}
	}
	sort.Strings(out)
	return out, nil
}

// Put installs a link as it is (for example a foreign one, Owned false).
func (l *Links) Put(k Link) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.links[k.Name] = &k
}

// Get returns a copy of a link.
func (l *Links) Get(name string) (Link, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	k, ok := l.links[name]
	if !ok {
		return Link{}, false
	}
	return *k, true
}

// Router is a static controller.Router.
type Router struct {
	Routes map[netip.Addr]controller.Route
	MTUs   map[string]int
}

// RouteTo implements controller.Router.
func (r *Router) RouteTo(ctx context.Context, peer netip.Addr) (controller.Route, error) {
	rt, ok := r.Routes[peer]
	if !ok {
		return rt, errors.New("network is unreachable")
	}
	return rt, nil
}

// DeviceMTU implements controller.Router.
func (r *Router) DeviceMTU(ctx context.Context, dev string) (int, error) {
	m, ok := r.MTUs[dev]
	if !ok {
		return 0, errors.New("link not found")
	}
	return m, nil
}

// Datapath is an in-memory offload.Datapath.
type Datapath struct {
	mu    sync.Mutex
	ports map[string]offload.PortSpec
	// Ensures and Removes count calls.
	Ensures, Removes int
	// FailEnsure, when > 0, makes that many EnsurePort calls fail.
	FailEnsure int
}

// NewDatapath returns a datapath that carries nothing.
func NewDatapath() *Datapath { return &Datapath{ports: map[string]offload.PortSpec{}} }

// EnsurePort implements offload.Datapath.
func (d *Datapath) EnsurePort(ctx context.Context, s offload.PortSpec) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Ensures++
	if d.FailEnsure > 0 {
		d.FailEnsure--
		return errors.New("injected datapath failure")
	}
	if err := s.Validate(); err != nil {
		return err
	}
	d.ports[s.Name] = s
	return nil
}

// RemovePort implements offload.Datapath.
func (d *Datapath) RemovePort(ctx context.Context, name string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.Removes++
	delete(d.ports, name)
	return nil
}

// Close implements offload.Datapath.
func (d *Datapath) Close() error { return nil }

// Ports returns the specs the datapath carries.
func (d *Datapath) Ports() map[string]offload.PortSpec {
	d.mu.Lock()
	defer d.mu.Unlock()
	out := map[string]offload.PortSpec{}
	for k, v := range d.ports {
		out[k] = v
	}
	return out
}

// PortStats implements controller.StatsReporter.
func (d *Datapath) PortStats(name string) (map[string]uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if _, ok := d.ports[name]; !ok {
		return nil, errors.New("no such port")
	}
	return map[string]uint64{"ensures": uint64(d.Ensures)}, nil
}
