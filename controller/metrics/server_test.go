package metrics

import (
	"context"
	"errors"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// get fetches url and returns the status and body.
func get(tb testing.TB, url string) (int, string) {
	tb.Helper()
	c := http.Client{Timeout: 5 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		tb.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		tb.Fatal(err)
	}
	return resp.StatusCode, string(b)
}

// fakeReconciler is a handwritten ReconcilerView.
type fakeReconciler struct {
	ports  []controller.PortState
	passes int
}

func (f *fakeReconciler) Ports() []controller.PortState { return f.ports }
func (f *fakeReconciler) Passes() int                   { return f.passes }

func portState(name, status string) controller.PortState {
	return controller.PortState{Config: controller.PortConfig{Name: name}, Status: status}
}

func TestServerEndpoints(t *testing.T) {
	var ovsdbDown atomic.Bool
	rec := &fakeReconciler{}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	srv, _, err := StartAgent(ctx, AgentOptions{Addr: "127.0.0.1:0", Version: "v-test",
		Controller: ReconcilerSource{Reconciler: rec, OVSDBConnected: func() bool { return !ovsdbDown.Load() }},
		Datapaths: map[offload.Mode]DatapathSource{offload.ModeUDP: &fakeDatapath{st: DatapathStats{
			Samples: []Sample{{Counter: TxBytes, Port: "sclp0", Peer: "10.0.0.2", Value: 1500}}}}},
		Live: []Check{{Name: "ovsdb", Fn: func(context.Context) error {
			if ovsdbDown.Load() {
				return errors.New("connection refused")
			}
			return nil
		}}},
		Ready: []Check{ConvergedCheck(rec)},
	})
	if err != nil {
		t.Fatal(err)
	}
	base := "http://" + srv.Addr().String()

	code, body := get(t, base+"/metrics")
	for _, want := range []string{
		`sclp_ovs_tx_bytes_total{mode="udp",peer="10.0.0.2",port="sclp0"} 1500`,
		`sclp_ovs_build_info{version="v-test"} 1`,
		`sclp_ovs_ovsdb_connected 1`,
		`sclp_ovs_ports_desired 0`,
		"go_goroutines ", "process_cpu_seconds_total ",
	} {
		if code != 200 || !strings.Contains(body, want) {
			t.Errorf("/metrics (%d) lacks %q", code, want)
		}
	}
	if code, body := get(t, base+"/healthz"); code != 200 || body != "ok\n" {
		t.Errorf("/healthz = %d %q, want 200 ok", code, body)
	}
	// No pass yet: not ready.
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "no reconcile pass") {
		t.Errorf("/readyz before any pass = %d %q, want 503", code, body)
	}
	rec.passes, rec.ports = 1, []controller.PortState{portState("sclp0", controller.StatusReady), portState("sclp1", "pending: waiting for ovs-vswitchd")}
	if code, body := get(t, base+"/readyz"); code != 503 || !strings.Contains(body, "sclp1 (pending: waiting") {
		t.Errorf("/readyz with a pending port = %d %q, want 503 naming sclp1", code, body)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "sclp_ovs_ports_desired 2") || !strings.Contains(body, "sclp_ovs_ports_ready 1") {
		t.Errorf("ports gauges wrong:\n%s", grep(body, "sclp_ovs_ports_"))
	}
	rec.ports = rec.ports[:1]
	if code, body := get(t, base+"/readyz?verbose"); code != 200 || !strings.Contains(body, "[+] converged") {
		t.Errorf("/readyz converged = %d %q, want 200", code, body)
	}
	// A failing live check fails both endpoints.
	ovsdbDown.Store(true)
	if code, body := get(t, base+"/healthz"); code != 503 || !strings.Contains(body, "[-] ovsdb: connection refused") {
		t.Errorf("/healthz with OVSDB down = %d %q", code, body)
	}
	if code, _ := get(t, base+"/readyz"); code != 503 {
		t.Errorf("/readyz with OVSDB down = %d, want 503", code)
	}
	if _, body := get(t, base+"/metrics"); !strings.Contains(body, "sclp_ovs_ovsdb_connected 0") {
		t.Error("ovsdb_connected did not drop to 0")
	}
	if code, _ := get(t, base+"/nope"); code != 404 {
		t.Errorf("unknown path: %d", code)
	}

	// Cancelling the context stops the server.
	cancel()
	done := make(chan error, 1)
	go func() { done <- srv.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("server ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server still running 5 s after its context ended")
	}
	c := http.Client{Timeout: time.Second}
	if resp, err := c.Get(base + "/healthz"); err == nil {
		resp.Body.Close()
		t.Fatal("server still answers after stop")
	}
}

func TestServeDefaultsToLoopback(t *testing.T) {
	if DefaultAddress != "127.0.0.1:9310" {
		t.Fatalf("DefaultAddress %q", DefaultAddress)
	}
	if _, err := Start(context.Background(), ServerOptions{}); err == nil {
		t.Fatal("Start without a Gatherer succeeded")
	}
}

func TestServeReturnsListenError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err := Serve(ctx, ServerOptions{Addr: "256.0.0.1:1", Gatherer: fullRegistry(t)})
	if err == nil || !strings.Contains(err.Error(), "listen for metrics") {
		t.Fatalf("Serve on a bad address: %v", err)
	}
}

// readyReconciler adds Ready() to fakeReconciler, like *controller.Reconciler.
type readyReconciler struct {
	fakeReconciler
	ready bool
}

func (r *readyReconciler) Ready() bool { return r.ready }

func TestConvergedCheckUsesReady(t *testing.T) {
	r := &readyReconciler{fakeReconciler: fakeReconciler{passes: 3, ports: []controller.PortState{portState("a", controller.StatusReady)}}}
	c := ConvergedCheck(r)
	if err := c.Fn(context.Background()); !errors.Is(err, ErrNotConverged) || !strings.Contains(err.Error(), "last reconcile pass failed") {
		t.Fatalf("ports ready but the last pass failed: %v", err)
	}
	r.ready = true
	if err := c.Fn(context.Background()); err != nil {
		t.Fatalf("converged: %v", err)
	}
}

func TestReconcilerSourceWithRecorder(t *testing.T) {
	r := &ReconcileRecorder{}
	r.Observe(time.Millisecond, nil)
	r.Observe(time.Millisecond, errors.New("x"))
	st := ReconcilerSource{Reconciler: &fakeReconciler{passes: 99, ports: []controller.PortState{
		portState("a", controller.StatusReady), portState("b", "error: veth: exists")}},
		Recorder: r, OpenFlowConnected: func() bool { return true }}.ControllerStats()
	if st.PortsDesired != 2 || st.PortsReady != 1 || st.Reconcile.Passes != 2 || st.Reconcile.Errors != 1 ||
		!st.OpenFlowConnected || st.OVSDBConnected {
		t.Fatalf("stats %+v", st)
	}
	st = ReconcilerSource{Reconciler: &fakeReconciler{passes: 99}}.ControllerStats()
	if st.Reconcile.Passes != 99 || st.Reconcile.Buckets != nil {
		t.Fatalf("without recorder: %+v", st.Reconcile)
	}
}

// grep returns the lines of s containing sub.
func grep(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
