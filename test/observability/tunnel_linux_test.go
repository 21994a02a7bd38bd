//go:build linux

package observability

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// tunnel is two namespace hosts joined by a real 1500-byte underlay, one VM each, and a
// mode=udp datapath per host carrying one tunnel port (sclp0 on host 0, sclp1 on host 1).
type tunnel struct {
	hosts []*testbed.Host
	vms   []*testbed.VM
	dps   []*udp.Datapath
	specs []offload.PortSpec
}

// newTunnel builds the tunnel; t.Cleanup removes everything. IPv6 is off in the VMs and
// hosts so that the only frames crossing the tunnel are the ones the test sends (and ARP).
func newTunnel(t *testing.T) *tunnel {
	t.Helper()
	tn := &tunnel{hosts: testbed.NewHosts(t, testbed.HostsOptions{})}
	for i, h := range tn.hosts {
		noIPv6(t, h.NS)
		vm := testbed.NewVM(t, h.NS, testbed.VMOptions{HostDown: true,
			Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.79.%d/24", i+1))})
		noIPv6(t, vm.NS)
		h.MustRun(t, "sysctl", "-qw", "net.ipv6.conf."+vm.HostDev+".disable_ipv6=1")
		h.MustRun(t, "ip", "link", "set", vm.HostDev, "up")
		tn.vms = append(tn.vms, vm)
	}
	for i, h := range tn.hosts {
		other := tn.hosts[1-i]
		spec := offload.PortSpec{Name: "sclp" + strconv.Itoa(i), PeerName: tn.vms[i].HostDev, Peer: other.IP,
			Local: h.IP, Device: h.Underlay, VNI: 5001, Mode: offload.ModeUDP, MTU: 1500}
		var dp *udp.Datapath
		err := h.Do(func() (err error) {
			if dp, err = udp.New(udp.Options{Workers: 2}); err != nil {
				return err
			}
			return dp.EnsurePort(context.Background(), spec)
		})
		if err != nil {
			t.Fatalf("datapath on %s: %v", h.Name, err)
		}
		t.Cleanup(func() { dp.Close() })
		tn.dps = append(tn.dps, dp)
		tn.specs = append(tn.specs, spec)
	}
	return tn
}

// noIPv6 disables IPv6 in a namespace (existing and new devices).
func noIPv6(t *testing.T, ns *testbed.NS) {
	t.Helper()
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1")
}

// hostAgent is the agent side of one host as far as metrics go: the datapath's statistics, a
// small control loop that re-ensures the tunnel port every 250 ms (as the reconciler does on
// resync) and records each pass, and the metrics server in the monitoring namespace.
type hostAgent struct {
	rec   metrics.ReconcileRecorder
	ready atomic.Bool
	addr  string
}

// startAgent starts host i's control loop and metrics endpoint on addr inside mon.
func startAgent(t *testing.T, tn *tunnel, i int, mon *testbed.NS, addr string) *hostAgent {
	t.Helper()
	a := &hostAgent{addr: addr}
	dp, spec, host := tn.dps[i], tn.specs[i], tn.hosts[i]
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(250 * time.Millisecond)
		defer tick.Stop()
		for {
			start := time.Now()
			err := host.Do(func() error { return dp.EnsurePort(ctx, spec) })
			a.rec.Observe(time.Since(start), err)
			a.ready.Store(err == nil)
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })
	peers := map[string]netip.Addr{spec.Name: spec.Peer}
	err := mon.Do(func() error { // the listening socket lives in mon's loopback
		srv, _, err := metrics.StartAgent(ctx, metrics.AgentOptions{Addr: addr, Version: "observability-test",
			Datapaths: map[offload.Mode]metrics.DatapathSource{offload.ModeUDP: metrics.UDPSource{
				Datapath: dp, Peers: func() map[string]netip.Addr { return peers }}},
			Controller: metrics.ControllerFunc(func() metrics.ControllerStats {
				st := metrics.ControllerStats{PortsDesired: 1, Reconcile: a.rec.Snapshot()}
				if a.ready.Load() {
					st.PortsReady = 1
				}
				return st // no OVSDB or OpenFlow in this test: reported as disconnected
			}),
			Live: []metrics.Check{{Name: "datapath", Fn: func(context.Context) error {
				if _, ok := dp.Stats().Ports[spec.Name]; !ok {
					return fmt.Errorf("port %s not carried", spec.Name)
				}
				return nil
			}}},
			Ready: []metrics.Check{{Name: "converged", Fn: func(context.Context) error {
				if !a.ready.Load() {
					return metrics.ErrNotConverged
				}
				return nil
			}}},
		})
		if err == nil {
			t.Cleanup(func() { srv.Close() })
		}
		return err
	})
	if err != nil {
		t.Fatalf("metrics endpoint of host %d: %v", i, err)
	}
	return a
}

// tcpFor streams data from VM 0 to VM 1 for about d and returns the bytes the receiver got.
func (tn *tunnel) tcpFor(t *testing.T, d time.Duration) int64 {
	t.Helper()
	var ln net.Listener
	if err := tn.vms[1].Do(func() (err error) {
		ln, err = net.Listen("tcp4", tn.vms[1].IP.String()+":7100")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		_ = ln.(*net.TCPListener).SetDeadline(time.Now().Add(10 * time.Second))
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(d + 10*time.Second))
		var n int64
		buf := make([]byte, 256<<10)
		for {
			m, err := c.Read(buf)
			n += int64(m)
			if err != nil {
				break
			}
		}
		got <- n
	}()
	var conn net.Conn
	if err := tn.vms[0].Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", tn.vms[1].IP.String()+":7100", 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 64<<10)
	_ = conn.SetDeadline(time.Now().Add(d + 10*time.Second))
	for end := time.Now().Add(d); time.Now().Before(end); {
		if _, err := conn.Write(buf); err != nil {
			t.Fatalf("tcp write: %v", err)
		}
	}
	conn.Close()
	select {
	case n := <-got:
		if n < 0 {
			t.Fatal("tcp receiver: accept failed")
		}
		return n
	case <-time.After(d + 15*time.Second):
		t.Fatal("tcp receiver did not finish")
	}
	return 0
}
