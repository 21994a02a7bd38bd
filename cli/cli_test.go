package cli

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/netip"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// fakeDB is an in-memory DB: a controllertest.Store plus the CLI's transactions.
type fakeDB struct {
	*controllertest.Store
	mu        sync.Mutex
	heartbeat string
	nextOF    int
	txns      int
}

func newFakeDB() *fakeDB {
	return &fakeDB{nextOF: 10, Store: controllertest.NewStore(
		controller.Bridge{Name: "br-int", Ports: []controller.BridgePort{
			{Name: "br-int", OFPort: controller.OFPortLocal, ExternalIDs: map[string]string{}},
			{Name: "vm1", OFPort: 1, ExternalIDs: map[string]string{}},
		}},
		controller.Bridge{Name: "br-ex"})}
}

func (f *fakeDB) AddPort(ctx context.Context, bridge, name string, ids map[string]string) error {
	f.mu.Lock()
	f.txns++
	f.nextOF++
	of := f.nextOF
	f.mu.Unlock()
	var err error
	f.Update(func(bs *[]controller.Bridge) {
		for i := range *bs {
			if (*bs)[i].Name == bridge {
				(*bs)[i].Ports = append((*bs)[i].Ports, controller.BridgePort{Name: name, OFPort: of, ExternalIDs: ids, Protected: true})
				return
			}
		}
		err = errors.New("no bridge")
	})
	return err
}

func (f *fakeDB) DeletePort(ctx context.Context, bridge, name string) error {
	f.mu.Lock()
	f.txns++
	f.mu.Unlock()
	f.Update(func(bs *[]controller.Bridge) {
		for i := range *bs {
			ps := (*bs)[i].Ports[:0]
			for _, p := range (*bs)[i].Ports {
				if p.Name != name {
					ps = append(ps, p)
				}
			}
			(*bs)[i].Ports = ps
		}
	})
	return nil
}

func (f *fakeDB) Heartbeat(ctx context.Context) (string, error) {
	if f.heartbeat != "" {
		return f.heartbeat, nil
	}
	return f.Store.Heartbeat(), nil
}

func (f *fakeDB) Close() {}

func (f *fakeDB) snapshot(t *testing.T) []controller.Bridge {
	t.Helper()
	b, err := f.Bridges(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return b
}

type harness struct {
	db             *fakeDB
	router         *controllertest.Router
	agentRouter    *controllertest.Router
	stdout, stderr bytes.Buffer
}

func newHarness() *harness {
	return &harness{db: newFakeDB(), router: &controllertest.Router{
		Routes: map[netip.Addr]controller.Route{
			netip.MustParseAddr("10.0.0.2"): {Local: netip.MustParseAddr("10.0.0.1"), Device: "ul0", MTU: 1500},
			netip.MustParseAddr("10.0.0.3"): {Local: netip.MustParseAddr("10.0.0.1"), Device: "ul0", MTU: 1500},
		},
		MTUs: map[string]int{"ul0": 1500},
	}}
}

func (h *harness) run(args ...string) int {
	h.stdout.Reset()
	h.stderr.Reset()
	d := Deps{Stdout: &h.stdout, Stderr: &h.stderr, Router: h.router,
		OpenDB: func(context.Context, string) (DB, error) { return h.db, nil }}
	return Run(d, append([]string{"sclp-ovs", "--db", "unix:/nonexistent/db.sock"}, args...))
}

// agent runs a real reconciler with fake host dependencies against the fake DB.
func (h *harness) agent(t *testing.T) {
	r, err := controller.New(controller.Options{Store: h.db, Flows: controllertest.NewFlows(), Links: controllertest.NewLinks(),
		Router: cmp.Or(h.agentRouter, h.router), Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: controllertest.NewDatapath(), offload.ModeIP: controllertest.NewDatapath()},
		Resync: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { r.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	for h.db.Store.Heartbeat() == "" {
		time.Sleep(time.Millisecond)
	}
}

func TestBadInputChangesNothing(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"no args", []string{"add-port"}, ExitUsage, "needs BRIDGE"},
		{"no peer", []string{"add-port", "br-int"}, ExitUsage, "needs BRIDGE"},
		{"missing peer option", []string{"add-port", "br-int", "key=1"}, ExitUsage, "peer"},
		{"bad ip", []string{"add-port", "br-int", "peer=10.0.0.256"}, ExitUsage, "not an IPv4"},
		{"unknown option", []string{"add-port", "br-int", "peer=10.0.0.2", "color=red"}, ExitUsage, "unknown option"},
		{"unknown flag", []string{"add-port", "--bogus", "br-int", "peer=10.0.0.2"}, ExitUsage, "bogus"},
		{"unknown command", []string{"frobnicate"}, ExitUsage, "unknown command"},
		{"bad mtu", []string{"add-port", "br-int", "peer=10.0.0.2", "mtu=70000"}, ExitUsage, "68-65000"},
		{"missing bridge", []string{"add-port", "br-nope", "peer=10.0.0.2"}, ExitFailure, "ovs-vsctl add-br br-nope"},
		{"no route", []string{"add-port", "br-int", "peer=10.9.9.9"}, ExitFailure, "local_ip="},
		{"no agent", []string{"add-port", "br-int", "peer=10.0.0.2"}, ExitFailure, "sclp-ovs agent"},
		{"del bad peer", []string{"del-port", "br-int", "peer=x"}, ExitUsage, "IPv4"},
		{"del missing bridge", []string{"del-port", "br-nope", "p0"}, ExitFailure, "no bridge"},
		{"del foreign port", []string{"del-port", "br-int", "vm1"}, ExitFailure, "ovs-vsctl del-port"},
		{"del arg count", []string{"del-port", "br-int"}, ExitUsage, "needs BRIDGE"},
		{"list too many", []string{"list-ports", "a", "b"}, ExitUsage, "at most one"},
		{"list missing bridge", []string{"list-ports", "br-nope"}, ExitFailure, "no bridge"},
		{"completion shell", []string{"completion", "tcsh"}, ExitUsage, "bash"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness()
			before := h.db.snapshot(t)
			if code := h.run(tc.args...); code != tc.code {
				t.Fatalf("exit %d, want %d; stderr %q", code, tc.code, h.stderr.String())
			}
			if !strings.Contains(h.stderr.String(), tc.msg) {
				t.Errorf("stderr %q does not mention %q", h.stderr.String(), tc.msg)
			}
			if after := h.db.snapshot(t); !reflect.DeepEqual(before, after) || h.db.txns != 0 {
				t.Errorf("OVSDB changed: %d transactions", h.db.txns)
			}
		})
	}
}

