package deploy

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestSurgeUpdateCarriesTraffic plays a DaemonSet surge update of one host's agent (mode=udp)
// with the DaemonSet's own command line (--after-handover=retire, a pod-scoped
// --retired-marker, metrics on the pod IP, which is the host's) and no kubelet: the probes
// are HTTP GETs on POD_IP:metrics-port as the kubelet sends them, and the steps are the ones
// the DaemonSet controller takes. A VM pings a VM on the other host every 20 ms throughout:
//
//  1. the new pod's agent starts next to the old one and takes over;
//  2. the probe on the shared metrics port answers /readyz 200 again (from the new agent: the
//     retired one leaves the port) while the old agent stays alive (not restarted);
//  3. the old pod is deleted: SIGTERM, exit status 0.
//
// No ping is lost, and the port and its veth are those of before.
func TestSurgeUpdateCarriesTraffic(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: 2, Subnet: netip.MustParsePrefix("10.94.0.0/24")})
	client := fake.NewClientset()
	for i, h := range hosts {
		if _, err := client.CoreV1().Nodes().Create(context.Background(), meshNode(fmt.Sprintf("kvm-%d", i), h.IP, true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	kubeconfig := startAPIServer(t, hosts[0].NS, hosts[0].IP, client).kubeconfig(t)
	vms := make([]*testbed.VM, len(hosts))
	ovss := make([]*testbed.OVS, len(hosts))
	agents := make([]*testbed.Proc, len(hosts))
	for i, h := range hosts {
		ovss[i] = testbed.StartOVS(t, h.NS)
		ovss[i].AddBridge(t, "br-int")
		vms[i] = testbed.NewVM(t, h.NS, testbed.VMOptions{Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.94.%d/24", i+1))})
		ovss[i].AddPort(t, "br-int", vms[i].HostDev)
		agents[i] = startMeshAgent(t, ovss[i], fmt.Sprintf("kvm-%d", i), h.IP, kubeconfig)
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
	_, _, cm, _ := agentOf(t)
	metricsAddr := h.IP.String() + ":" + cm.Data["metrics-port"]
	hc := httpIn(h.NS)
	waitProbe := func(what, path string, want int, cond func() bool) {
		t.Helper()
		deadline := time.Now().Add(20 * time.Second)
		for probe(t, hc, metricsAddr, path) != want || (cond != nil && !cond()) {
			if time.Now().After(deadline) {
				t.Fatalf("%s: GET %s never answered %d\nold:\n%s\nnew:\n%s", what, path, want, agents[0].Output(), func() string {
					if len(agents) > 2 {
						return agents[2].Output()
					}
					return ""
				}())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	waitProbe("old pod", "/readyz", http.StatusOK, nil)
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

	// 1. The surge pod.
	old := agents[0]
	agents = append(agents, startMeshAgent(t, ovss[0], "kvm-0", h.IP, kubeconfig))
	newer := agents[2]
	// 2. Its readiness, on the shared port, once it carries the ports.
	waitProbe("new pod", "/readyz", http.StatusOK, func() bool {
		return strings.Contains(newer.Output(), "took over from the previous agent") &&
			strings.Contains(old.Output(), "leaves the metrics port to its successor")
	})
	select {
	case <-old.Done():
		t.Fatalf("the old agent exited after the handover (the kubelet would restart it): %v\n%s", old.Err(), old.Output())
	default:
	}
	if code := probe(t, hc, metricsAddr, "/healthz"); code != http.StatusOK {
		t.Errorf("liveness on the shared port after the handover: %d", code)
	}
	if code := probe(t, hc, metricsAddr, "/metrics"); code != http.StatusOK {
		t.Errorf("scrape on the shared port after the handover: %d (want the new agent's metrics)", code)
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
	waitProbe("new pod after the old one's deletion", "/readyz", http.StatusOK, nil)
	if after := state(); after != before {
		t.Errorf("port %s (ifindex ofport) %s -> %s across the update", port, before, after)
	}
	if t.Failed() {
		t.Logf("old:\n%s\nnew:\n%s", old.Output(), newer.Output())
	}
}
