//go:build linux

package observability

import (
	"context"
	"fmt"
	"math"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// buildAgent builds the sclp-ovs binary into a temporary directory.
func buildAgent(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "sclp-ovs")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/sclp-ovs/sclp-ovs/cli/sclp-ovs")
	cmd.Env = append(cmd.Environ(), "CGO_ENABLED=0")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build sclp-ovs: %v\n%s", err, out)
	}
	return bin
}

// agentSite is one host running the real agent: private OVS with br-int, one VM on br-int,
// `sclp-ovs agent --metrics-address IP:9310`.
type agentSite struct {
	host  *testbed.Host
	ovs   *testbed.OVS
	vm    *testbed.VM
	agent *testbed.Proc
	addr  string
}

// sclp runs the binary against the site's OVS and fails the test unless it exits 0.
func (s *agentSite) sclp(t *testing.T, bin string, args ...string) {
	t.Helper()
	out, err := s.ovs.Command(append([]string{bin, "--db", s.ovs.DBEndpoint()}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: sclp-ovs %s: %v\n%s\nagent log:\n%s", s.host.Name, strings.Join(args, " "), err, out, s.agent.Output())
	}
}

// TestAgentMetrics runs the real agent on two hosts (OVS, veths, flows, datapath) with
// --metrics-address on the underlay, scraped by prometheus on a third host of the underlay:
// connections, ports, traffic counters and every dashboard query; then OVSDB stops and
// /healthz, /readyz and sclp_ovs_ovsdb_connected say so. Both modes.
func TestAgentMetrics(t *testing.T) {
	testbed.RequireRoot(t)
	bin := buildAgent(t)
	// mode=ip pins its programs on a bpffs; `ip netns exec` gives each agent a private /sys,
	// so mount one in the test's mount namespace, visible to the agents.
	bpffs := filepath.Join(t.TempDir(), "bpf")
	if err := os.Mkdir(bpffs, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700"); err != nil {
		t.Fatalf("mount bpffs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bpffs, unix.MNT_DETACH) })
	for _, mode := range []offload.Mode{offload.ModeUDP, offload.ModeIP} {
		t.Run(string(mode), func(t *testing.T) { testAgentMetrics(t, bin, mode, bpffs) })
	}
}

func testAgentMetrics(t *testing.T, bin string, mode offload.Mode, bpffs string) {
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: 3})
	mon := hosts[2]
	var sites []*agentSite
	for i, h := range hosts[:2] {
		noIPv6(t, h.NS)
		s := &agentSite{host: h, ovs: testbed.StartOVS(t, h.NS), addr: h.IP.String() + ":9310"}
		s.ovs.AddBridge(t, "br-int")
		s.vm = testbed.NewVM(t, h.NS, testbed.VMOptions{HostDown: true, MTU: 1400, // below the tunnel port MTU (1438)
			Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.81.%d/24", i+1))})
		noIPv6(t, s.vm.NS)
		h.MustRun(t, "ip", "link", "set", s.vm.HostDev, "up")
		s.ovs.AddPort(t, "br-int", s.vm.HostDev)
		pins := filepath.Join(bpffs, h.Name)
		t.Cleanup(func() { os.RemoveAll(pins) }) // unpins: the programs detach
		s.agent = testbed.StartCmd(t, s.ovs.Command(bin, "--db", s.ovs.DBEndpoint(), "agent", "--modes", string(mode),
			"--pin-path", pins, "--metrics-address", s.addr))
		sites = append(sites, s)
	}
	for _, s := range sites { // add-port wants a running agent: wait for its heartbeat
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, _ := s.ovs.Vsctl("get", "Open_vSwitch", ".", "external_ids")
			if strings.Contains(out, "sclp-ovs:agent-heartbeat") {
				break
			}
			select {
			case <-s.agent.Done():
				t.Fatalf("%s: agent exited: %v\n%s", s.host.Name, s.agent.Err(), s.agent.Output())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: no agent heartbeat in 15 s:\n%s", s.host.Name, s.agent.Output())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, s := range sites {
				t.Logf("%s agent log:\n%s", s.host.Name, s.agent.Output())
			}
		}
	})
	for i, s := range sites {
		s.sclp(t, bin, "add-port", "br-int", "peer="+hosts[1-i].IP.String(), "mode="+string(mode))
	}
	var addrs []string
	var targets []Target
	for _, s := range sites {
		addrs = append(addrs, s.addr)
		targets = append(targets, Target{Addr: s.addr, Labels: map[string]string{"host": s.host.Name}})
	}
	waitHTTP(t, mon.NS, addrs, "/readyz", 200, 30*time.Second)
	waitHTTP(t, mon.NS, addrs, "/healthz", 200, 5*time.Second)
	o := &obs{t: t, hosts: addrs, agents: make([]*hostAgent, len(sites))}
	o.prom = StartPrometheus(t, mon.NS, PrometheusOptions{Dir: t.TempDir(), Targets: targets})
	t0 := o.settle()

	// The agent's view: connected, one port desired and ready, passes running.
	for i := range sites {
		for _, m := range []string{"sclp_ovs_ovsdb_connected", "sclp_ovs_openflow_connected", "sclp_ovs_ports_desired",
			"sclp_ovs_ports_ready", `sclp_ovs_source_up{source="datapath_` + string(mode) + `"}`} {
			sel := fmt.Sprintf(`instance=%q`, addrs[i])
			expr := m + "{" + sel + "}"
			if strings.Contains(m, "{") {
				expr = strings.Replace(m, "{", "{"+sel+",", 1)
			}
			between(t, fmt.Sprintf("host %d %s", i, m), o.value(expr, t0), 1, 1)
		}
	}

	// Known traffic through OVS and the tunnel.
	const n, size = 20, 1000
	frame := float64(14 + 20 + 8 + size)
	st, err := sites[0].vm.PingWith(sites[1].vm.IP, testbed.PingOptions{Count: n, Size: size, Interval: 20 * time.Millisecond})
	if err != nil || st.Received != n {
		t.Fatalf("ping through OVS and the tunnel: %v (%v)", st, err)
	}
	t1 := o.settle()
	// mode=udp counts per port (labels port and peer), mode=ip per host.
	port0 := fmt.Sprintf(`port=%q,peer=%q`, controller.DefaultName(hosts[1].IP), hosts[1].IP)
	port1 := fmt.Sprintf(`port=%q,peer=%q`, controller.DefaultName(hosts[0].IP), hosts[0].IP)
	txFrames := "sclp_ovs_tx_frames_total"
	if mode == offload.ModeIP {
		port0, port1, txFrames = "", "", "sclp_ovs_tx_messages_total"
	}
	const slack = 4
	between(t, "host 0 tx_frames", o.delta(0, txFrames, port0, t0, t1), n, n+slack)
	between(t, "host 0 tx_bytes", o.delta(0, "sclp_ovs_tx_bytes_total", port0, t0, t1), n*frame, n*frame+slack*64)
	between(t, "host 1 rx_frames", o.delta(1, "sclp_ovs_rx_frames_total", port1, t0, t1), n, n+slack)
	between(t, "host 1 rx_frame_bytes", o.delta(1, "sclp_ovs_rx_frame_bytes_total", port1, t0, t1), n*frame, n*frame+slack*64)
	between(t, "host 1 tx_frames (replies)", o.delta(1, txFrames, port1, t0, t1), n, n+slack)
	between(t, "reconcile passes on host 0 (resync every second)", o.delta(0, "sclp_ovs_reconcile_passes_total", "", t0, t1), 1, math.Inf(1))
	between(t, "timed passes on host 0", o.delta(0, "sclp_ovs_reconcile_duration_seconds_count", "", t0, t1), 1, math.Inf(1))
	between(t, "failed passes on host 0", o.delta(0, "sclp_ovs_reconcile_errors_total", "", t0, t1), 0, 0)

	tn := &tunnel{mode: mode, vms: []*testbed.VM{sites[0].vm, sites[1].vm}}
	got := tn.tcpFor(t, 3*time.Second)
	t2 := o.settle()
	between(t, "host 0 tx_bytes >= TCP payload", o.delta(0, "sclp_ovs_tx_bytes_total", port0, t1, t2), float64(got), 1.5*float64(got)+1e6)
	o.checkAgentDashboard(t2, mode)

	// OVSDB goes away: liveness and readiness fail, and the metric says so.
	sites[0].ovs.StopDB()
	waitHTTP(t, mon.NS, addrs[:1], "/healthz", 503, 15*time.Second)
	waitHTTP(t, mon.NS, addrs[:1], "/readyz", 503, 5*time.Second)
	deadline := time.Now().Add(15 * time.Second)
	for o.value(fmt.Sprintf(`sclp_ovs_ovsdb_connected{instance=%q}`, addrs[0]), time.Now()) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("sclp_ovs_ovsdb_connected still 1 in prometheus 15 s after ovsdb-server stopped")
		}
		time.Sleep(250 * time.Millisecond)
	}
	if v := o.value(fmt.Sprintf(`sclp_ovs_ovsdb_connected{instance=%q}`, addrs[1]), time.Now()); v != 1 {
		t.Errorf("host 1 (OVSDB untouched) ovsdb_connected = %v", v)
	}
}

