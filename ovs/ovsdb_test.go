package ovs

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// env is a private OVS in its own namespace with a connected client and bridge br-int.
type env struct {
	ns  *testbed.NS
	ovs *testbed.OVS
	c   *Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	testbed.RequireRoot(t)
	ns := testbed.NewNS(t, "ovsdb")
	o := testbed.StartOVS(t, ns)
	c, err := Dial(ctxT(t, 10*time.Second), o.DBEndpoint())
	if err != nil {
		t.Fatalf("Dial: %v", err)
	}
	t.Cleanup(c.Close)
	if err := c.AddBridge(ctxT(t, 10*time.Second), BridgeOptions{Name: "br-int"}); err != nil {
		t.Fatalf("AddBridge: %v", err)
	}
	return &env{ns: ns, ovs: o, c: c}
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// veth makes a veth pair in the env's namespace and returns the end for OVS.
func (e *env) veth(t *testing.T, name string) string {
	testbed.Link(t, e.ns, name, e.ns, name+"x")
	return name
}

func (e *env) vsctl(t *testing.T, args ...string) string {
	t.Helper()
	return strings.TrimSpace(e.ovs.MustVsctl(t, args...))
}

func TestAddBridgeIsNetdevWithInternalPort(t *testing.T) {
	e := newEnv(t)
	if got := e.vsctl(t, "get", "bridge", "br-int", "datapath_type"); got != "netdev" {
		t.Fatalf("datapath_type %q", got)
	}
	if err := e.c.AddBridge(ctxT(t, 5*time.Second), BridgeOptions{Name: "br-int"}); err != nil {
		t.Fatalf("second AddBridge: %v", err)
	}
	if err := e.c.WaitVswitchd(ctxT(t, 10*time.Second)); err != nil {
		t.Fatalf("WaitVswitchd: %v", err)
	}
	if got := e.vsctl(t, "list-br"); got != "br-int" {
		t.Fatalf("list-br %q", got)
	}
	if got := e.vsctl(t, "get", "interface", "br-int", "type"); got != "internal" {
		t.Fatalf("bridge interface type %q", got)
	}
	if _, err := e.ovs.Ofctl("show", "br-int"); err != nil {
		t.Fatalf("ovs-vswitchd did not create the bridge: %v", err)
	}
	if err := e.c.DeleteBridge(ctxT(t, 5*time.Second), "br-int"); err != nil {
		t.Fatalf("DeleteBridge: %v", err)
	}
	if got := e.vsctl(t, "list-br"); got != "" {
		t.Fatalf("bridge left: %q", got)
	}
}

func TestAddPortIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	dev := e.veth(t, "tp0")
	opts := PortOptions{Bridge: "br-int", Name: dev, ExternalIDs: map[string]string{"sclp-ovs": "owned", "peer": "10.0.0.2"}, MTURequest: 1400}
	for i := range 3 {
		if err := e.c.AddPort(ctx, opts); err != nil {
			t.Fatalf("AddPort #%d: %v", i, err)
		}
	}
	if got := e.vsctl(t, "list-ports", "br-int"); got != dev {
		t.Fatalf("list-ports %q", got)
	}
	if got := e.vsctl(t, "get", "interface", dev, "external_ids:peer", "mtu_request"); got != "\"10.0.0.2\"\n1400" {
		t.Fatalf("interface columns %q", got)
	}
	// A change through AddPort updates the existing port in place.
	opts.ExternalIDs = map[string]string{"peer": "10.0.0.3"}
	opts.MTURequest = 1450
	if err := e.c.AddPort(ctx, opts); err != nil {
		t.Fatalf("AddPort update: %v", err)
	}
	if got := e.vsctl(t, "get", "interface", dev, "external_ids"); got != `{peer="10.0.0.3", sclp-ovs=owned}` {
		t.Fatalf("external_ids after update %q", got)
	}
	if got := e.vsctl(t, "get", "interface", dev, "mtu_request"); got != "1450" {
		t.Fatalf("mtu_request after update %q", got)
	}
	if err := e.c.WaitVswitchd(ctx); err != nil {
		t.Fatalf("WaitVswitchd: %v", err)
	}
	if got := e.ns.MustRun(t, "cat", "/sys/class/net/"+dev+"/mtu"); strings.TrimSpace(got) != "1450" {
		t.Fatalf("ovs-vswitchd did not apply mtu_request: device mtu %q", got)
	}
}

