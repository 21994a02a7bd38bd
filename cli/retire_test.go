package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// eventually polls cond every 10 ms for up to 5 s.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSuccessorAnnouncement: a successor's POST /v1/successor makes the running agent's
// "handover" readiness check fail for as long as the request is held, and no longer: the
// successor ending it (took over, gave up, died) or the old agent's status socket stopping
// ends it.
func TestSuccessorAnnouncement(t *testing.T) {
	path := t.TempDir() + "/agent.sock"
	succ := newSuccessors()
	stop, err := serveStatusHandlers(path, StatusHandlers{Status: func() AgentStatus { return AgentStatus{PID: 1} }, Successor: succ.add})
	if err != nil {
		t.Fatal(err)
	}
	defer stop()
	check := handoverCheck(succ)
	if err := check.Fn(context.Background()); err != nil {
		t.Fatalf("handover check with no successor: %v", err)
	}
	announce := func(ctx context.Context) chan error {
		done := make(chan error, 1)
		go func() { done <- announceSuccessor(ctx, path, HandoverRequest{PID: 77}) }()
		return done
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := announce(ctx)
	eventually(t, "the successor registered", func() bool { _, ok := succ.pending(); return ok })
	if err := check.Fn(context.Background()); err == nil || !strings.Contains(err.Error(), "pid 77") {
		t.Errorf("handover check while a successor starts: %v (want a failure naming pid 77)", err)
	}
	cancel() // the successor closes its connection
	<-done
	eventually(t, "the successor unregistered", func() bool { _, ok := succ.pending(); return !ok })

	done = announce(context.Background())
	eventually(t, "the successor registered again", func() bool { _, ok := succ.pending(); return ok })
	stop() // the old agent stops serving (it handed over): the held request ends
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("announcement ended with %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the held announcement outlived the status socket")
	}
	if _, ok := succ.pending(); ok {
		t.Error("successor still pending after the socket stopped")
	}
}

// TestHandoverCarriesSuccessor: POST /v1/handover tells the old agent the successor's pid
// and metrics address; an earlier agent's empty body is the zero request.
func TestHandoverCarriesSuccessor(t *testing.T) {
	path := t.TempDir() + "/agent.sock"
	got := make(chan HandoverRequest, 1)
	var stop func()
	stop, err := serveStatusHandlers(path, StatusHandlers{Status: func() AgentStatus { return AgentStatus{} },
		Handover: func(r HandoverRequest) { got <- r; go stop() }})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	want := HandoverRequest{PID: 4242, MetricsAddress: "192.0.2.1:9310"}
	if err := requestHandoverFrom(ctx, path, want); err != nil {
		t.Fatal(err)
	}
	if r := <-got; r != want {
		t.Errorf("handover request %+v, want %+v", r, want)
	}

	stop, err = serveStatusHandlers(path, StatusHandlers{Status: func() AgentStatus { return AgentStatus{} },
		Handover: func(r HandoverRequest) { got <- r; go stop() }})
	if err != nil {
		t.Fatal(err)
	}
	req, _ := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/handover", nil)
	resp, err := unixClient(path).Do(req)
	if err != nil || resp.StatusCode != http.StatusAccepted {
		t.Fatalf("bodyless handover: %v %v", resp, err)
	}
	resp.Body.Close()
	if r := <-got; r != (HandoverRequest{}) {
		t.Errorf("bodyless handover request %+v, want zero", r)
	}
}

func TestSharesPort(t *testing.T) {
	for _, c := range []struct {
		mine, successor string
		want            bool
	}{
		{"192.0.2.1:9310", "192.0.2.1:9310", true},
		{"127.0.0.1:9310", "0.0.0.0:9310", true},
		{"", "127.0.0.1:9310", true}, // "" is the default address
		{"127.0.0.1:9310", "127.0.0.1:9311", false},
		{"127.0.0.1:9310", "", true}, // successor unknown (earlier version): leave the port
		{"127.0.0.1:9310", "off", false},
		{"off", "127.0.0.1:9310", false},
		{"127.0.0.1:9310", "garbage", true},
	} {
		if got := sharesPort(c.mine, c.successor); got != c.want {
			t.Errorf("sharesPort(%q, %q) = %v, want %v", c.mine, c.successor, got, c.want)
		}
	}
}

func TestRetiredHandler(t *testing.T) {
	srv := httptest.NewServer(retiredHandler(HandoverRequest{PID: 31}))
	defer srv.Close()
	for path, want := range map[string]int{"/healthz": 200, "/readyz": 503, "/metrics": 503} {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != want || !strings.Contains(string(b), "retired: handed over to pid 31") {
			t.Errorf("GET %s: %d %q, want %d with the reason", path, resp.StatusCode, b, want)
		}
	}
}

// freeAddr returns a loopback address with a port that was free a moment ago.
func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// agentRun runs runAgent with fake host dependencies on the socket directory dir and returns
// its cancel (the SIGTERM) and its result.
func agentRun(t *testing.T, dir string, cfg AgentConfig, opened *atomic.Int32) (context.CancelFunc, chan error) {
	t.Helper()
	return agentRunOn(t, dir, cfg, newHarness(), controllertest.NewDatapath(), opened)
}