// checkAgentDashboard evaluates every dashboard query against the real agents and requires
// finite data for each (except the panel of the other mode's metrics).
func (o *obs) checkAgentDashboard(at time.Time, mode offload.Mode) {
	t := o.t
	t.Helper()
	d, err := LoadDashboard(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range d.Queries() {
		expr := Expand(q.Expr, rateWindow, map[string]string{"instance": ".*"})
		res := o.query(expr, at)
		_, otherMode := otherModeOnly(expr, mode)
		switch {
		case len(res) == 0 && otherMode:
			t.Logf("%s/%s: no data, as expected in mode=%s", q.Panel, q.RefID, mode)
		case len(res) == 0:
			t.Errorf("%s/%s: no data for %s", q.Panel, q.RefID, expr)
		}
		for _, s := range res {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
				t.Errorf("%s/%s: %s gave %v", q.Panel, q.RefID, expr, s)
			}
		}
		switch q.Panel + "/" + q.RefID {
		case "Scrape up/A", "OVSDB connected/A", "OpenFlow connected/A", "Ports ready / desired/A", "Datapath stats readable/A":
			for _, s := range res {
				if s.Value != 1 {
					t.Errorf("%s/%s: %v, want 1 for every agent", q.Panel, q.RefID, s)
				}
			}
		}
	}
}

// waitHTTP polls path on every addr (from inside ns) until it answers code, bounded.
func waitHTTP(t *testing.T, ns *testbed.NS, addrs []string, path string, code int, timeout time.Duration) {
	t.Helper()
	for _, addr := range addrs {
		deadline := time.Now().Add(timeout)
		for {
			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			got, body, err := Get(ctx, ns, addr, path)
			cancel()
			if err == nil && got == code {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s%s: %d %q %v, want %d within %v", addr, path, got, body, err, code, timeout)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
