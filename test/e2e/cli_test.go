package e2e

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestCLI checks every documented exit code against a real OVS, that a failing command leaves
// OVSDB unchanged, that add/del/list are idempotent, and that the agent makes a port real and
// removes it again.
func TestCLI(t *testing.T) {
	s := newSites(t, 2, 1)[0]
	peer := "10.0.0.2"
	before := s.ovsdbState(t)
	for _, tc := range []struct {
		name string
		args []string
		code int
		msg  string
	}{
		{"missing bridge", []string{"add-port", "br-nope", "peer=" + peer}, 1, "ovs-vsctl add-br br-nope"},
		{"bad ip", []string{"add-port", "br-int", "peer=10.0.0.300"}, 2, "not an IPv4 address"},
		{"unknown option", []string{"add-port", "br-int", "peer=" + peer, "colour=red"}, 2, "unknown option"},
		{"unknown flag", []string{"add-port", "--colour", "br-int", "peer=" + peer}, 2, "colour"},
		{"missing peer", []string{"add-port", "br-int", "key=5"}, 2, "peer"},
		{"bad mtu", []string{"add-port", "br-int", "peer=" + peer, "mtu=65001"}, 2, "68-65000"},
		{"no route", []string{"add-port", "br-int", "peer=172.31.0.1"}, 1, "local_ip="},
		{"no agent", []string{"add-port", "br-int", "peer=" + peer}, 1, "no sclp-ovs agent is running"},
		{"unknown command", []string{"add-bridge"}, 2, "unknown command"},
		{"del foreign port", []string{"del-port", "br-int", s.vms[0].HostDev}, 1, "not an sclp-ovs tunnel port"},
	} {
		out, errOut, code := s.sclp(tc.args...)
		if code != tc.code || !strings.Contains(errOut, tc.msg) {
			t.Errorf("%s: sclp-ovs %s: %s, stderr %q (stdout %q); want exit %d mentioning %q",
				tc.name, strings.Join(tc.args, " "), fmtCode(code), errOut, out, tc.code, tc.msg)
		}
		if after := s.ovsdbState(t); after != before {
			t.Fatalf("%s changed OVSDB:\nbefore:\n%s\nafter:\n%s", tc.name, before, after)
		}
	}

	// Shell completion through the real binary: commands, add-port's options, flags.
	for args, want := range map[string]string{
		"--generate-bash-completion":               "add-port",
		"add-port --generate-bash-completion":      "peer=",
		"add-port --ti --generate-bash-completion": "--timeout",
		"del-port --generate-bash-completion":      "",
	} {
		out, _, code := s.sclp(strings.Fields(args)...)
		if code != 0 || !strings.Contains(out, want) {
			t.Errorf("completion %q: exit %d, %q (want %q)", args, code, out, want)
		}
	}

	// Recording without an agent is explicit (--wait=false) and idempotent.
	for i := 0; i < 2; i++ {
		s.mustSclp(t, "add-port", "--wait=false", "br-int", "peer="+peer, "key=100")
	}
	recorded := s.ovsdbState(t)
	ids := s.ovs.MustVsctl(t, "get", "Interface", "sclp0a000002", "external_ids")
	for _, want := range []string{`"sclp-ovs:owner"=sclp-ovs`, `"sclp-ovs:peer"="10.0.0.2"`, `"sclp-ovs:key"="100"`,
		`"sclp-ovs:local_ip"="10.0.0.1"`, `"sclp-ovs:dev"=ul0`, `"sclp-ovs:mtu"="1438"`, `"sclp-ovs:mode"=udp`} {
		if !strings.Contains(ids, want) {
			t.Errorf("external_ids %s lack %s", ids, want)
		}
	}
	if p := strings.TrimSpace(s.ovs.MustVsctl(t, "get", "Port", "sclp0a000002", "protected")); p != "true" {
		t.Errorf("port not protected: %q", p)
	}
	out, errOut, code := s.sclp("add-port", "--wait=false", "br-int", "peer="+peer, "key=101")
	if code != 1 || !strings.Contains(errOut, "already has tunnel port sclp0a000002") {
		t.Errorf("duplicate peer: %s %q %q", fmtCode(code), out, errOut)
	}
	if s.ovsdbState(t) != recorded {
		t.Fatal("duplicate peer changed OVSDB")
	}
	var rows []map[string]any
	if err := json.Unmarshal([]byte(s.mustSclp(t, "list-ports", "--json", "br-int")), &rows); err != nil || len(rows) != 1 || rows[0]["peer"] != peer {
		t.Fatalf("list-ports --json: %v %v", rows, err)
	}
	for i := 0; i < 2; i++ {
		s.mustSclp(t, "del-port", "br-int", "sclp0a000002")
	}
	if s.ovsdbState(t) != before {
		t.Fatal("add + del did not restore OVSDB")
	}

	// With an agent, add-port waits until the port is real.
	s.startAgent(t)
	start := time.Now()
	s.mustSclp(t, "add-port", "br-int", "peer="+peer, "key=100")
	t.Logf("add-port --wait returned ready in %v", time.Since(start).Round(time.Millisecond))
	if !s.hasLink("sclp0a000002") || !s.hasLink("sclp0a000002p") {
		t.Fatal("veth pair missing after add-port returned")
	}
	if mtu, _ := s.Run("cat", "/sys/class/net/sclp0a000002/mtu"); strings.TrimSpace(mtu) != "1438" {
		t.Errorf("veth mtu %q, want 1438", mtu)
	}
	flows, err := s.ovs.Ofctl("dump-flows", "br-int", "cookie=0x5c1b0ff100000000/0xffffffff00000000")
	if err != nil || strings.Count(flows, "cookie=0x5c1b0ff1") != 2 {
		t.Fatalf("owned flows: %v\n%s", err, flows)
	}
	show := s.mustSclp(t, "show")
	for _, want := range []string{"agent: running", "Port sclp0a000002", "ready", "peer 10.0.0.2", "tx_frames="} {
		if !strings.Contains(show, want) {
			t.Errorf("show lacks %q:\n%s", want, show)
		}
	}
	// The agent's metrics endpoint (loopback of the host namespace).
	if code, body := s.httpGet(t, "/readyz"); code != 200 {
		t.Errorf("/readyz = %d: %s", code, body)
	}
	if _, body := s.httpGet(t, "/metrics"); !strings.Contains(body, "sclp_ovs_reconcile_passes_total") || !strings.Contains(body, `port="sclp0a000002"`) {
		t.Errorf("/metrics lacks the agent's series:\n%.2000s", body)
	}
	var stats []map[string]any
	if err := json.Unmarshal([]byte(s.mustSclp(t, "stats", "--json")), &stats); err != nil || len(stats) != 1 || stats[0]["port_counters"] == nil {
		t.Fatalf("stats --json: %v %v", stats, err)
	}
	s.mustSclp(t, "del-port", "br-int", "peer="+peer)
	waitFor(t, 10*time.Second, "the agent to remove the veth pair", func() bool { return !s.hasLink("sclp0a000002") })
	waitFor(t, 5*time.Second, "the agent to remove its flows", func() bool {
		f, err := s.ovs.Ofctl("dump-flows", "br-int", "cookie=0x5c1b0ff100000000/0xffffffff00000000")
		return err == nil && !strings.Contains(f, "cookie=0x5c1b0ff1")
	})
	s.stopAgent(t)
	if hb := s.ovs.MustVsctl(t, "get", "Open_vSwitch", ".", "external_ids"); strings.Contains(hb, "heartbeat") {
		t.Errorf("heartbeat left after SIGTERM: %s", hb)
	}
}

// TestAgentBeforeOVSDB: an agent started while ovsdb-server is down waits for it, then
// converges the ports recorded meanwhile.
func TestAgentBeforeOVSDB(t *testing.T) {
	sites := newSites(t, 2, 0)
	s := sites[0]
	s.mustSclp(t, "add-port", "--wait=false", "br-int", "peer="+sites[1].IP.String())
	s.ovs.StopDB()
	s.agent = testbed.StartCmd(t, s.ovs.Command(binary, "--db", s.ovs.DBEndpoint(), "agent", "--modes", "udp", "--pin-path", s.pinPath(t)))
	time.Sleep(time.Second)
	select {
	case <-s.agent.Done():
		t.Fatalf("agent gave up without OVSDB: %v\n%s", s.agent.Err(), s.agent.Output())
	default:
	}
	s.ovs.StartDB(t)
	waitFor(t, 15*time.Second, "the port ready after ovsdb-server came up", func() bool {
		out, _ := s.ovs.Vsctl("get", "Interface", "sclp0a000002", `external_ids:"sclp-ovs:status"`)
		return strings.Contains(out, "ready")
	})
	if !s.hasLink("sclp0a000002") {
		t.Fatal("veth missing")
	}
}
