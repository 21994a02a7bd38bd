package controller_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

type env struct {
	store  *controllertest.Store
	flows  *controllertest.Flows
	links  *controllertest.Links
	udp    *controllertest.Datapath
	ip     *controllertest.Datapath
	router *controllertest.Router
	r      *controller.Reconciler
}

func tunnelPort(t *testing.T, ofport int, args ...string) controller.BridgePort {
	t.Helper()
	c, err := controller.ParseOptions("br-int", args)
	if err != nil {
		t.Fatal(err)
	}
	name := c.Name
	if name == "" {
		name = controller.DefaultName(c.Peer)
	}
	return controller.BridgePort{Name: name, OFPort: ofport, ExternalIDs: c.ExternalIDs()}
}

func newEnv(t *testing.T, ports ...controller.BridgePort) *env {
	t.Helper()
	all := append([]controller.BridgePort{
		{Name: "br-int", OFPort: controller.OFPortLocal, ExternalIDs: map[string]string{}},
		{Name: "vm1", OFPort: 1, ExternalIDs: map[string]string{"iface-id": "x"}},
	}, ports...)
	e := &env{
		store: controllertest.NewStore(controller.Bridge{Name: "br-int", Ports: all}, controller.Bridge{Name: "br-ex"}),
		flows: controllertest.NewFlows(), links: controllertest.NewLinks(),
		udp: controllertest.NewDatapath(), ip: controllertest.NewDatapath(),
		router: &controllertest.Router{
			Routes: map[netip.Addr]controller.Route{
				netip.MustParseAddr("10.0.0.2"): {Local: netip.MustParseAddr("10.0.0.1"), Device: "eth0", MTU: 1500},
				netip.MustParseAddr("10.0.0.3"): {Local: netip.MustParseAddr("10.0.0.1"), Device: "eth0", MTU: 1500},
			},
			MTUs: map[string]int{"eth0": 1500},
		},
	}
	e.r = e.newReconciler(t)
	return e
}