// agentRunOn is agentRun on the harness h (its fake OVSDB: agents of one host share it) with
// the mode=udp datapath dp.
func agentRunOn(t *testing.T, dir string, cfg AgentConfig, h *harness, dp *controllertest.Datapath, opened *atomic.Int32) (context.CancelFunc, chan error) {
	t.Helper()
	d := Deps{Stdout: io.Discard, Stderr: io.Discard, Router: h.router, Links: controllertest.NewLinks(),
		OpenDB: func(context.Context, string) (DB, error) {
			if opened != nil {
				opened.Add(1)
			}
			return h.db, nil
		},
		NewAgentDeps: func(context.Context, AgentConfig) (AgentDeps, func(), error) {
			return AgentDeps{Flows: controllertest.NewFlows(),
				Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: dp}}, func() {}, nil
		},
		Now: time.Now, Log: slog.New(slog.DiscardHandler)}
	return agentRunDeps(t, dir, cfg, d)
}

// agentRunDeps is agentRun with the dependencies d.
func agentRunDeps(t *testing.T, dir string, cfg AgentConfig, d Deps) (context.CancelFunc, chan error) {
	t.Helper()
	cfg.DB = "unix:" + filepath.Join(dir, "db.sock")
	cfg.Modes = []offload.Mode{offload.ModeUDP}
	cfg.Log = d.Log
	if cfg.MetricsAddress == "" {
		cfg.MetricsAddress = "off"
	}
	ctx, cancel := context.WithCancel(context.Background())
	done, exited := make(chan error, 1), make(chan struct{})
	go func() { done <- runAgent(ctx, d, cfg, 10*time.Millisecond); close(exited) }()
	t.Cleanup(func() {
		cancel()
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})
	return cancel, done
}

