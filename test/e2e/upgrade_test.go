package e2e

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// startAgentWith starts an agent on the site with extra flags and returns it (s.agent is
// left alone). The caller waits for what it needs.
func (s *site) startAgentWith(t *testing.T, args ...string) *testbed.Proc {
	t.Helper()
	cmd := append([]string{binary, "--db", s.ovs.DBEndpoint(), "agent", "--modes", s.modes, "--pin-path", s.pinPath(t)}, args...)
	p := testbed.StartCmd(t, s.ovs.Command(cmd...))
	name := t.Name()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s agent %d (%s) %v:\n%s", s.Name, p.Pid(), name, args, p.Output())
		}
	})
	return p
}

// getAt fetches path from addr inside the site's namespace (no error: the connection or the
// request failed).
func (s *site) getAt(addr, path string) (code int, body string, err error) {
	var conn net.Conn
	if err := s.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", addr, 2*time.Second)
		return err
	}); err != nil {
		return 0, "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: agent\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), nil
}

// alive reports whether p still runs.
func alive(p *testbed.Proc) bool {
	select {
	case <-p.Done():
		return false
	default:
		return true
	}
}

// podProbe runs `sclp-ovs probe` (the DaemonSet's exec probe) on the probe socket of the
// "pod" directory pod and returns its exit code and output.
func podProbe(t *testing.T, pod, what string) (int, string) {
	t.Helper()
	out, err := exec.Command(binary, "probe", "--socket="+filepath.Join(pod, "probe.sock"), "--timeout=2s", what).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("sclp-ovs probe: %v", err)
	}
	return 0, string(out)
}

// sigterm stops p with SIGTERM and wants exit status 0 within 5 s.
func sigterm(t *testing.T, what string, p *testbed.Proc) {
	t.Helper()
	p.Stop(5 * time.Second)
	if err := p.Err(); err != nil {
		t.Errorf("%s: exit after SIGTERM: %v (want status 0)\n%s", what, err, p.Output())
	}
}

