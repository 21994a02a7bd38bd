package ovs

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	ofovs "github.com/digitalocean/go-openvswitch/ovs"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

func (e *env) openflow(t *testing.T) *OpenFlow {
	t.Helper()
	of, err := NewOpenFlow(OpenFlowOptions{RunDir: e.ovs.RunDir})
	if err != nil {
		t.Fatal(err)
	}
	return of
}

// flowLines dumps all flows of br-int without stats, sorted as ovs-ofctl prints them.
func (e *env) flowLines(t *testing.T) string {
	t.Helper()
	out, err := e.ovs.Ofctl("--no-stats", "dump-flows", "br-int")
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if !strings.HasPrefix(l, "OFPST") {
			lines = append(lines, strings.TrimSpace(l))
		}
	}
	return strings.Join(lines, "\n")
}

func TestFlowsWithOurCookieOnly(t *testing.T) {
	e := newEnv(t)
	if err := e.c.WaitVswitchd(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	of := e.openflow(t)
	if _, err := e.ovs.Ofctl("add-flow", "br-int", "cookie=0x1,priority=50,in_port=9,actions=drop"); err != nil {
		t.Fatal(err)
	}
	foreign := "cookie=0x1, priority=50,in_port=9 actions=drop"
	if err := of.ReplaceFlows("br-int",
		&Flow{Priority: 300, InPort: 1, Cookie: 1, Actions: []Action{ofovs.Drop()}},
		&Flow{Priority: 300, InPort: 2, Cookie: 2, Actions: []Action{ofovs.Normal()}}); err != nil {
		t.Fatalf("ReplaceFlows: %v", err)
	}
	got := e.flowLines(t)
	for _, want := range []string{foreign, "priority=0 actions=NORMAL",
		"cookie=0x5c1b000000000001, priority=300,in_port=1 actions=drop",
		"cookie=0x5c1b000000000002, priority=300,in_port=2 actions=NORMAL"} {
		if !strings.Contains(got, want) {
			t.Fatalf("flows lack %q:\n%s", want, got)
		}
	}
	ours, err := of.DumpFlows("br-int")
	if err != nil || len(ours) != 2 {
		t.Fatalf("DumpFlows = %d flows, %v", len(ours), err)
	}
	for _, f := range ours {
		if !of.Owned(f.Cookie) {
			t.Fatalf("DumpFlows returned a foreign flow %+v", f)
		}
	}
	// Replace with one flow: the other one of ours goes, the foreign one stays.
	if err := of.ReplaceFlows("br-int", &Flow{Priority: 310, InPort: 1, Actions: []Action{ofovs.Drop()}}); err != nil {
		t.Fatal(err)
	}
	raw, err := of.DumpFlowsRaw("br-int")
	if err != nil || raw != "cookie=0x5c1b000000000000, priority=310,in_port=1 actions=drop" {
		t.Fatalf("after replace: %q, %v", raw, err)
	}
	if err := of.DeleteFlows("br-int"); err != nil {
		t.Fatal(err)
	}
	if got := e.flowLines(t); got != foreign+"\npriority=0 actions=NORMAL" {
		t.Fatalf("after DeleteFlows:\n%s", got)
	}
	// A bundle that fails applies nothing.
	if err := of.ReplaceFlows("br-int", &Flow{Priority: 1, InPort: 60000, Actions: []Action{ofovs.Output(70000)}}); err == nil {
		t.Fatalf("invalid flow accepted")
	}
	if got := e.flowLines(t); got != foreign+"\npriority=0 actions=NORMAL" {
		t.Fatalf("failed bundle changed flows:\n%s", got)
	}
}

func TestFlowsGoneAfterVswitchdRestart(t *testing.T) {
	e := newEnv(t)
	if err := e.c.WaitVswitchd(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	of := e.openflow(t)
	if err := of.AddFlows("br-int", &Flow{Priority: 5, InPort: 1, Actions: []Action{ofovs.Drop()}}); err != nil {
		t.Fatal(err)
	}
	e.ovs.RestartVswitchd(t)
	if err := e.c.WaitVswitchd(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	flows, err := of.DumpFlows("br-int")
	if err != nil || len(flows) != 0 {
		t.Fatalf("after ovs-vswitchd restart: %d flows of ours, %v (the agent must restore them)", len(flows), err)
	}
}

func TestProtectedPortsSplitHorizon(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 20*time.Second)
	var vms []*testbed.VM
	for i, prot := range []bool{true, true, false} {
		vm := testbed.NewVM(t, e.ns, testbed.VMOptions{Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 50, byte(i + 1)}), 24)})
		if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: vm.HostDev, Protected: prot}); err != nil {
			t.Fatal(err)
		}
		vms = append(vms, vm)
	}
	if err := e.c.WaitVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := vms[0].Ping(vms[2].IP, 2); err != nil {
		t.Fatalf("protected -> unprotected: %v %s", err, out)
	}
	if _, err := vms[0].PingWith(vms[1].IP, testbed.PingOptions{Count: 2, Interval: 100 * time.Millisecond, Timeout: 500 * time.Millisecond}); err == nil {
		t.Fatalf("protected -> protected forwarded")
	}
	// AddPort is declarative: unprotect port 2 and they talk.
	if err := e.c.AddPort(ctx, PortOptions{Bridge: "br-int", Name: vms[1].HostDev}); err != nil {
		t.Fatal(err)
	}
	if got := e.vsctl(t, "get", "port", vms[1].HostDev, "protected"); got != "false" {
		t.Fatalf("protected = %s", got)
	}
	if err := e.c.WaitVswitchd(ctx); err != nil {
		t.Fatal(err)
	}
	if out, err := vms[0].Ping(vms[1].IP, 2); err != nil {
		t.Fatalf("after unprotecting: %v %s", err, out)
	}
}