// TestStopWaitsForAnnouncedSuccessor: SIGTERM to an agent while a successor is starting
// does not stop it (a surge pod's old agent deleted before its successor carries the
// ports); the handover does. Without an announced successor SIGTERM stops it at once.
func TestStopWaitsForAnnouncedSuccessor(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sclp-ovs-agent.sock")
	addr := freeAddr(t)
	term, done := agentRun(t, dir, AgentConfig{MetricsAddress: addr}, nil)
	eventually(t, "the agent's status socket", func() bool { return agentAnswers(sock) })

	actx, endAnnounce := context.WithCancel(context.Background())
	defer endAnnounce()
	go announceSuccessor(actx, sock, HandoverRequest{PID: 99})
	// The announcement registered: /readyz fails for it.
	eventually(t, "/readyz to name the successor", func() bool {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err != nil {
			return false
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode == http.StatusServiceUnavailable && strings.Contains(string(b), "successor agent (pid 99)")
	})
	term()
	select {
	case err := <-done:
		t.Fatalf("the agent stopped on SIGTERM while a successor was starting: %v", err)
	case <-time.After(500 * time.Millisecond):
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := requestHandoverFrom(ctx, sock, HandoverRequest{PID: 99}); err != nil {
		t.Fatalf("handover: %v", err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not stop after the handover")
	}

	// No successor: SIGTERM stops it.
	term, done = agentRun(t, dir, AgentConfig{}, nil)
	eventually(t, "the second agent's status socket", func() bool { return agentAnswers(sock) })
	term()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("agent: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("SIGTERM did not stop an agent without a successor")
	}
}

// TestRetire: with --after-handover=retire the agent outlives the handover holding nothing
// (its status socket is gone, its metrics port free when the successor shares it), writes
// its marker, returns nil on SIGTERM; an agent started with that marker stays retired
// without opening OVSDB or taking over.
func TestRetire(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sclp-ovs-agent.sock")
	marker := filepath.Join(t.TempDir(), "retired")
	addr := freeAddr(t)
	cfg := AgentConfig{AfterHandover: AfterHandoverRetire, RetiredMarker: marker, MetricsAddress: addr}
	term, done := agentRun(t, dir, cfg, nil)
	eventually(t, "the agent's metrics endpoint", func() bool {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			c.Close()
		}
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := requestHandoverFrom(ctx, sock, HandoverRequest{PID: 1234, MetricsAddress: addr}); err != nil {
		t.Fatalf("handover: %v", err)
	}
	// The successor shares the port: it must become free.
	eventually(t, "the metrics port free", func() bool {
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
		return err == nil
	})
	select {
	case err := <-done:
		t.Fatalf("the retiring agent returned: %v", err)
	case <-time.After(300 * time.Millisecond):
	}
	if m, err := readRetiredMarker(marker); err != nil || m.PID != 1234 {
		t.Errorf("marker %+v, %v", m, err)
	}
	if agentAnswers(sock) {
		t.Error("the retired agent still answers on the status socket")
	}
	term()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("retired agent on SIGTERM: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retired agent did not stop on SIGTERM")
	}

	// A restart with the marker (the kubelet restarting the old pod's container), next to a
	// running successor it must not take over from.
	stopSucc, err := serveStatus(sock, func() AgentStatus { return AgentStatus{PID: 1234} }, func() { t.Error("the restarted agent took over") })
	if err != nil {
		t.Fatal(err)
	}
	defer stopSucc()
	var opened atomic.Int32
	term, done = agentRun(t, dir, cfg, &opened)
	time.Sleep(300 * time.Millisecond)
	if opened.Load() != 0 {
		t.Error("the restarted retired agent opened OVSDB")
	}
	term()
	if err := <-done; err != nil {
		t.Errorf("restarted retired agent: %v", err)
	}
	if _, err := os.Stat(marker); err != nil {
		t.Errorf("marker gone: %v", err)
	}
}

// TestRetireRefusesEarlierVersion: an agent that retires after a handover refuses one
// asked by an agent of an earlier version (no body: it cannot say who it is), which under a
// DaemonSet is the restarted container of the old pod that just handed over; it carries on.
// An agent that exits after a handover accepts it, as before.
func TestRetireRefusesEarlierVersion(t *testing.T) {
	for _, after := range []string{AfterHandoverRetire, AfterHandoverExit} {
		t.Run(after, func(t *testing.T) {
			dir := t.TempDir()
			sock := filepath.Join(dir, "sclp-ovs-agent.sock")
			_, done := agentRun(t, dir, AgentConfig{AfterHandover: after}, nil)
			eventually(t, "the agent's status socket", func() bool { return agentAnswers(sock) })
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			req, _ := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/handover", nil)
			resp, err := unixClient(sock).Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if after == AfterHandoverExit {
				if resp.StatusCode != http.StatusAccepted {
					t.Fatalf("exit mode: bodyless handover %d %q, want 202", resp.StatusCode, b)
				}
				select {
				case <-done:
				case <-time.After(5 * time.Second):
					t.Fatal("exit mode: the agent did not stop after the handover")
				}
				return
			}
			if resp.StatusCode != http.StatusConflict || !strings.Contains(string(b), "refused") {
				t.Fatalf("bodyless handover: %d %q, want 409 refused", resp.StatusCode, b)
			}
			if _, err := fetchStatus(ctx, sock); err != nil {
				t.Errorf("the agent stopped answering after refusing: %v", err)
			}
			err = requestHandoverFrom(ctx, sock, HandoverRequest{PID: 5})
			if err != nil {
				t.Errorf("handover from a current agent after the refusal: %v", err)
			}
		})
	}
}

// TestRetiringSuccessorGivesUp: a successor started with --after-handover=retire whose
// ports do not become ready gives up (error, the running agent keeps forwarding) when the
// running agent has them ready: a broken update stalls instead of breaking the host. With
// --after-handover=exit it takes over anyway after the wait, as before.
func TestRetiringSuccessorGivesUp(t *testing.T) {
	defer func(w time.Duration) { takeoverWait = w }(takeoverWait)
	takeoverWait = 300 * time.Millisecond
	dir := t.TempDir()
	sock := filepath.Join(dir, "sclp-ovs-agent.sock")
	h := newHarness()
	if code := h.run("add-port", "--wait=false", "br-int", "peer=10.0.0.2"); code != ExitOK {
		t.Fatalf("add-port: %d %s", code, h.stderr.String())
	}
	_, oldDone := agentRunOn(t, dir, AgentConfig{AfterHandover: AfterHandoverRetire}, h, controllertest.NewDatapath(), nil)
	eventually(t, "the running agent's port ready", func() bool {
		st, err := fetchStatus(context.Background(), sock)
		return err == nil && len(st.Ports) == 1 && st.Ports[0].Status == "ready"
	})

	broken := controllertest.NewDatapath()
	broken.FailEnsure = 1 << 30
	_, done := agentRunOn(t, dir, AgentConfig{AfterHandover: AfterHandoverRetire}, h, broken, nil)
	select {
	case err := <-done:
		if err == nil || !strings.Contains(err.Error(), "not taking over: sclp0a000002") {
			t.Fatalf("broken successor: %v, want it to give up naming sclp0a000002", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the broken successor neither gave up nor took over")
	}
	select {
	case err := <-oldDone:
		t.Fatalf("the running agent stopped: %v", err)
	default:
	}
	if _, err := fetchStatus(context.Background(), sock); err != nil {
		t.Fatalf("the running agent no longer answers: %v", err)
	}

	broken = controllertest.NewDatapath()
	broken.FailEnsure = 1 << 30
	_, done = agentRunOn(t, dir, AgentConfig{AfterHandover: AfterHandoverExit}, h, broken, nil)
	eventually(t, "the exit-mode successor to take over anyway", func() bool {
		select {
		case err := <-done:
			t.Fatalf("exit-mode successor returned: %v", err)
		default:
		}
		st, err := fetchStatus(context.Background(), sock)
		return err == nil && len(st.Ports) == 1 && st.Ports[0].Status != "ready"
	})
}