// TestSurgeUpgrade is the Kubernetes surge update of a mode=udp host (maxSurge 1,
// maxUnavailable 0: the new pod's agent starts while the old pod's runs), with real agent
// processes and no kubelet: the agents run with --after-handover=retire, a --retired-marker
// and a --probe-socket in a per-"pod" directory, as the DaemonSet starts them.
//
//  1. A successor on another metrics port takes over with no ping lost at 20 ms; the old
//     agent stays alive, /healthz 200, /readyz 503 "retired: handed over to pid N"; SIGTERM:
//     exit 0, traffic still flows, veth and OVS port untouched.
//  2. The old pod's container restarted by the kubelet (same marker) stays retired: it does
//     not take the ports back from the newer agent.
//  3. An agent killed (SIGKILL) as soon as it has answered its successor's handover, before
//     it has drained (its own probe says retired at once), and restarted: its marker was
//     written before the answer, so it stays retired and the successor keeps the ports.
//
// The DaemonSet's own case, both agents on one metrics port (the pods share the host's
// network namespace), with its exact command line, is test/deploy's
// TestSurgeUpdateCarriesTraffic.
func TestSurgeUpgrade(t *testing.T) {
	sites := newSites(t, 2, 1)
	for _, s := range sites {
		s.modes = "udp"
	}
	a, b := sites[0], sites[1]
	b.startAgent(t)
	podA, podB := t.TempDir(), t.TempDir()
	retire := func(pod, port string) []string {
		return []string{"--after-handover=retire", "--retired-marker=" + filepath.Join(pod, "retired"),
			"--probe-socket=" + filepath.Join(pod, "probe.sock"), "--metrics-address=127.0.0.1:" + port}
	}
	old := a.startAgentWith(t, retire(podA, "9310")...)
	waitFor(t, 10*time.Second, "agent A's heartbeat", func() bool {
		out, _ := a.ovs.Vsctl("get", "Open_vSwitch", ".", "external_ids")
		return strings.Contains(out, "sclp-ovs:agent-heartbeat")
	})
	a.mustSclp(t, "add-port", "br-int", "peer="+b.IP.String(), "mode=udp")
	b.mustSclp(t, "add-port", "br-int", "peer="+a.IP.String(), "mode=udp")
	reach(t, a.vms[0], b.vms[0].IP)
	mustPing(t, a.vms[0], b.vms[0].IP)
	const port = "sclp0a000002"
	hostState := func() string {
		ifindex := strings.TrimSpace(a.MustRun(t, "cat", "/sys/class/net/"+port+"/ifindex"))
		ofport := strings.TrimSpace(a.ovs.MustVsctl(t, "get", "Interface", port, "ofport"))
		return "ifindex " + ifindex + " ofport " + ofport
	}
	before := hostState()
	const interval = 20 * time.Millisecond
	noLoss := func(what string, st testbed.PingStats) {
		t.Helper()
		t.Logf("%s: %v", what, st)
		if st.Sent < 20 || st.Received != st.Sent || st.LongestLoss != 0 {
			t.Errorf("%s: %v (want no loss)", what, st)
		}
	}
	readyz := func(addr string, want int, wantBody string) func() bool {
		return func() bool {
			code, body, err := a.getAt(addr, "/readyz")
			return err == nil && code == want && strings.Contains(body, wantBody)
		}
	}

	// 1. Takeover by a successor on another metrics port; the old agent retires.
	stop := continuousPing(t, a.vms[0], b.vms[0], interval)
	time.Sleep(300 * time.Millisecond)
	succ := a.startAgentWith(t, retire(podB, "9311")...)
	reason := fmt.Sprintf("retired: handed over to pid %d", succ.Pid())
	waitFor(t, 30*time.Second, "A's /readyz to say "+reason, readyz("127.0.0.1:9310", http.StatusServiceUnavailable, reason))
	time.Sleep(700 * time.Millisecond)
	noLoss("ping across the takeover A -> B (A retires)", stop())
	time.Sleep(time.Second)
	if !alive(old) {
		t.Fatalf("the retired agent exited: %v\n%s", old.Err(), old.Output())
	}
	if code, body, err := a.getAt("127.0.0.1:9310", "/healthz"); err != nil || code != http.StatusOK {
		t.Errorf("retired agent's /healthz: %d %q %v (want 200)", code, body, err)
	}
	if code, body, _ := a.getAt("127.0.0.1:9310", "/readyz"); code != http.StatusServiceUnavailable || !strings.Contains(body, reason) {
		t.Errorf("retired agent's /readyz: %d %q (want 503 %q)", code, body, reason)
	}
	waitFor(t, 10*time.Second, "the successor's /readyz 200", readyz("127.0.0.1:9311", http.StatusOK, "ok"))
	// The pods' own exec probes: A alive and not ready (retired), B ready.
	if code, out := podProbe(t, podA, "healthz"); code != 0 || !strings.Contains(out, reason) {
		t.Errorf("A's liveness probe: exit %d %q (want 0, %s)", code, out, reason)
	}
	if code, out := podProbe(t, podA, "readyz"); code != 1 || !strings.Contains(out, reason) {
		t.Errorf("A's readiness probe: exit %d %q (want 1, %s)", code, out, reason)
	}
	if code, out := podProbe(t, podB, "readyz"); code != 0 {
		t.Errorf("B's readiness probe: exit %d %q (want 0)", code, out)
	}
	if _, err := os.Stat(filepath.Join(podA, "retired")); err != nil {
		t.Errorf("no retired marker: %v", err)
	}
	stop = continuousPing(t, a.vms[0], b.vms[0], interval)
	time.Sleep(300 * time.Millisecond)
	sigterm(t, "retired agent A", old)
	time.Sleep(700 * time.Millisecond)
	noLoss("ping across SIGTERM to the retired agent", stop())
	if after := hostState(); after != before {
		t.Errorf("host state changed: %s -> %s", before, after)
	}

	// 2. The kubelet restarts the old pod's container (same pod, same marker): it stays
	// retired and B keeps the ports.
	stop = continuousPing(t, a.vms[0], b.vms[0], interval)
	time.Sleep(300 * time.Millisecond)
	restarted := a.startAgentWith(t, retire(podA, "9310")...)
	waitFor(t, 10*time.Second, "the restarted agent to stay retired", func() bool {
		return strings.Contains(restarted.Output(), "staying retired")
	})
	time.Sleep(time.Second)
	noLoss("ping across a restart of the retired pod's container", stop())
	if !alive(succ) || !alive(restarted) {
		t.Fatalf("agents: B alive %v, restarted A alive %v", alive(succ), alive(restarted))
	}
	if strings.Contains(succ.Output(), "successor agent") {
		t.Errorf("the restarted old agent approached B:\n%s", succ.Output())
	}
	sigterm(t, "restarted retired agent", restarted)

	mustPing(t, a.vms[0], b.vms[0].IP)
	if out := a.mustSclp(t, "list-ports"); !strings.Contains(out, "ready") {
		t.Errorf("port not ready under B:\n%s", out)
	}
	if after := hostState(); after != before {
		t.Errorf("host state changed: %s -> %s", before, after)
	}

	// 3. C takes over from B, and B's container dies right after answering (before its
	// drain); the kubelet restarts it.
	podC := t.TempDir()
	third := a.startAgentWith(t, retire(podC, "9312")...)
	waitFor(t, 30*time.Second, "B's own probe to say it retired", func() bool {
		code, out := podProbe(t, podB, "readyz")
		return code == 1 && strings.Contains(out, fmt.Sprintf("handed over to pid %d", third.Pid()))
	})
	succ.Cmd.Process.Kill()
	<-succ.Done()
	if m, err := os.ReadFile(filepath.Join(podB, "retired")); err != nil || !strings.Contains(string(m), fmt.Sprintf(`"pid":%d`, third.Pid())) {
		t.Fatalf("B's marker after SIGKILL right after its answer: %q %v (want C's pid)", m, err)
	}
	restartedB := a.startAgentWith(t, retire(podB, "9311")...)
	waitFor(t, 10*time.Second, "the restarted B to stay retired", func() bool {
		return strings.Contains(restartedB.Output(), "staying retired")
	})
	waitFor(t, 10*time.Second, "C's readiness probe", func() bool { code, _ := podProbe(t, podC, "readyz"); return code == 0 })
	stop = continuousPing(t, a.vms[0], b.vms[0], interval)
	time.Sleep(time.Second)
	noLoss("ping under C with the restarted B retired", stop())
	if !alive(third) || !alive(restartedB) {
		t.Fatalf("agents: C alive %v, restarted B alive %v", alive(third), alive(restartedB))
	}
	if strings.Contains(third.Output(), "successor agent") {
		t.Errorf("the restarted B approached C:\n%s", third.Output())
	}
	if code, out := podProbe(t, podB, "healthz"); code != 0 || !strings.Contains(out, "retired") {
		t.Errorf("restarted B's liveness probe: exit %d %q (want 0, retired)", code, out)
	}
	sigterm(t, "restarted retired agent B", restartedB)
	if after := hostState(); after != before {
		t.Errorf("host state changed: %s -> %s", before, after)
	}
}