func TestAddPortErrorsChangeNothing(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	e.vsctl(t, "add-br", "br-ex", "--", "set", "bridge", "br-ex", "datapath_type=netdev")
	e.vsctl(t, "add-port", "br-ex", e.veth(t, "other0"))
	before := e.vsctl(t, "show")
	cases := []struct {
		name string
		opts PortOptions
		want error
	}{
		{"missing bridge", PortOptions{Bridge: "br-none", Name: "x0"}, ErrNoBridge},
		{"port on another bridge", PortOptions{Bridge: "br-int", Name: "other0"}, ErrPortExists},
		{"other type", PortOptions{Bridge: "br-ex", Name: "other0", Type: "internal"}, ErrPortExists},
		{"empty name", PortOptions{Bridge: "br-int"}, ErrInvalid},
	}
	for _, tc := range cases {
		if err := e.c.AddPort(ctx, tc.opts); !errors.Is(err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, err, tc.want)
		}
	}
	if err := e.c.DeletePort(ctx, "br-none", "other0"); !errors.Is(err, ErrNoBridge) {
		t.Errorf("DeletePort on missing bridge: %v", err)
	}
	if err := e.c.DeletePort(ctx, "br-int", "other0"); !errors.Is(err, ErrNoPort) {
		t.Errorf("DeletePort on wrong bridge: %v", err)
	}
	if after := e.vsctl(t, "show"); after != before {
		t.Fatalf("failed calls changed OVSDB:\nbefore %s\nafter %s", before, after)
	}
}

func TestDeletePortIdempotent(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	dev := e.veth(t, "dp0")
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: dev}); err != nil {
		t.Fatalf("AddPort: %v", err)
	}
	for i := range 2 {
		if err := e.c.DeletePort(ctx, "br-int", dev); err != nil {
			t.Fatalf("DeletePort #%d: %v", i, err)
		}
	}
	if got := e.vsctl(t, "list-ports", "br-int"); got != "" {
		t.Fatalf("ports left: %q", got)
	}
	if out, err := e.ovs.Vsctl("get", "interface", dev, "name"); err == nil {
		t.Fatalf("interface row left: %s", out)
	}
	// Empty bridge name: found wherever it is.
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: dev}); err != nil {
		t.Fatalf("AddPort again: %v", err)
	}
	if err := e.c.DeletePort(ctx, "", dev); err != nil {
		t.Fatalf("DeletePort without bridge: %v", err)
	}
	if got := e.vsctl(t, "list-ports", "br-int"); got != "" {
		t.Fatalf("ports left: %q", got)
	}
}

func TestExternalIDsRoundTripAndFilter(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	owned, foreign := e.veth(t, "own0"), e.veth(t, "vm0")
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: owned, ExternalIDs: map[string]string{"sclp-ovs": "1", "a": "b"}}); err != nil {
		t.Fatalf("AddPort: %v", err)
	}
	e.vsctl(t, "add-port", "br-int", foreign, "--", "set", "interface", foreign, "external_ids:iface-id=vm")
	// A value with characters that need quoting survives the round trip.
	set := map[string]string{"status": "ready", "note": `x="1", y`}
	if err := e.c.SetInterfaceExternalIDs(ctx, owned, set, "a"); err != nil {
		t.Fatalf("SetInterfaceExternalIDs: %v", err)
	}
	if got := e.vsctl(t, "get", "interface", owned, "external_ids"); got != `{note="x=\"1\", y", sclp-ovs="1", status=ready}` {
		t.Fatalf("external_ids %s", got)
	}
	e.vsctl(t, "set", "interface", owned, "external_ids:from-vsctl=yes")
	waitFor(t, func() bool {
		i, err := e.c.Interface(ctx, owned)
		return err == nil && i.ExternalIDs["from-vsctl"] == "yes" && i.ExternalIDs["note"] == set["note"]
	})
	list, err := e.c.Interfaces(ctx, InterfaceFilter{Key: "sclp-ovs"})
	if err != nil || len(list) != 1 || list[0].Name != owned || list[0].Bridge != "br-int" || list[0].Port != owned {
		t.Fatalf("Interfaces(owned) = %+v, %v", list, err)
	}
	all, err := e.c.Interfaces(ctx, InterfaceFilter{Bridge: "br-int"})
	if err != nil || len(all) != 3 { // br-int's internal interface, own0, vm0
		t.Fatalf("Interfaces(br-int) = %+v, %v", all, err)
	}
	if err := e.c.SetInterfaceExternalIDs(ctx, "nope0", set); !errors.Is(err, ErrNoInterface) {
		t.Fatalf("missing interface: %v", err)
	}
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met within 5 s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestNotifications(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	ch, cancel := e.c.Subscribe()
	defer cancel()
	events := make(chan Event, 256)
	stop := e.c.OnChange(func(ev Event) {
		select {
		case events <- ev:
		default:
		}
	})
	defer stop()
	// Drain what AddBridge caused.
	time.Sleep(200 * time.Millisecond)
	for len(ch) > 0 {
		<-ch
	}
	for len(events) > 0 {
		<-events
	}
	e.vsctl(t, "add-port", "br-int", e.veth(t, "ev0"))
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no notification for a port added by ovs-vsctl")
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case ev := <-events:
			if ev.Table == TableInterface && ev.Kind == EventAdd && ev.Name == "ev0" {
				if _, ok := ev.New.(*Interface); !ok {
					t.Fatalf("event row type %T", ev.New)
				}
				return
			}
		case <-deadline:
			t.Fatalf("no add event for interface ev0")
		}
		_ = ctx
	}
}

