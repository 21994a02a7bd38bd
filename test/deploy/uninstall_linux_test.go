package deploy

import (
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestUninstallHost gives a host what an agent leaves behind (tunnel ports added with the real
// binary and made real by the real agent: OVSDB rows, veths, owned flows; a pin directory),
// stops the agent, runs deploy/kubernetes/uninstall-host.sh and checks that every marked
// thing is gone and everything else (a VM port, a flow of someone else) is still there. It
// also checks the script refuses to run while an agent is alive.
func TestUninstallHost(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: 2, Subnet: netip.MustParsePrefix("10.92.0.0/24")})
	h := hosts[0]
	o := testbed.StartOVS(t, h.NS)
	o.AddBridge(t, "br-int")
	h.MustRun(t, "ip", "link", "add", "vm1", "type", "veth", "peer", "name", "vm1p")
	o.AddPort(t, "br-int", "vm1")
	if out, err := o.Ofctl("-O", "OpenFlow13", "add-flow", "br-int", "cookie=0x1234,priority=5,arp,actions=NORMAL"); err != nil {
		t.Fatalf("add-flow: %v\n%s", err, out)
	}
	// `ip netns exec` mounts a fresh sysfs, so the host's bpffs is not visible to commands in
	// the namespace: a plain directory with a file stands for the pin root (the script only
	// unpins by removing the tree; the kernel detaches unpinned links nobody holds).
	pins := filepath.Join(t.TempDir(), "sclp-ovs")
	if err := os.MkdirAll(filepath.Join(pins, "links"), 0o700); err != nil {
		t.Fatal(err)
	}

	bin := agentBinary(t)
	agent := testbed.StartCmd(t, o.Command(bin, "--db", o.DBEndpoint(), "agent", "--modes", "udp"))
	waitHeartbeat(t, o, agent)
	for _, peer := range []string{"10.92.0.2", "10.92.0.3"} {
		if out, err := o.Command(bin, "--db", o.DBEndpoint(), "add-port", "--timeout", "20s", "br-int", "peer="+peer).CombinedOutput(); err != nil {
			t.Fatalf("add-port %s: %v\n%s\nagent:\n%s", peer, err, out, agent.Output())
		}
	}
	if out := h.MustRun(t, "ip", "-o", "link", "show"); !strings.Contains(out, "alias sclp-ovs:port") {
		t.Fatalf("no marked veth before the uninstall:\n%s", out)
	}
	if out, _ := o.Ofctl("-O", "OpenFlow13", "dump-flows", "br-int"); !strings.Contains(out, "cookie=0x5c1b0ff1") {
		t.Fatalf("no owned flow before the uninstall:\n%s", out)
	}
	if err := os.WriteFile(filepath.Join(pins, "links", "tx_sclp0a5c0002p"), nil, 0o600); err != nil {
		t.Fatal(err)
	}

	script := filepath.Join(repoRoot(t), "deploy", "kubernetes", "uninstall-host.sh")
	run := func() (string, error) {
		cmd := o.Command("sh", script)
		cmd.Env = append(cmd.Env, "SCLP_OVS_PIN_PATH="+pins)
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(); err == nil || !strings.Contains(out, "agent is running") {
		t.Fatalf("the script ran while the agent was alive: %v\n%s", err, out)
	}
	agent.Stop(10 * time.Second)

	out, err := run()
	if err != nil {
		t.Fatalf("uninstall-host.sh: %v\n%s", err, out)
	}
	t.Logf("uninstall-host.sh:\n%s", out)
	if ports := vsctlPorts(t, o); len(ports) != 0 {
		t.Errorf("marked ports left: %v", ports)
	}
	if out := o.MustVsctl(t, "list-ports", "br-int"); strings.TrimSpace(out) != "vm1" {
		t.Errorf("ports on br-int after the uninstall: %q, want only vm1", out)
	}
	if out := h.MustRun(t, "ip", "-o", "link", "show"); strings.Contains(out, "alias sclp-ovs:") || !strings.Contains(out, "vm1") {
		t.Errorf("links after the uninstall:\n%s", out)
	}
	flows, _ := o.Ofctl("-O", "OpenFlow13", "dump-flows", "br-int")
	if strings.Contains(flows, "cookie=0x5c1b0ff1") || !strings.Contains(flows, "cookie=0x1234") {
		t.Errorf("flows after the uninstall:\n%s", flows)
	}
	if hb := o.MustVsctl(t, "get", "Open_vSwitch", ".", "external_ids"); strings.Contains(hb, "sclp-ovs:") {
		t.Errorf("Open_vSwitch external_ids after the uninstall: %s", hb)
	}
	if _, err := os.Stat(pins); !os.IsNotExist(err) {
		t.Errorf("pin directory %s still there: %v", pins, err)
	}
	if out, err := run(); err != nil || strings.Contains(out, "removed") {
		t.Errorf("second run is not a no-op: %v\n%s", err, out)
	}
}

// waitHeartbeat waits (10 s at most) for the agent's first heartbeat in OVSDB.
func waitHeartbeat(t *testing.T, o *testbed.OVS, agent *testbed.Proc) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := o.Vsctl("get", "Open_vSwitch", ".", "external_ids")
		if strings.Contains(out, "sclp-ovs:agent-heartbeat") {
			return
		}
		select {
		case <-agent.Done():
			t.Fatalf("agent exited: %v\n%s", agent.Err(), agent.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no agent heartbeat in 10 s:\n%s", agent.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}