func (e *env) newReconciler(t *testing.T) *controller.Reconciler {
	r, err := controller.New(controller.Options{
		Store: e.store, Flows: e.flows, Links: e.links, Router: e.router,
		Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: e.udp, offload.ModeIP: e.ip},
		Resync:    10 * time.Millisecond, Backoff: controller.Backoff{Min: 5 * time.Millisecond, Max: 20 * time.Millisecond},
		Heartbeat: 10 * time.Millisecond, StaleGrace: time.Nanosecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func (e *env) status(t *testing.T, name string) string {
	t.Helper()
	p, ok := e.store.Port(name)
	if !ok {
		t.Fatalf("port %s gone", name)
	}
	return p.ExternalIDs[controller.KeyStatus]
}

func TestConverge(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2", "key=42"), tunnelPort(t, 3, "peer=10.0.0.3", "mode=ip", "mtu=9000"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	a, ok := e.links.Get("sclp0a000002")
	if !ok || a.PeerName != "sclp0a000002p" || a.MTU != 1500-controller.OverheadUDP {
		t.Fatalf("veth a = %+v, %v", a, ok)
	}
	if b, _ := e.links.Get("sclp0a000003"); b.MTU != 9000 {
		t.Fatalf("veth b MTU = %d, want 9000", b.MTU)
	}
	spec := e.udp.Ports()["sclp0a000002"]
	if spec.VNI != 42 || spec.Local != netip.MustParseAddr("10.0.0.1") || spec.DstPort != offload.DefaultUDPPort || spec.TTL != 64 {
		t.Fatalf("udp spec = %+v", spec)
	}
	if _, ok := e.ip.Ports()["sclp0a000003"]; !ok || len(e.ip.Ports()) != 1 || len(e.udp.Ports()) != 1 {
		t.Fatalf("ports split across datapaths wrongly: udp %v ip %v", e.udp.Ports(), e.ip.Ports())
	}
	for _, n := range []string{"sclp0a000002", "sclp0a000003"} {
		if s := e.status(t, n); s != controller.StatusReady {
			t.Fatalf("%s status = %q", n, s)
		}
		if p, _ := e.store.Port(n); !p.Protected {
			t.Fatalf("%s not protected", n)
		}
	}
	fl := e.flows.Table("br-int")
	if len(fl) != 4 {
		t.Fatalf("flows = %v", fl)
	}
	var floods []string
	for _, f := range fl {
		if f.Priority == controller.PrioTunnelFlood {
			floods = append(floods, f.Match+" "+f.Actions)
			// Split horizon: a flood from a tunnel never reaches a tunnel port.
			if strings.Contains(f.Actions, "output:2") || strings.Contains(f.Actions, "output:3") {
				t.Errorf("flood flow outputs to a tunnel port: %v", f)
			}
			if f.Actions != "output:1,output:LOCAL" {
				t.Errorf("flood actions = %q", f.Actions)
			}
		}
	}
	if len(floods) != 2 {
		t.Fatalf("flood flows = %v", floods)
	}
	if len(e.flows.Table("br-ex")) != 0 {
		t.Fatal("flows on a bridge without tunnel ports")
	}
}

func TestIdempotent(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	for i := 0; i < 3; i++ {
		if err := e.r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if e.links.Creates != 1 || e.links.Fixes != 0 || e.udp.Ensures != 1 || e.flows.Replaces != 1 {
		t.Fatalf("repeated passes changed things: creates %d fixes %d ensures %d replaces %d",
			e.links.Creates, e.links.Fixes, e.udp.Ensures, e.flows.Replaces)
	}
	writes := e.store.Writes
	if err := e.r.Reconcile(ctx); err != nil || e.store.Writes != writes {
		t.Fatalf("a converged pass wrote to OVSDB (%d -> %d), err %v", writes, e.store.Writes, err)
	}
}

func TestAdoptOnRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	// A new agent process: same host state, fresh reconciler.
	r2 := e.newReconciler(t)
	if err := r2.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if e.links.Creates != 1 || e.links.Deletes != 0 || e.links.Fixes != 0 || e.flows.Replaces != 1 || e.udp.Removes != 0 {
		t.Fatalf("restart disturbed running state: creates %d deletes %d fixes %d replaces %d removes %d",
			e.links.Creates, e.links.Deletes, e.links.Fixes, e.flows.Replaces, e.udp.Removes)
	}
	if e.udp.Ensures != 2 {
		t.Fatalf("new agent did not hand the port to its datapath (ensures %d)", e.udp.Ensures)
	}
}

func TestStaleCleanup(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"), tunnelPort(t, 3, "peer=10.0.0.3"))
	foreign := controller.Flow{Cookie: 0x1234, Priority: 5, Actions: "drop"}
	e.flows.Add("br-int", foreign)
	e.links.Put(controllertest.Link{Veth: controller.Veth{Name: "vethvm", PeerName: "vethvmp", MTU: 1500}})
	e.links.Put(controllertest.Link{Veth: controller.Veth{Name: "sclpold", PeerName: "sclpoldp", MTU: 1400}, Owned: true})
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.links.Get("sclpold"); !ok {
		t.Fatal("stale veth removed on the first pass (no grace)")
	}
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if _, ok := e.links.Get("sclpold"); ok {
		t.Fatal("stale owned veth left behind")
	}
	e.store.Update(func(bs *[]controller.Bridge) {
		b := &(*bs)[0]
		b.Ports = b.Ports[:len(b.Ports)-1] // delete sclp0a000003
	})
	for i := 0; i < controller.StaleAfter; i++ {
		if err := e.r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, ok := e.links.Get("sclp0a000003"); ok {
		t.Fatal("veth of a deleted port left behind")
	}
	if _, ok := e.udp.Ports()["sclp0a000003"]; ok {
		t.Fatal("datapath still carries a deleted port")
	}
	if _, ok := e.links.Get("vethvm"); !ok {
		t.Fatal("foreign veth removed")
	}
	if len(e.flows.Table("br-int")) != 3 {
		t.Fatalf("flows after removing a port = %v", e.flows.Table("br-int"))
	}
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports = (*bs)[0].Ports[:2] })
	for i := 0; i < controller.StaleAfter; i++ {
		if err := e.r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if fl := e.flows.Table("br-int"); len(fl) != 1 || fl[0] != foreign {
		t.Fatalf("owned flows not removed or foreign flow touched: %v", fl)
	}
}

func TestStoreErrorRemovesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Err = errors.New("connection refused")
	if err := e.r.Reconcile(ctx); err == nil {
		t.Fatal("pass succeeded without OVSDB")
	}
	if _, ok := e.links.Get("sclp0a000002"); !ok || e.udp.Removes != 0 {
		t.Fatal("state removed while OVSDB was unreachable")
	}
}

func TestMTUFixedInPlace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports[2].ExternalIDs[controller.KeyMTU] = "9000" })
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	l, _ := e.links.Get("sclp0a000002")
	if l.MTU != 9000 || e.links.Creates != 1 || e.links.Fixes != 1 || e.udp.Ports()["sclp0a000002"].MTU != 9000 {
		t.Fatalf("mtu change: link %+v creates %d fixes %d", l, e.links.Creates, e.links.Fixes)
	}
}

