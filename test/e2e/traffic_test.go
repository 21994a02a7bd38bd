package e2e

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// connect runs the agents and add-port on every site toward every other site (full mesh).
func connect(t *testing.T, sites []*site, opts ...string) {
	t.Helper()
	for _, s := range sites {
		s.startAgent(t)
	}
	for _, s := range sites {
		for _, o := range sites {
			if o != s {
				s.mustSclp(t, append([]string{"add-port", "br-int", "peer=" + o.IP.String()}, opts...)...)
			}
		}
	}
}

// TestTwoHosts: VMs on two hosts reach each other through OVS and an SCLP tunnel; ping and a
// TCP transfer arrive intact, in both directions, for every mode the agent runs.
func TestTwoHosts(t *testing.T) {
	for _, mode := range []string{"udp", "ip"} {
		t.Run(mode, func(t *testing.T) {
			sites := newSites(t, 2, 2)
			sites[0].modes, sites[1].modes = mode, mode
			connect(t, sites, "mode="+mode)
			a, b := sites[0], sites[1]
			for _, va := range a.vms {
				for _, vb := range b.vms {
					reach(t, va, vb.IP)
					mustPing(t, va, vb.IP)
				}
			}
			transfer(t, a.vms[0], b.vms[0], 16<<20)
			transfer(t, b.vms[1], a.vms[1], 16<<20)
			// Local traffic stays local: VMs on the same host still talk.
			mustPing(t, a.vms[0], a.vms[1].IP)
			show := a.mustSclp(t, "show")
			t.Log(show)
			want := map[string]string{"udp": "tx_segments=", "ip": "tx_prog_id="}[mode]
			if !strings.Contains(show, want) {
				t.Errorf("show lacks the datapath's %q", want)
			}
		})
	}
}

// continuousPing pings from vm to dst every interval until stop is called, which returns the
// statistics.
func continuousPing(t *testing.T, vm *testbed.VM, dst *testbed.VM, interval time.Duration) (stop func() testbed.PingStats) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan testbed.PingStats, 1)
	go func() {
		st, _ := vm.PingContext(ctx, dst.IP, testbed.PingOptions{Interval: interval, Timeout: 2 * time.Second})
		done <- st
	}()
	return func() testbed.PingStats { cancel(); return <-done }
}

// TestRestarts: continuous ping across an agent restart (a new agent takes over from the
// running one: no loss), across stop-then-start of the agent (reported), and across an
// ovs-vswitchd restart (back within 2 s, flows restored).
func TestRestarts(t *testing.T) {
	t.Run("udp", func(t *testing.T) { testRestarts(t, "udp") })
	t.Run("ip", func(t *testing.T) { testRestarts(t, "ip") })
}

