package cli

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// fakeAgentDeps are agentRunOn's fake host dependencies on h with a mode=udp datapath;
// closeDeps, if set, is what closing the datapaths does.
func fakeAgentDeps(h *harness, closeDeps func()) Deps {
	if closeDeps == nil {
		closeDeps = func() {}
	}
	return Deps{Stdout: io.Discard, Stderr: io.Discard, Router: h.router, Links: controllertest.NewLinks(),
		OpenDB: func(context.Context, string) (DB, error) { return h.db, nil },
		NewAgentDeps: func(context.Context, AgentConfig) (AgentDeps, func(), error) {
			return AgentDeps{Flows: controllertest.NewFlows(),
				Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: controllertest.NewDatapath()}}, closeDeps, nil
		},
		Now: time.Now, Log: slog.New(slog.DiscardHandler)}
}

// probeCode asks the probe socket sock for path and returns the status and body (0 when
// nothing answers).
func probeCode(sock, path string) (int, string) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	code, body, err := askProbe(ctx, sock, path)
	if err != nil {
		return 0, err.Error()
	}
	return code, body
}

// waitProbeCode waits until the probe socket answers path with want and a body containing
// substr.
func waitProbeCode(t *testing.T, sock, path string, want int, substr string) {
	t.Helper()
	var code int
	var body string
	deadline := time.Now().Add(5 * time.Second)
	for {
		if code, body = probeCode(sock, path); code == want && strings.Contains(body, substr) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("probe %s on %s: %d %q, want %d containing %q", path, sock, code, body, want, substr)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestProbeSocketAnswersForItsOwnProcess: the agent's --probe-socket answers for that
// process alone. A successor stuck before OVSDB answers (the surge pod of finding 8: OVSDB
// unreachable, a wrong --db) has already announced itself to the running agent (whose
// readiness then fails) and its own probes fail ("starting"), while the running agent's
// probe socket stays healthy; once it gives up, the announcement ends. A successor that
// takes over is ready on its own socket only once it has, and the retired agent's socket
// then answers healthy but not ready. `sclp-ovs probe` exits 0 only on 200.
func TestProbeSocketAnswersForItsOwnProcess(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sclp-ovs-agent.sock")
	oldProbe := filepath.Join(t.TempDir(), "probe.sock")
	h := newHarness()
	cfg := AgentConfig{AfterHandover: AfterHandoverRetire, RetiredMarker: filepath.Join(t.TempDir(), "retired"), ProbeSocket: oldProbe}
	term, oldDone := agentRunDeps(t, dir, cfg, fakeAgentDeps(h, nil))
	waitProbeCode(t, oldProbe, "/readyz", http.StatusOK, "ok")
	waitProbeCode(t, oldProbe, "/healthz", http.StatusOK, "ok")
	if code := h.run("probe", "--socket", oldProbe, "readyz"); code != ExitOK || !strings.Contains(h.stdout.String(), "ok") {
		t.Errorf("sclp-ovs probe readyz on a ready agent: exit %d, %q %q", code, h.stdout.String(), h.stderr.String())
	}

	// A successor whose OVSDB never answers.
	stuckProbe := filepath.Join(t.TempDir(), "probe.sock")
	d := fakeAgentDeps(h, nil)
	dialed := make(chan struct{}, 100)
	d.OpenDB = func(context.Context, string) (DB, error) {
		dialed <- struct{}{}
		return nil, errors.New("connection refused")
	}
	stuckTerm, stuckDone := agentRunDeps(t, dir, AgentConfig{AfterHandover: AfterHandoverRetire, ProbeSocket: stuckProbe}, d)
	<-dialed
	waitProbeCode(t, stuckProbe, "/healthz", http.StatusServiceUnavailable, "waiting for OVSDB")
	waitProbeCode(t, stuckProbe, "/readyz", http.StatusServiceUnavailable, "waiting for OVSDB")
	// Announced before dialing OVSDB: the running agent is not ready while it lasts (its
	// HTTP /readyz on the shared port fails, and a SIGTERM would wait).
	waitProbeCode(t, oldProbe, "/readyz", http.StatusServiceUnavailable, "successor agent")
	waitProbeCode(t, oldProbe, "/healthz", http.StatusOK, "ok")
	if code := h.run("probe", "--socket", stuckProbe, "readyz"); code != ExitFailure || !strings.Contains(h.stdout.String(), "waiting for OVSDB") {
		t.Errorf("sclp-ovs probe readyz on a starting agent: exit %d, %q %q", code, h.stdout.String(), h.stderr.String())
	}
	stuckTerm() // the startup probe gives up: the kubelet kills the container
	select {
	case err := <-stuckDone:
		if err == nil || !strings.Contains(err.Error(), "before OVSDB answered") {
			t.Errorf("stuck successor: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the stuck successor did not stop")
	}
	if _, err := os.Stat(stuckProbe); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the stopped agent left its probe socket: %v", err)
	}
	if code := h.run("probe", "--socket", stuckProbe, "healthz"); code != ExitFailure {
		t.Errorf("sclp-ovs probe with no agent: exit %d", code)
	}
	waitProbeCode(t, oldProbe, "/readyz", http.StatusOK, "ok")

	// A successor that takes over.
	newProbe := filepath.Join(t.TempDir(), "probe.sock")
	_, newDone := agentRunDeps(t, dir, AgentConfig{AfterHandover: AfterHandoverRetire, ProbeSocket: newProbe}, fakeAgentDeps(h, nil))
	waitProbeCode(t, newProbe, "/readyz", http.StatusOK, "ok")
	st, err := fetchStatus(context.Background(), sock)
	if err != nil || st.PID != os.Getpid() {
		t.Fatalf("status socket after the takeover: %+v %v", st, err)
	}
	waitProbeCode(t, oldProbe, "/healthz", http.StatusOK, "retired")
	waitProbeCode(t, oldProbe, "/readyz", http.StatusServiceUnavailable, "retired")
	if code := h.run("probe", "--socket", oldProbe, "readyz"); code != ExitFailure {
		t.Errorf("sclp-ovs probe readyz on the retired agent: exit %d", code)
	}
	if code := h.run("probe", "--socket", oldProbe, "livez"); code != ExitUsage {
		t.Errorf("sclp-ovs probe livez: exit %d, want usage", code)
	}
	term()
	select {
	case err := <-oldDone:
		if err != nil {
			t.Errorf("retired agent: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the retired agent did not stop")
	}
	select {
	case err := <-newDone:
		t.Fatalf("the new agent stopped: %v", err)
	default:
	}
}

// TestRetiredMarkerBeforeAnswer: a retiring agent has its marker on disk when the successor
// gets the 202 to its handover, before it drains (here: closing its datapaths blocks until
// the test has looked), so a container dying in between restarts retired. A marker that
// cannot be written refuses the handover (500) and the agent carries on.
func TestRetiredMarkerBeforeAnswer(t *testing.T) {
	dir := t.TempDir()
	sock := filepath.Join(dir, "sclp-ovs-agent.sock")
	marker := filepath.Join(t.TempDir(), "retired")
	probeSock := filepath.Join(t.TempDir(), "probe.sock")
	release, closing := make(chan struct{}), make(chan struct{}, 1)
	var released bool
	defer func() {
		if !released {
			close(release)
		}
	}()
	d := fakeAgentDeps(newHarness(), func() { closing <- struct{}{}; <-release })
	_, done := agentRunDeps(t, dir, AgentConfig{AfterHandover: AfterHandoverRetire, RetiredMarker: marker, ProbeSocket: probeSock}, d)
	eventually(t, "the agent's status socket", func() bool { return agentAnswers(sock) })

	post := func() (int, string) {
		t.Helper()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/handover", strings.NewReader(`{"pid":4321}`))
		resp, err := unixClient(sock).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return resp.StatusCode, string(b)
	}
	if code, _ := post(); code != http.StatusAccepted {
		t.Fatalf("handover: %d", code)
	}
	if m, err := readRetiredMarker(marker); err != nil || m.PID != 4321 {
		t.Fatalf("marker when the successor has its answer: %+v, %v", m, err)
	}
	select {
	case <-closing:
	case <-time.After(5 * time.Second):
		t.Fatal("the agent did not start draining after the handover")
	}
	// Draining: the probes already say retired (alive, not ready).
	waitProbeCode(t, probeSock, "/healthz", http.StatusOK, "pid 4321")
	waitProbeCode(t, probeSock, "/readyz", http.StatusServiceUnavailable, "pid 4321")
	entries, _ := os.ReadDir(filepath.Dir(marker))
	if len(entries) != 1 {
		t.Errorf("marker directory holds %d entries, want the marker alone (no temporary file left)", len(entries))
	}
	close(release)
	released = true
	select {
	case err := <-done:
		t.Fatalf("the retiring agent returned: %v", err)
	case <-time.After(100 * time.Millisecond):
	}

	// The marker cannot be written: the handover is refused, the agent carries on.
	dir2 := t.TempDir()
	sock = filepath.Join(dir2, "sclp-ovs-agent.sock")
	bad := filepath.Join(t.TempDir(), "no-such-dir", "retired")
	_, done2 := agentRunDeps(t, dir2, AgentConfig{AfterHandover: AfterHandoverRetire, RetiredMarker: bad}, fakeAgentDeps(newHarness(), nil))
	eventually(t, "the second agent's status socket", func() bool { return agentAnswers(sock) })
	if code, body := post(); code != http.StatusInternalServerError || !strings.Contains(body, "retired marker") {
		t.Fatalf("handover with an unwritable marker: %d %q, want 500 naming the marker", code, body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := requestHandoverFrom(ctx, sock, HandoverRequest{PID: 9}); err == nil || !strings.Contains(err.Error(), "500") {
		t.Errorf("successor's handover request: %v, want the 500", err)
	}
	if _, err := fetchStatus(ctx, sock); err != nil {
		t.Errorf("the agent stopped answering after refusing: %v", err)
	}
	select {
	case err := <-done2:
		t.Fatalf("the agent stopped after refusing: %v", err)
	default:
	}
}

// TestProbeSocketIsItsOwn: an agent does not take over a probe socket on which another
// process answers (its probes would not be its own), replaces a dead one (the previous run
// of its container), and removes only the socket it created.
func TestProbeSocketIsItsOwn(t *testing.T) {
	path := filepath.Join(t.TempDir(), "probe.sock")
	p1, err := serveProbes(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("probe socket mode: %v %v, want 0600", fi, err)
	}
	if p2, err := serveProbes(path); err == nil || !strings.Contains(err.Error(), "another process") {
		p2.close()
		t.Fatalf("second serveProbes on a live socket: %v, want an error", err)
	}
	if code, body := probeCode(path, "/healthz"); code != http.StatusServiceUnavailable || !strings.Contains(body, "starting") {
		t.Errorf("first server after the refused second: %d %q", code, body)
	}
	// A successor in the same place after this one stopped answering (not in a pod): the
	// first one's close must leave the new socket alone.
	p1.srv.Close()
	p3, err := serveProbes(path)
	if err != nil {
		t.Fatalf("serveProbes over a dead socket: %v", err)
	}
	defer p3.close()
	p1.close()
	if code, _ := probeCode(path, "/healthz"); code != http.StatusServiceUnavailable {
		t.Errorf("the replaced server's close removed its successor's socket: %d", code)
	}
	var nilServer *probeServer
	nilServer.set(nil)
	nilServer.starting("x")
	nilServer.close()
}