func TestStaleHeartbeatIsNoAgent(t *testing.T) {
	h := newHarness()
	h.db.heartbeat = time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)
	if code := h.run("add-port", "br-int", "peer=10.0.0.2"); code != ExitFailure || !strings.Contains(h.stderr.String(), "old") {
		t.Fatalf("exit %d, stderr %q", code, h.stderr.String())
	}
	if h.db.txns != 0 {
		t.Fatal("OVSDB written without an agent")
	}
}

func TestAddWithoutWait(t *testing.T) {
	h := newHarness()
	if code := h.run("add-port", "--wait=false", "br-int", "peer=10.0.0.2", "key=7"); code != ExitOK {
		t.Fatalf("exit %d: %s", code, h.stderr.String())
	}
	p, ok := h.db.Port("sclp0a000002")
	if !ok {
		t.Fatal("port not added")
	}
	want := map[string]string{controller.KeyOwner: "sclp-ovs", controller.KeyPeer: "10.0.0.2", controller.KeyVNI: "7",
		controller.KeyLocalIP: "10.0.0.1", controller.KeyDev: "ul0", controller.KeyMode: "udp", controller.KeyDstPort: "4795",
		controller.KeyMTU: "1438", controller.KeyTTL: "64", controller.KeyDF: "true"}
	if !reflect.DeepEqual(p.ExternalIDs, want) {
		t.Fatalf("external_ids = %v\nwant %v", p.ExternalIDs, want)
	}
	if strings.TrimSpace(h.stdout.String()) != "sclp0a000002" {
		t.Fatalf("stdout %q", h.stdout.String())
	}
}

func TestAddWaitsForAgentIdempotentDelete(t *testing.T) {
	h := newHarness()
	h.agent(t)
	for i := 0; i < 2; i++ {
		if code := h.run("add-port", "--timeout=5s", "br-int", "peer=10.0.0.2", "mode=ip"); code != ExitOK {
			t.Fatalf("add #%d: exit %d: %s", i+1, code, h.stderr.String())
		}
	}
	if h.db.txns != 1 {
		t.Fatalf("repeated add made %d transactions, want 1", h.db.txns)
	}
	if p, _ := h.db.Port("sclp0a000002"); p.ExternalIDs[controller.KeyStatus] != controller.StatusReady || p.ExternalIDs[controller.KeyMTU] != "1446" {
		t.Fatalf("port = %+v", p)
	}
	// Same peer, other options: a duplicate, refused.
	if code := h.run("add-port", "br-int", "peer=10.0.0.2", "key=9"); code != ExitFailure || !strings.Contains(h.stderr.String(), "del-port br-int sclp0a000002") {
		t.Fatalf("duplicate peer: exit %d: %s", code, h.stderr.String())
	}
	// Same name, other peer.
	if code := h.run("add-port", "br-int", "peer=10.0.0.3", "name=sclp0a000002"); code != ExitFailure || !strings.Contains(h.stderr.String(), "taken") {
		t.Fatalf("duplicate name: exit %d: %s", code, h.stderr.String())
	}
	if code := h.run("list-ports", "--json", "br-int"); code != ExitOK {
		t.Fatalf("list: %d %s", code, h.stderr.String())
	}
	var rows []portRow
	if err := json.Unmarshal(h.stdout.Bytes(), &rows); err != nil || len(rows) != 1 || rows[0].Peer != "10.0.0.2" || rows[0].Status != "ready" {
		t.Fatalf("list-ports --json = %s (%v)", h.stdout.String(), err)
	}
	for i := 0; i < 2; i++ {
		if code := h.run("del-port", "br-int", "peer=10.0.0.2"); code != ExitOK {
			t.Fatalf("del #%d: exit %d: %s", i+1, code, h.stderr.String())
		}
	}
	if _, ok := h.db.Port("sclp0a000002"); ok || h.db.txns != 2 {
		t.Fatalf("port still there or wrong transaction count %d", h.db.txns)
	}
	if !strings.Contains(h.stderr.String(), "nothing to do") {
		t.Fatalf("second delete stderr %q", h.stderr.String())
	}
}