func testRestarts(t *testing.T, mode string) {
	sites := newSites(t, 2, 1)
	for _, s := range sites {
		s.modes = mode
	}
	connect(t, sites, "mode="+mode)
	a, b := sites[0], sites[1]
	reach(t, a.vms[0], b.vms[0].IP)
	mustPing(t, a.vms[0], b.vms[0].IP)
	const interval = 20 * time.Millisecond

	// Agent restart by takeover, on both hosts in turn.
	for _, s := range sites {
		pid := s.agent.Pid()
		stop := continuousPing(t, a.vms[0], b.vms[0], interval)
		time.Sleep(300 * time.Millisecond)
		s.takeOver(t)
		time.Sleep(700 * time.Millisecond)
		st := stop()
		t.Logf("%s: agent %d -> %d (takeover): %v", s.Name, pid, s.agent.Pid(), st)
		// No loss in either mode. mode=ip forwards in the kernel (pinned programs, adopted in
		// place). mode=udp forwards in the agent processes: the new agent registers its port
		// before its sockets join the veth's packet fanout group and the UDP reuseport group,
		// and the retiring agent leaves the reuseport group, drains its sockets and closes its
		// fanout sockets only once they are empty (docs/udp-mode.md, "Lifetime").
		if st.Sent < 20 || st.Received != st.Sent || st.LongestLoss != 0 {
			t.Errorf("%s: ping across agent takeover: %v (want no loss)", s.Name, st)
		}
		if out := s.mustSclp(t, "list-ports"); !strings.Contains(out, "ready") {
			t.Errorf("%s: port not ready after takeover:\n%s", s.Name, out)
		}
	}

	// Stop, then start: the veths, flows and OVS ports are adopted, not recreated.
	ifindex := strings.TrimSpace(a.MustRun(t, "cat", "/sys/class/net/sclp0a000002/ifindex"))
	stop := continuousPing(t, a.vms[0], b.vms[0], interval)
	time.Sleep(300 * time.Millisecond)
	a.stopAgent(t)
	a.startAgent(t)
	waitFor(t, 10*time.Second, "the port ready again", func() bool {
		out, _, _ := a.sclp("list-ports")
		return strings.Contains(out, "ready")
	})
	time.Sleep(700 * time.Millisecond)
	st := stop()
	t.Logf("agent stop+start: %v (gap <= %v)", st, time.Duration(st.LongestLoss)*interval)
	if mode == "ip" && st.Received != st.Sent {
		t.Errorf("mode=ip: ping across agent stop+start: %v (the pinned datapath forwards without the agent: want no loss)", st)
	}
	if after := strings.TrimSpace(a.MustRun(t, "cat", "/sys/class/net/sclp0a000002/ifindex")); after != ifindex {
		t.Errorf("the new agent recreated the veth (ifindex %s -> %s) instead of adopting it", ifindex, after)
	}
	mustPing(t, a.vms[0], b.vms[0].IP)

	// ovs-vswitchd restart: OVS forgets every flow; the agent puts its own back.
	const vsInterval = 50 * time.Millisecond
	stop = continuousPing(t, a.vms[0], b.vms[0], vsInterval)
	time.Sleep(300 * time.Millisecond)
	a.ovs.RestartVswitchd(t)
	restarted := time.Now()
	waitFor(t, 10*time.Second, "owned flows back", func() bool {
		f, err := a.ovs.Ofctl("dump-flows", "br-int", "cookie=0x5c1b0ff100000000/0xffffffff00000000")
		return err == nil && strings.Count(f, "cookie=0x5c1b0ff1") == 2
	})
	t.Logf("owned flows restored %v after ovs-vswitchd came back", time.Since(restarted).Round(time.Millisecond))
	time.Sleep(time.Second)
	st = stop()
	outage := time.Duration(st.LongestLoss) * vsInterval
	t.Logf("ping across ovs-vswitchd restart: %v (outage <= %v)", st, outage)
	if outage > 2*time.Second || st.Received == 0 {
		t.Errorf("traffic not back within 2 s: %v", st)
	}
	mustPing(t, a.vms[0], b.vms[0].IP)

	// ovsdb-server restart: traffic does not care; the agent reconnects, re-monitors and
	// applies a change made after the restart.
	stop = continuousPing(t, a.vms[0], b.vms[0], vsInterval)
	a.ovs.RestartDB(t)
	a.ovs.MustVsctl(t, "set", "Interface", "sclp0a000002", `external_ids:"sclp-ovs:mtu"=1400`)
	waitFor(t, 10*time.Second, "the agent to apply an MTU change made after the restart", func() bool {
		out, _ := a.Run("cat", "/sys/class/net/sclp0a000002/mtu")
		return strings.TrimSpace(out) == "1400"
	})
	waitFor(t, 10*time.Second, "the port ready again", func() bool {
		out, _ := a.ovs.Vsctl("get", "Interface", "sclp0a000002", `external_ids:"sclp-ovs:status"`)
		return strings.Contains(out, "ready")
	})
	time.Sleep(500 * time.Millisecond)
	st = stop()
	t.Logf("ping across ovsdb-server restart and an MTU change: %v", st)
	if st.Received == 0 || time.Duration(st.LongestLoss)*vsInterval > 2*time.Second {
		t.Errorf("traffic disturbed by an ovsdb-server restart: %v", st)
	}
	mustPing(t, a.vms[0], b.vms[0].IP)
}

// TestJumboOverlay: a 9000-byte overlay MTU over the 1500-byte underlay (mtu= above the
// underlay MTU): SCLP segments the frames, IP never fragments, and TCP arrives intact.
func TestJumboOverlay(t *testing.T) {
	for _, mode := range []string{"udp", "ip"} {
		t.Run(mode, func(t *testing.T) {
			sites := newSitesMTU(t, 2, 1, 9000)
			for _, s := range sites {
				s.modes = mode
			}
			connect(t, sites, "mode="+mode, "mtu=9000")
			a, b := sites[0].vms[0], sites[1].vms[0]
			reach(t, a, b.IP)
			st, err := a.PingWith(b.IP, testbed.PingOptions{Count: 3, Size: 8972, DF: true, Interval: 100 * time.Millisecond, Timeout: 2 * time.Second})
			if err != nil {
				t.Fatalf("8972-byte DF ping through a 1500-byte underlay: %v (%v)", err, st)
			}
			transfer(t, a, b, 16<<20)
		})
	}
}

