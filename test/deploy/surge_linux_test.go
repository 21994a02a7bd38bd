package deploy

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestSurgeUpdateCarriesTraffic plays a DaemonSet surge update of one host's agent (mode=udp)
// with the DaemonSet's own command line (--after-handover=retire, a pod-scoped
// --retired-marker and --probe-socket, metrics on the pod IP, which is the host's) and no
// kubelet: the probes are the manifest's exec probes, run per pod as the kubelet runs them
// (the real binary, the pod's own emptyDir), and the steps are the ones the DaemonSet
// controller takes. A VM pings a VM on the other host every 20 ms throughout:
//
//  0. a surge pod whose agent cannot reach OVSDB (finding 8 of the surge review): its own
//     startup and readiness probes fail ("waiting for OVSDB"), it has announced itself (the
//     shared metrics port's /readyz, where an HTTP probe of the new pod would land, is 503),
//     the old pod stays live; it is killed (the kubelet's startup probe gives up) and the
//     old pod is ready again;
//  1. the new pod's agent starts next to the old one and takes over;
//  2. the new pod's readiness probe passes once it has, while the old agent stays alive
//     (liveness passes: not restarted) and not ready (retired);
//  3. the old pod is deleted: SIGTERM, exit status 0.
//
// No ping is lost, and the port and its veth are those of before.
func TestSurgeUpdateCarriesTraffic(t *testing.T) {
	testbed.RequireRoot(t)
	hosts, _, kubeconfig := meshHosts(t, 2, netip.MustParsePrefix("10.94.0.0/24"))
	vms := make([]*testbed.VM, len(hosts))
	ovss := make([]*testbed.OVS, len(hosts))
	agents := make([]*testbed.Proc, len(hosts))
	pods := make([]meshPod, len(hosts))
	for i, h := range hosts {
		ovss[i] = testbed.StartOVS(t, h.NS)
		ovss[i].AddBridge(t, "br-int")
		vms[i] = testbed.NewVM(t, h.NS, testbed.VMOptions{Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.94.%d/24", i+1))})
		ovss[i].AddPort(t, "br-int", vms[i].HostDev)
		agents[i], pods[i] = startMeshPod(t, ovss[i], fmt.Sprintf("kvm-%d", i), h.IP, kubeconfig)
	}
	port := controller.DefaultName(hosts[1].IP)
	waitPorts(t, ovss[0], agents[0], map[string]string{port: "kvm-1"})
	waitPorts(t, ovss[1], agents[1], map[string]string{controller.DefaultName(hosts[0].IP): "kvm-0"})
	if st, err := vms[0].PingWith(vms[1].IP, testbed.PingOptions{Count: 5, Interval: 100 * time.Millisecond}); err != nil {
		if st, err = vms[0].PingWith(vms[1].IP, testbed.PingOptions{Count: 5, Interval: 100 * time.Millisecond}); err != nil {
			t.Fatalf("vm1 -> vm2 before the update: %v (%s)", err, st)
		}
	}
	h := hosts[0]
	_, c, cm, _ := agentOf(t)
	metricsAddr := h.IP.String() + ":" + cm.Data["metrics-port"]
	hc := httpIn(h.NS)
	var extra []*testbed.Proc // the surge pods' agents, for the failure messages
	logs := func() string {
		var b strings.Builder
		fmt.Fprintf(&b, "old:\n%s", agents[0].Output())
		for i, p := range extra {
			fmt.Fprintf(&b, "surge pod %d:\n%s", i, p.Output())
		}
		return b.String()
	}
	// waitExec runs the pod's probe pr until it exits want with substr in its output.
	waitExec := func(what string, pod meshPod, pr *corev1.Probe, want int, substr string, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for {
			code, out := execProbe(t, pod, pr)
			if code == want && strings.Contains(out, substr) && (cond == nil || cond()) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: probe %q never exited %d with %q (last: %d %q)\n%s", what, pr.Exec.Command, want, substr, code, out, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	oldPod := pods[0]
	waitExec("old pod ready", oldPod, c.ReadinessProbe, 0, "ok", nil)
	state := func() string {
		ifindex, err := h.Run("cat", "/sys/class/net/"+port+"/ifindex")
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimSpace(ifindex) + " " + strings.TrimSpace(ovss[0].MustVsctl(t, "get", "Interface", port, "ofport"))
	}
	before := state()

	ctx, cancel := context.WithCancel(context.Background())
	pinged := make(chan testbed.PingStats, 1)
	go func() {
		st, _ := vms[0].PingContext(ctx, vms[1].IP, testbed.PingOptions{Interval: 20 * time.Millisecond, Timeout: 2 * time.Second})
		pinged <- st
	}()
	time.Sleep(300 * time.Millisecond)

	// 0. A surge pod whose agent cannot reach OVSDB (db.sock in the right directory, where
	// the status socket is, but nothing answers on it).
	stuckDB := "--db=unix:" + filepath.Join(filepath.Dir(strings.TrimPrefix(ovss[0].DBEndpoint(), "unix:")), "stuck-db.sock")
	stuck, stuckPod := startMeshPod(t, ovss[0], "kvm-0", h.IP, kubeconfig, stuckDB)
	extra = append(extra, stuck)
	waitExec("stuck pod's startup probe", stuckPod, c.StartupProbe, 1, "waiting for OVSDB", nil)
	waitExec("stuck pod's readiness probe", stuckPod, c.ReadinessProbe, 1, "waiting for OVSDB", nil)
	// It announced itself before dialing: what an HTTP probe of the new pod on the shared
	// port would get is the old agent's 503, not a 200 that would count the stuck pod ready.
	deadline := time.Now().Add(20 * time.Second)
	for probe(t, hc, metricsAddr, "/readyz") != http.StatusServiceUnavailable {
		if time.Now().After(deadline) {
			t.Fatalf("the shared port's /readyz stayed 200 while a successor is starting\n%s", logs())
		}
		time.Sleep(100 * time.Millisecond)
	}
	waitExec("old pod live while a successor is stuck", oldPod, c.LivenessProbe, 0, "ok", nil)
	if code, out := execProbe(t, stuckPod, c.ReadinessProbe); code == 0 {
		t.Errorf("the stuck pod's readiness probe passed: %q", out)
	}
	stuck.Stop(10 * time.Second) // the startup probe gives up: the kubelet kills the container
	waitExec("old pod ready again", oldPod, c.ReadinessProbe, 0, "ok", nil)

	// 1. The surge pod.
	old := agents[0]
	newer, newPod := startMeshPod(t, ovss[0], "kvm-0", h.IP, kubeconfig)
	extra = append(extra, newer)
	// 2. Its readiness, on its own probe socket, once it carries the ports; the old pod is
	// live (the kubelet does not restart it) and not ready (retired).
	waitExec("new pod ready", newPod, c.ReadinessProbe, 0, "ok", func() bool {
		return strings.Contains(newer.Output(), "took over from the previous agent") &&
			strings.Contains(old.Output(), "leaves the metrics port to its successor")
	})
	select {
	case <-old.Done():
		t.Fatalf("the old agent exited after the handover (the kubelet would restart it): %v\n%s", old.Err(), old.Output())
	default:
	}
	if code, out := execProbe(t, oldPod, c.LivenessProbe); code != 0 || !strings.Contains(out, "retired") {
		t.Errorf("old pod's liveness probe after the handover: exit %d %q, want 0 (retired, alive)", code, out)
	}
	if code, out := execProbe(t, oldPod, c.ReadinessProbe); code != 1 || !strings.Contains(out, "retired") {
		t.Errorf("old pod's readiness probe after the handover: exit %d %q, want 1 (retired)", code, out)
	}
	// The shared metrics port passes to the new agent (its endpoint retries the bind every
	// second until the retired one has let go).
	for _, p := range []string{"/healthz", "/readyz", "/metrics"} {
		deadline := time.Now().Add(10 * time.Second)
		for code := probe(t, hc, metricsAddr, p); code != http.StatusOK; code = probe(t, hc, metricsAddr, p) {
			if time.Now().After(deadline) {
				t.Fatalf("GET %s on the shared port after the handover: %d (want the new agent's answer)\n%s", p, code, logs())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(500 * time.Millisecond) // minReadySeconds, shortened
	// 3. The DaemonSet controller deletes the old pod.
	old.Stop(10 * time.Second)
	if err := old.Err(); err != nil {
		t.Errorf("old agent after SIGTERM: %v (want exit status 0)\n%s", err, old.Output())
	}
	time.Sleep(500 * time.Millisecond)
	cancel()
	st := <-pinged
	t.Logf("vm1 -> vm2 every 20 ms across the surge update: %s", st)
	if st.Sent < 20 || st.Received != st.Sent || st.LongestLoss != 0 {
		t.Errorf("ping across the surge update: %s (want no loss)", st)
	}
	waitExec("new pod after the old one's deletion", newPod, c.ReadinessProbe, 0, "ok", nil)
	if after := state(); after != before {
		t.Errorf("port %s (ifindex ofport) %s -> %s across the update", port, before, after)
	}
	if t.Failed() {
		t.Log(logs())
	}
}