func TestRawFlowsGotoTable(t *testing.T) {
	e := newEnv(t)
	if err := e.c.WaitVswitchd(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	of := e.openflow(t)
	if err := of.ReplaceRawFlows("br-int",
		RawFlow{Cookie: 1, Text: "table=0,priority=100,in_port=1,actions=goto_table:1"},
		RawFlow{Cookie: 2, Text: "table=1,priority=10,actions=NORMAL"}); err != nil {
		t.Fatal(err)
	}
	raw, err := of.DumpFlowsRaw("br-int")
	if err != nil {
		t.Fatal(err)
	}
	want := "cookie=0x5c1b000000000001, priority=100,in_port=1 actions=goto_table:1\n" +
		"cookie=0x5c1b000000000002, table=1, priority=10 actions=NORMAL"
	if raw != want {
		t.Fatalf("dump:\n%s\nwant:\n%s", raw, want)
	}
}

func TestRootExternalIDsAndProtected(t *testing.T) {
	e := newEnv(t)
	ctx := ctxT(t, 10*time.Second)
	if err := e.c.SetRootExternalIDs(ctx, map[string]string{"hb": "1", "x": "y"}); err != nil {
		t.Fatal(err)
	}
	if err := e.c.SetRootExternalIDs(ctx, map[string]string{"hb": "2"}, "x"); err != nil {
		t.Fatal(err)
	}
	if got := e.vsctl(t, "get", "open_vswitch", ".", "external_ids"); got != `{hb="2"}` {
		t.Fatalf("root external_ids %s", got)
	}
	if err := e.c.SetPortProtected(ctx, "br-int", true); err != nil {
		t.Fatal(err)
	}
	if got := e.vsctl(t, "get", "port", "br-int", "protected"); got != "true" {
		t.Fatalf("protected %s", got)
	}
	waitFor(t, func() bool { p, err := e.c.Port(ctx, "br-int"); return err == nil && p.Protected })
	if err := e.c.SetPortProtected(ctx, "nope", true); !errors.Is(err, ErrNoPort) {
		t.Fatalf("missing port: %v", err)
	}
}