func TestReconnectAfterDBRestart(t *testing.T) {
	e := newEnv(t)
	ch, cancel := e.c.Subscribe()
	defer cancel()
	epoch := e.c.Epoch()
	// A read that spans a reconnect is reported as not connected.
	err := e.c.Snapshot(ctxT(t, 5*time.Second), func(ctx context.Context) error {
		if _, err := e.c.Bridges(ctx); err != nil {
			return err
		}
		e.ovs.RestartDB(t)
		waitFor(t, e.c.Connected)
		return nil
	})
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Snapshot across a reconnect: %v", err)
	}
	if e.c.Epoch() != epoch+1 {
		t.Fatalf("epoch %d, want %d", e.c.Epoch(), epoch+1)
	}
	if err := e.c.Snapshot(ctxT(t, 5*time.Second), func(ctx context.Context) error { _, err := e.c.Bridges(ctx); return err }); err != nil {
		t.Fatalf("Snapshot while connected: %v", err)
	}
	// Writes block until the client is back, then succeed.
	ctx := ctxT(t, 20*time.Second)
	dev := e.veth(t, "rc0")
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: dev, ExternalIDs: map[string]string{"k": "v"}}); err != nil {
		t.Fatalf("AddPort after restart: %v", err)
	}
	if got := e.vsctl(t, "get", "interface", dev, "external_ids:k"); got != "v" {
		t.Fatalf("external_ids:k = %q", got)
	}
	// The monitor is back: a change made by someone else reaches the cache and the subscriber.
	for len(ch) > 0 {
		<-ch
	}
	e.vsctl(t, "set", "interface", dev, "external_ids:k=w")
	waitFor(t, func() bool {
		i, err := e.c.Interface(ctx, dev)
		return err == nil && i.ExternalIDs["k"] == "w"
	})
	select {
	case <-ch:
	case <-time.After(5 * time.Second):
		t.Fatalf("no notification after reconnect")
	}
	if !e.c.Connected() {
		t.Fatalf("Connected() false after reconnect")
	}
}

func TestNoReconnectReportsNotConnected(t *testing.T) {
	e := newEnv(t)
	c, err := DialWith(ctxT(t, 10*time.Second), DialOptions{Endpoint: e.ovs.DBEndpoint(), NoReconnect: true})
	if err != nil {
		t.Fatalf("DialWith: %v", err)
	}
	defer c.Close()
	e.ovs.StopDB()
	waitFor(t, func() bool { return !c.Connected() })
	err = c.AddPort(ctxT(t, 5*time.Second), PortOptions{Bridge: "br-int", Name: "nc0"})
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("AddPort while disconnected: %v", err)
	}
	if err := c.SetInterfaceExternalIDs(ctxT(t, 5*time.Second), "br-int", map[string]string{"a": "b"}); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("SetInterfaceExternalIDs while disconnected: %v", err)
	}
}

func TestDialFailsWithoutServer(t *testing.T) {
	testbed.RequireRoot(t)
	_, err := DialWith(ctxT(t, 2*time.Second), DialOptions{Endpoint: "unix:" + t.TempDir() + "/db.sock", NoReconnect: true})
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("Dial to nowhere: %v", err)
	}
}

func TestWaitVswitchdAssignsOFPort(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	dev := e.veth(t, "of0")
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: dev, OFPortRequest: 7}); err != nil {
		t.Fatalf("AddPort: %v", err)
	}
	if err := e.c.WaitVswitchd(ctxT(t, 5*time.Second)); err != nil {
		r, _ := e.c.Root(ctx)
		t.Fatalf("WaitVswitchd: %v; cache %+v; db %s", err, r, e.vsctl(t, "list", "open_vswitch", "."))
	}
	i, err := e.c.Interface(ctx, dev)
	if err != nil || i.OFPort == nil || *i.OFPort != 7 {
		t.Fatalf("after WaitVswitchd: %+v, %v; %s", i, err, e.vsctl(t, "list", "interface", dev))
	}
	e.ovs.StopVswitchd()
	if err := e.c.WaitVswitchd(ctxT(t, 500*time.Millisecond)); !errors.Is(err, ErrNoVswitchd) {
		t.Fatalf("WaitVswitchd without ovs-vswitchd: %v", err)
	}
}

func TestReconnectWhileServerDown(t *testing.T) {
	e := newEnv(t)
	e.ovs.StopDB()
	waitFor(t, func() bool { return !e.c.Connected() })
	err := e.c.SetInterfaceExternalIDs(ctxT(t, 300*time.Millisecond), "br-int", map[string]string{"a": "b"})
	if !errors.Is(err, ErrNotConnected) {
		t.Fatalf("write while the server is down: %v", err)
	}
	time.Sleep(500 * time.Millisecond) // a few reconnect attempts fail
	e.ovs.StartDB(t)
	if err := e.c.SetInterfaceExternalIDs(ctxT(t, 10*time.Second), "br-int", map[string]string{"a": "b"}); err != nil {
		t.Fatalf("write after the server came back: %v", err)
	}
	if got := e.vsctl(t, "get", "interface", "br-int", "external_ids:a"); got != "b" {
		t.Fatalf("external_ids:a = %q", got)
	}
	waitFor(t, e.c.Connected)
}
