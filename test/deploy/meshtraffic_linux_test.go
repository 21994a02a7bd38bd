package deploy

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestMeshCarriesTraffic: three KVM hosts, each with its own Open vSwitch, a VM on br-int and
// the real agent started with the DaemonSet's command line, all watching the same Nodes. With
// no port configured by hand, every VM reaches every other VM through the tunnels discovery
// made (a full mesh, whose split-horizon flows keep broadcasts from looping). When a host
// leaves the mesh (label removed), the others drop their ports to it and its VM becomes
// unreachable, while the two remaining hosts still talk.
func TestMeshCarriesTraffic(t *testing.T) {
	testbed.RequireRoot(t)
	// The API server lives in the first host; the others reach it over the underlay.
	hosts, client, kubeconfig := meshHosts(t, 3, netip.MustParsePrefix("10.93.0.0/24"))

	vms := make([]*testbed.VM, len(hosts))
	ovss := make([]*testbed.OVS, len(hosts))
	agents := make([]*testbed.Proc, len(hosts))
	for i, h := range hosts {
		ovss[i] = testbed.StartOVS(t, h.NS)
		ovss[i].AddBridge(t, "br-int")
		vms[i] = testbed.NewVM(t, h.NS, testbed.VMOptions{Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.93.%d/24", i+1))})
		ovss[i].AddPort(t, "br-int", vms[i].HostDev)
		agents[i] = startMeshAgent(t, ovss[i], fmt.Sprintf("kvm-%d", i), h.IP, kubeconfig)
	}
	portTo := func(h *testbed.Host) string { return controller.DefaultName(h.IP) }
	mesh := func(i int, peers ...int) map[string]string {
		want := map[string]string{}
		for _, p := range peers {
			want[portTo(hosts[p])] = fmt.Sprintf("kvm-%d", p)
		}
		return want
	}
	waitPorts(t, ovss[0], agents[0], mesh(0, 1, 2))
	waitPorts(t, ovss[1], agents[1], mesh(1, 0, 2))
	waitPorts(t, ovss[2], agents[2], mesh(2, 0, 1))

	ping := func(from, to int, wantOK bool) {
		t.Helper()
		st, err := vms[from].PingWith(vms[to].IP, testbed.PingOptions{Count: 5, Interval: 100 * time.Millisecond})
		if wantOK && err != nil {
			// The first packets may race ARP through a new tunnel: one retry.
			st, err = vms[from].PingWith(vms[to].IP, testbed.PingOptions{Count: 5, Interval: 100 * time.Millisecond})
		}
		if wantOK && err != nil {
			t.Errorf("vm%d -> vm%d: %v (%s)", from+1, to+1, err, st)
		}
		if !wantOK && st.Received != 0 {
			t.Errorf("vm%d -> vm%d: %s, want no reply (the host left the mesh)", from+1, to+1, st)
		}
	}
	ping(0, 1, true)
	ping(0, 2, true)
	ping(1, 2, true)

	// kvm-2 leaves the mesh: kvm-0 and kvm-1 remove their ports to it.
	if _, err := client.CoreV1().Nodes().Update(context.Background(), meshNode("kvm-2", hosts[2].IP, false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	waitPorts(t, ovss[0], agents[0], mesh(0, 1))
	waitPorts(t, ovss[1], agents[1], mesh(1, 0))
	ping(0, 1, true)
	ping(0, 2, false)
	for i, a := range agents {
		if t.Failed() {
			t.Logf("agent kvm-%d:\n%s", i, a.Output())
		}
	}
}