func TestAgentErrorReported(t *testing.T) {
	h := newHarness()
	// The agent's host has lost the underlay device the CLI resolved: it reports an error.
	h.agentRouter = &controllertest.Router{}
	h.agent(t)
	code := h.run("add-port", "--timeout=5s", "br-int", "peer=10.0.0.2")
	if code != ExitFailure || !strings.Contains(h.stderr.String(), "agent reports") || !strings.Contains(h.stderr.String(), "underlay device ul0") {
		t.Fatalf("exit %d %s", code, h.stderr.String())
	}
}

func TestWaitTimeout(t *testing.T) {
	h := newHarness()
	h.db.heartbeat = time.Now().UTC().Format(time.RFC3339Nano) // an agent that never answers
	code := h.run("add-port", "--timeout=300ms", "br-int", "peer=10.0.0.2")
	if code != ExitFailure || !strings.Contains(h.stderr.String(), "not ready after 300ms") {
		t.Fatalf("exit %d %s", code, h.stderr.String())
	}
}

func TestVersionAndCompletion(t *testing.T) {
	h := newHarness()
	if code := h.run("version"); code != ExitOK || !strings.Contains(h.stdout.String(), "sclp-ovs") {
		t.Fatalf("version: %d %q", code, h.stdout.String())
	}
	if code := h.run("completion", "bash"); code != ExitOK || !strings.Contains(h.stdout.String(), "complete -o default -F") {
		t.Fatalf("completion: %d", code)
	}
	if code := h.run("add-port", "--generate-bash-completion"); code != ExitOK || !strings.Contains(h.stdout.String(), "peer=") {
		t.Fatalf("option completion: %d %q", code, h.stdout.String())
	}
	// The app-level command list is urfave/cli's DefaultAppComplete, which reads os.Args
	// (the test binary's here); the e2e tests check it through the real binary.
}

func TestShowAndStats(t *testing.T) {
	h := newHarness()
	h.agent(t)
	if code := h.run("add-port", "br-int", "peer=10.0.0.3"); code != ExitOK {
		t.Fatalf("add: %d %s", code, h.stderr.String())
	}
	if code := h.run("show"); code != ExitOK || !strings.Contains(h.stdout.String(), "Port sclp0a000003") || !strings.Contains(h.stdout.String(), "agent: running") {
		t.Fatalf("show: %d\n%s%s", code, h.stdout.String(), h.stderr.String())
	}
	if code := h.run("stats", "--json"); code != ExitOK {
		t.Fatalf("stats: %d %s", code, h.stderr.String())
	}
	var out []map[string]any
	if err := json.Unmarshal(h.stdout.Bytes(), &out); err != nil || len(out) != 1 || out[0]["peer"] != "10.0.0.3" {
		t.Fatalf("stats --json = %s (%v)", h.stdout.String(), err)
	}
}

func TestExitCode(t *testing.T) {
	for err, want := range map[error]int{
		nil: 0, errors.New("x"): 1, usagef("y"): 2,
		fmt.Errorf("wrapped: %w", &controller.OptionError{Key: "k"}): 2,
	} {
		if got := ExitCode(err); got != want {
			t.Errorf("ExitCode(%v) = %d, want %d", err, got, want)
		}
	}
}

func TestStatusSocket(t *testing.T) {
	path := t.TempDir() + "/agent.sock"
	handed := make(chan struct{})
	stop, err := serveStatus(path, func() AgentStatus { return AgentStatus{PID: 42, Passes: 7} }, func() { close(handed) })
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	if _, err := serveStatus(path, nil, nil); err == nil {
		t.Fatal("a second agent could listen on the same socket")
	}
	st, err := fetchStatus(context.Background(), path)
	if err != nil || st.PID != 42 || st.Passes != 7 {
		t.Fatalf("status = %+v, %v", st, err)
	}
	go func() { <-handed; stop() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := requestHandover(ctx, path); err != nil {
		t.Fatalf("handover: %v", err)
	}
	if agentAnswers(path) {
		t.Fatal("old agent still answers after handover")
	}
}