// takeOver starts a second agent while the first runs; the new one carries every port and
// then retires the old one, which must exit cleanly by itself.
func (s *site) takeOver(t *testing.T) {
	t.Helper()
	old := s.agent
	s.startAgent(t)
	select {
	case <-old.Done():
		if err := old.Err(); err != nil {
			t.Errorf("%s: old agent exit: %v\n%s", s.Name, err, old.Output())
		}
	case <-time.After(30 * time.Second):
		t.Fatalf("%s: the old agent did not hand over:\nold:\n%s\nnew:\n%s", s.Name, old.Output(), s.agent.Output())
	}
	if hb := s.ovs.MustVsctl(t, "get", "Open_vSwitch", ".", "external_ids"); !strings.Contains(hb, "heartbeat") {
		t.Errorf("%s: heartbeat missing after takeover", s.Name)
	}
}

// TestMesh: three hosts in a full mesh. Every VM reaches every other; a broadcast is
// delivered once per host and never loops (split horizon): after the traffic stops, the
// tunnel counters stay still.
func TestMesh(t *testing.T) {
	t.Run("udp", func(t *testing.T) { testMesh(t, "udp") })
	t.Run("ip", func(t *testing.T) { testMesh(t, "ip") })
}

func testMesh(t *testing.T, mode string) {
	sites := newSites(t, 3, 1)
	for _, s := range sites {
		s.modes = mode
	}
	connect(t, sites, "mode="+mode)
	for _, s := range sites {
		for _, o := range sites {
			if s != o {
				reach(t, s.vms[0], o.vms[0].IP)
				mustPing(t, s.vms[0], o.vms[0].IP)
			}
		}
	}
	// A fresh broadcast (ARP) from every VM.
	for _, s := range sites {
		s.vms[0].MustRun(t, "ip", "neigh", "flush", "all")
	}
	for _, s := range sites {
		mustPing(t, s.vms[0], sites[(s.Index+1)%3].vms[0].IP)
	}
	time.Sleep(500 * time.Millisecond)
	before := meshCounters(t, sites)
	time.Sleep(2 * time.Second)
	after := meshCounters(t, sites)
	for k, v := range after {
		if d := v - before[k]; d > 10 {
			t.Errorf("%s grew by %d packets in 2 s of silence: a forwarding loop", k, d)
		}
	}
	t.Logf("tunnel counters after the storm test: %v", after)
}

// meshCounters reads the tx packet counter of every tunnel port on every site.
func meshCounters(t *testing.T, sites []*site) map[string]uint64 {
	out := map[string]uint64{}
	for _, s := range sites {
		for _, o := range sites {
			if s == o {
				continue
			}
			port := fmt.Sprintf("sclp%02x%02x%02x%02x", o.IP.As4()[0], o.IP.As4()[1], o.IP.As4()[2], o.IP.As4()[3])
			for _, dir := range []string{"rx", "tx"} {
				v, err := s.Run("cat", "/sys/class/net/"+port+"/statistics/"+dir+"_packets")
				if err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				var n uint64
				fmt.Sscan(strings.TrimSpace(v), &n)
				out[s.Name+"/"+port+"/"+dir] = n
			}
		}
	}
	return out
}

// TestMeshTakeover: in mode=udp a host with two tunnel ports (one UDP receive group serves
// both peers) is taken over by a new agent while both peers ping its VM: nothing is lost.
// The successor registers both ports before its receive sockets take traffic (standby,
// then activate); without that, datagrams from the peer it registers second are dropped
// as from an unknown peer for as long as the ports are set up one by one.
func TestMeshTakeover(t *testing.T) {
	sites := newSites(t, 3, 1)
	for _, s := range sites {
		s.modes = "udp"
	}
	connect(t, sites, "mode=udp")
	a := sites[0]
	for _, o := range sites[1:] {
		reach(t, o.vms[0], a.vms[0].IP)
		mustPing(t, o.vms[0], a.vms[0].IP)
	}
	const interval = 20 * time.Millisecond
	for round := range 2 {
		var stops []func() testbed.PingStats
		for _, o := range sites[1:] {
			stops = append(stops, continuousPing(t, o.vms[0], a.vms[0], interval))
		}
		time.Sleep(300 * time.Millisecond)
		pid := a.agent.Pid()
		a.takeOver(t)
		time.Sleep(700 * time.Millisecond)
		stats := make([]testbed.PingStats, len(stops))
		var wg sync.WaitGroup
		for i, stop := range stops { // both at once: a stop waits for the last reply's timeout
			wg.Add(1)
			go func() { defer wg.Done(); stats[i] = stop() }()
		}
		wg.Wait()
		for i, st := range stats {
			t.Logf("round %d: %s -> %s across agent %d -> %d (takeover): %v", round, sites[i+1].Name, a.Name, pid, a.agent.Pid(), st)
			if st.Sent < 20 || st.Received != st.Sent {
				t.Errorf("round %d: %s -> %s: ping across a takeover of a two-port host: %v (want no loss)", round, sites[i+1].Name, a.Name, st)
			}
		}
	}
}