func TestModeChange(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Update(func(bs *[]controller.Bridge) {
		ids := (*bs)[0].Ports[2].ExternalIDs
		ids[controller.KeyMode] = "ip"
		delete(ids, controller.KeyDstPort)
	})
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.udp.Ports()) != 0 || len(e.ip.Ports()) != 1 {
		t.Fatalf("mode change: udp %v ip %v", e.udp.Ports(), e.ip.Ports())
	}
}

func TestFlowsRestored(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.flows.Flush() // ovs-vswitchd restarted
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	if len(e.flows.Table("br-int")) != 2 {
		t.Fatalf("flows not restored: %v", e.flows.Table("br-int"))
	}
}

func TestPendingUntilOFPort(t *testing.T) {
	ctx := context.Background()
	p := tunnelPort(t, -1, "peer=10.0.0.2")
	p.Error = "could not open network device sclp0a000002 (No such device)"
	e := newEnv(t, p)
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatalf("pending port made the pass fail: %v", err)
	}
	if s := e.status(t, p.Name); !strings.HasPrefix(s, controller.StatusPendingPrefix) || !strings.Contains(s, "No such device") {
		t.Fatalf("status = %q", s)
	}
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports[2].OFPort, (*bs)[0].Ports[2].Error = 7, "" })
	if err := e.r.Reconcile(ctx); err != nil || e.status(t, p.Name) != controller.StatusReady {
		t.Fatalf("status = %q, err %v", e.status(t, p.Name), err)
	}
}

func TestBadConfigReported(t *testing.T) {
	ctx := context.Background()
	bad := tunnelPort(t, 2, "peer=10.0.0.2")
	bad.ExternalIDs[controller.KeyMode] = "gre"
	noRoute := tunnelPort(t, 3, "peer=10.0.0.9")
	e := newEnv(t, bad, noRoute)
	if err := e.r.Reconcile(ctx); err == nil {
		t.Fatal("bad config accepted")
	}
	if s := e.status(t, bad.Name); !strings.HasPrefix(s, controller.StatusErrorPrefix) || !strings.Contains(s, "mode=gre") {
		t.Fatalf("status = %q", s)
	}
	if s := e.status(t, noRoute.Name); !strings.Contains(s, "no route") || !strings.Contains(s, "local_ip=") {
		t.Fatalf("status = %q", s)
	}
}

func TestRunRetriesWithBackoff(t *testing.T) {
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	e.udp.FailEnsure = 3
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.r.Run(ctx) }()
	deadline := time.Now().Add(5 * time.Second)
	for e.status(t, "sclp0a000002") != controller.StatusReady {
		if time.Now().After(deadline) {
			t.Fatalf("never ready; status %q", e.status(t, "sclp0a000002"))
		}
		time.Sleep(5 * time.Millisecond)
	}
	if e.store.Heartbeat() == "" {
		t.Fatal("no heartbeat while running")
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if e.udp.Ensures != 4 {
		t.Fatalf("ensures = %d, want 3 failures + 1 success", e.udp.Ensures)
	}
	if e.store.Heartbeat() != "" {
		t.Fatal("heartbeat left after a clean stop")
	}
	if _, ok := e.links.Get("sclp0a000002"); !ok {
		t.Fatal("clean stop removed the veth (a successor must adopt it)")
	}
}

func TestRunReactsToChanges(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go e.r.Run(ctx)
	p := tunnelPort(t, 5, "peer=10.0.0.3")
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports = append((*bs)[0].Ports, p) })
	deadline := time.Now().Add(5 * time.Second)
	for {
		if q, ok := e.store.Port(p.Name); ok && q.ExternalIDs[controller.KeyStatus] == controller.StatusReady {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("added port never became ready")
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := e.r.Ports(); len(got) != 1 || got[0].Config.Peer != netip.MustParseAddr("10.0.0.3") || got[0].Datapath == nil {
		t.Fatalf("Ports() = %+v", got)
	}
}

func TestBriefAbsenceRemovesNothing(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	var saved controller.BridgePort
	// A cache being refilled after a reconnect: the port is missing for one pass.
	e.store.Update(func(bs *[]controller.Bridge) {
		saved = (*bs)[0].Ports[2]
		(*bs)[0].Ports = (*bs)[0].Ports[:2]
	})
	if err := e.r.Reconcile(ctx); err != nil {
		t.Fatal(err)
	}
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports = append((*bs)[0].Ports, saved) })
	for i := 0; i < 3; i++ {
		if err := e.r.Reconcile(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if e.links.Deletes != 0 || e.udp.Removes != 0 || e.links.Creates != 1 {
		t.Fatalf("a one-pass absence removed state: deletes %d removes %d creates %d", e.links.Deletes, e.udp.Removes, e.links.Creates)
	}
}

func TestReady(t *testing.T) {
	ctx := context.Background()
	p := tunnelPort(t, 0, "peer=10.0.0.2")
	e := newEnv(t, p)
	if err := e.r.Reconcile(ctx); err != nil || e.r.Ready() {
		t.Fatalf("ready with a pending port (err %v)", err)
	}
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports[2].OFPort = 4 })
	if err := e.r.Reconcile(ctx); err != nil || !e.r.Ready() {
		t.Fatalf("not ready after convergence (err %v)", err)
	}
	e.store.Err = errors.New("down")
	e.r.Reconcile(ctx)
	if e.r.Ready() {
		t.Fatal("ready without OVSDB")
	}
}

func TestObserve(t *testing.T) {
	e := newEnv(t, tunnelPort(t, 2, "peer=10.0.0.2"))
	var got []controller.PassResult
	r, err := controller.New(controller.Options{Store: e.store, Flows: e.flows, Links: e.links, Router: e.router,
		Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: e.udp},
		Observe:   func(p controller.PassResult) { got = append(got, p) }})
	if err != nil {
		t.Fatal(err)
	}
	r.Reconcile(context.Background())
	e.udp.FailEnsure = 1
	e.store.Update(func(bs *[]controller.Bridge) { (*bs)[0].Ports[2].ExternalIDs[controller.KeyMTU] = "1400" })
	r.Reconcile(context.Background())
	if len(got) != 2 || !got[0].Ready || got[0].Err != nil || got[0].Ports != 1 || got[1].Ready || got[1].Err == nil {
		t.Fatalf("observed %+v", got)
	}
}

func TestStaleGrace(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t)
	now := time.Unix(1000, 0)
	r, err := controller.New(controller.Options{Store: e.store, Flows: e.flows, Links: e.links, Router: e.router,
		Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: e.udp}, StaleGrace: time.Second,
		Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	e.links.Put(controllertest.Link{Veth: controller.Veth{Name: "sclpold", PeerName: "sclpoldp", MTU: 1400}, Owned: true})
	for i := 0; i < 5; i++ { // many quick passes: not yet
		r.Reconcile(ctx)
	}
	if _, ok := e.links.Get("sclpold"); !ok {
		t.Fatal("stale veth removed before the grace period")
	}
	now = now.Add(time.Second)
	r.Reconcile(ctx)
	if _, ok := e.links.Get("sclpold"); ok {
		t.Fatal("stale veth kept after the grace period")
	}
}

// blockingStore is a Store whose Bridges blocks until release is closed, as a pass does while
// OVSDB does not answer.
type blockingStore struct {
	*controllertest.Store
	entered chan struct{}
	release chan struct{}
}

func (s *blockingStore) Bridges(ctx context.Context) ([]controller.Bridge, error) {
	select {
	case s.entered <- struct{}{}:
	default:
	}
	select {
	case <-s.release:
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	return s.Store.Bridges(ctx)
}

// TestViewsDoNotWaitForAPass: while a pass is stuck on OVSDB, Ports, Ready and Passes (what
// /readyz and the status socket ask) answer at once with the last pass's results.
func TestViewsDoNotWaitForAPass(t *testing.T) {
	e := newEnv(t, tunnelPort(t, 5, "peer=10.0.0.2"))
	bs := &blockingStore{Store: e.store, entered: make(chan struct{}, 1), release: make(chan struct{})}
	r, err := controller.New(controller.Options{
		Store: bs, Flows: e.flows, Links: e.links, Router: e.router,
		Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: e.udp, offload.ModeIP: e.ip},
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	close(bs.release)
	if err := r.Reconcile(ctx); err != nil || !r.Ready() {
		t.Fatalf("first pass: %v, ready %v", err, r.Ready())
	}
	<-bs.entered // the first pass's
	bs.release = make(chan struct{})
	passDone := make(chan error, 1)
	go func() { passDone <- r.Reconcile(ctx) }()
	<-bs.entered // the second pass is now inside OVSDB
	views := make(chan string, 1)
	go func() {
		ports := r.Ports()
		views <- fmt.Sprintf("ports %d ready %v passes %d", len(ports), r.Ready(), r.Passes())
	}()
	select {
	case got := <-views:
		if got != "ports 1 ready true passes 2" {
			t.Errorf("views during a pass: %s", got)
		}
	case <-time.After(3 * time.Second):
		t.Error("Ports/Ready/Passes blocked while a pass waited for OVSDB")
	}
	close(bs.release)
	if err := <-passDone; err != nil {
		t.Fatal(err)
	}
}
