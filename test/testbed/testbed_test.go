package testbed

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

func nsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

func TestUniqueName(t *testing.T) {
	seen := map[string]bool{}
	for range 100 {
		n := UniqueName("averylongprefix")
		if len(n) > 15 || !strings.HasPrefix(n, "averylon-") {
			t.Fatalf("bad name %q", n)
		}
		if seen[n] {
			t.Fatalf("duplicate name %q", n)
		}
		seen[n] = true
	}
}

func TestRunnerFatalAndCleanupOrder(t *testing.T) {
	var order []int
	r := NewRunner(t.Logf)
	r.Cleanup(func() { order = append(order, 1) })
	r.Cleanup(func() { order = append(order, 2) })
	err := r.Run(func() error { r.Fatalf("boom %d", 7); return nil })
	var fe *FatalError
	if !errors.As(err, &fe) || fe.Msg != "boom 7" {
		t.Fatalf("Run returned %v, want FatalError boom 7", err)
	}
	r.Close()
	r.Close()
	if len(order) != 2 || order[0] != 2 || order[1] != 1 {
		t.Fatalf("cleanup order %v, want [2 1]", order)
	}
}

func TestNSCleanupRemovesEverything(t *testing.T) {
	RequireRoot(t)
	r := NewRunner(t.Logf)
	ns := NewNS(r, "tbclean")
	p := ns.StartProc(r, "sleep", "60")
	if !nsExists(ns.Name) {
		t.Fatalf("namespace %s missing after NewNS", ns.Name)
	}
	r.Close()
	if nsExists(ns.Name) {
		t.Fatalf("namespace %s still exists after Close", ns.Name)
	}
	select {
	case <-p.Done():
	default:
		t.Fatalf("process %d still running after Close", p.Pid())
	}
	if err := syscall.Kill(p.Pid(), 0); err == nil {
		t.Fatalf("pid %d still exists", p.Pid())
	}
}

func TestDoSwitchesNamespace(t *testing.T) {
	RequireRoot(t)
	ns := NewNS(t, "tbdo")
	a := NewNS(t, "tbdo")
	Link(t, ns, "probe0", a, "probe1")
	before, _ := os.Readlink("/proc/thread-self/ns/net")
	var inside string
	err := ns.Do(func() error {
		inside, _ = os.Readlink("/proc/thread-self/ns/net")
		_, err := net.InterfaceByName("probe0")
		return err
	})
	if err != nil {
		t.Fatalf("Do: %v", err)
	}
	if inside == before {
		t.Fatalf("Do ran in the original namespace %s", inside)
	}
	if _, err := net.InterfaceByName("probe0"); err == nil {
		t.Fatalf("probe0 visible in the test's namespace")
	}
	want := errors.New("from fn")
	if err := ns.Do(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
}

func TestTwoHostsPingRealFrames(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{TxChecksumOff: true})
	if hosts[0].IP != netip.MustParseAddr("10.0.0.1") || hosts[1].IP != netip.MustParseAddr("10.0.0.2") {
		t.Fatalf("addresses %v %v", hosts[0].IP, hosts[1].IP)
	}
	if out, err := hosts[0].Ping(hosts[1].IP, 2); err != nil {
		t.Fatalf("ping: %v\n%s", err, out)
	}
	k := hosts[0].MustRun(t, "ethtool", "-k", hosts[0].Underlay)
	for _, f := range []string{"tcp-segmentation-offload: off", "generic-segmentation-offload: off",
		"tx-udp-segmentation: off", "generic-receive-offload: on", "tx-checksumming: off"} {
		if !strings.Contains(k, f) {
			t.Errorf("underlay features lack %q:\n%s", f, k)
		}
	}
	// No route towards the test subnet in the root namespace.
	if out, _ := exec.Command("ip", "route", "get", "10.0.0.2").CombinedOutput(); strings.Contains(string(out), DefaultUnderlay) {
		t.Fatalf("root namespace routes to the test underlay: %s", out)
	}
}

func TestThreeHostsJumbo(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{N: 3, MTU: 9000})
	for _, h := range hosts[1:] {
		// 8972 + 28 = 9000: a full-size frame with DF set must cross the bridge.
		if st, err := hosts[0].PingWith(h.IP, PingOptions{Count: 2, Size: 8972, DF: true}); err != nil {
			t.Fatalf("jumbo ping to %v: %v (%v)", h.IP, err, st)
		}
	}
	if _, err := hosts[0].PingWith(hosts[1].IP, PingOptions{Count: 1, Size: 8973, DF: true}); err == nil {
		t.Fatalf("ping above the MTU with DF succeeded")
	}
}

func TestVMAttach(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{})
	vm := NewVM(t, hosts[0].NS, VMOptions{Addr: netip.MustParsePrefix("192.168.7.1/24")})
	// The host end is free for the test: address it and ping through the pair.
	hosts[0].MustRun(t, "ip", "addr", "add", "192.168.7.254/24", "dev", vm.HostDev)
	if out, err := vm.Ping(netip.MustParseAddr("192.168.7.254"), 2); err != nil {
		t.Fatalf("ping VM -> host end: %v\n%s", err, out)
	}
	got := vm.MustRun(t, "cat", "/sys/class/net/eth0/address")
	if strings.TrimSpace(got) != vm.MAC.String() {
		t.Fatalf("VM MAC %q, want %q", got, vm.MAC)
	}
}

func TestPrivateOVSBridgesTwoVMs(t *testing.T) {
	RequireRoot(t)
	host := NewNS(t, "tbovs")
	o := StartOVS(t, host)
	o.AddBridge(t, "br-int")
	vm1 := NewVM(t, host, VMOptions{Addr: netip.MustParsePrefix("192.168.9.1/24")})
	vm2 := NewVM(t, host, VMOptions{Addr: netip.MustParsePrefix("192.168.9.2/24")})
	o.AddPort(t, "br-int", vm1.HostDev)
	o.AddPort(t, "br-int", vm2.HostDev)
	if dp := o.MustVsctl(t, "get", "bridge", "br-int", "datapath_type"); strings.TrimSpace(dp) != "netdev" {
		t.Fatalf("datapath_type %q", dp)
	}
	if out, err := vm1.Ping(vm2.IP, 3); err != nil {
		t.Fatalf("ping through OVS: %v\n%s", err, out)
	}
	if _, err := o.Ofctl("dump-flows", "br-int"); err != nil {
		t.Fatalf("ofctl: %v", err)
	}
	// ovsdb-server restart keeps the database.
	oldPid := o.DBPid()
	o.RestartDB(t)
	if o.DBPid() == oldPid {
		t.Fatalf("ovsdb-server pid unchanged")
	}
	out := o.MustVsctl(t, "list-ports", "br-int")
	if !strings.Contains(out, vm1.HostDev) {
		t.Fatalf("ports after restart: %s", out)
	}
	vpid := o.VswitchdPid()
	o.Stop()
	for _, pid := range []int{oldPid, vpid} {
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("pid %d alive after Stop", pid)
		}
	}
}

func TestOVSCleanupWithRunner(t *testing.T) {
	RequireRoot(t)
	r := NewRunner(t.Logf)
	host := NewNS(r, "tbovs")
	o := StartOVS(r, host)
	dbPid, vPid := o.DBPid(), o.VswitchdPid()
	r.Close()
	deadline := time.Now().Add(2 * time.Second)
	for _, pid := range []int{dbPid, vPid} {
		for syscall.Kill(pid, 0) == nil && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		if syscall.Kill(pid, 0) == nil {
			t.Fatalf("OVS pid %d alive after Close", pid)
		}
	}
	if _, err := os.Stat(o.Dir); !os.IsNotExist(err) {
		t.Fatalf("OVS dir %s remains: %v", o.Dir, err)
	}
	if nsExists(host.Name) {
		t.Fatalf("namespace remains")
	}
}

func TestPingDetectsLossAndRunsContinuously(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{})
	st, err := hosts[0].PingWith(netip.MustParseAddr("10.0.0.99"), PingOptions{Count: 2, Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond})
	if !errors.Is(err, ErrPingLoss) || st.Received != 0 || st.LongestLoss != 2 {
		t.Fatalf("ping to nobody: %v, %v", st, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	st, err = hosts[0].PingContext(ctx, hosts[1].IP, PingOptions{Interval: 10 * time.Millisecond})
	if err != nil || st.Sent < 10 || st.Received != st.Sent {
		t.Fatalf("continuous ping: %v, %v", st, err)
	}
}

func TestCaptureAndLinkStats(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{})
	before := hosts[0].MustLinkStats(t, hosts[0].Underlay)
	if before.MTU != 1500 {
		t.Fatalf("MTU %d", before.MTU)
	}
	capture := hosts[1].StartCapture(t, hosts[1].Underlay, CaptureOptions{Filter: "icmp", Direction: "in"})
	if st, err := hosts[0].PingWith(hosts[1].IP, PingOptions{Count: 3, Interval: 50 * time.Millisecond, Size: 1000}); err != nil {
		t.Fatalf("ping: %v %v", st, err)
	}
	path := capture.Stop()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// pcap: 24-byte file header, then 16-byte record headers + frames (14+20+8+1000 bytes).
	const frame = 14 + 20 + 8 + 1000
	if want := 24 + 3*(16+frame); len(data) != want {
		t.Fatalf("pcap is %d bytes, want %d (3 echo requests); tcpdump: %s", len(data), want, capture.Output())
	}
	after := hosts[0].MustLinkStats(t, hosts[0].Underlay)
	if d := after.TxPackets - before.TxPackets; d < 3 {
		t.Fatalf("tx packets +%d, want >= 3", d)
	}
	if d := after.TxBytes - before.TxBytes; d < 3*frame {
		t.Fatalf("tx bytes +%d, want >= %d", d, 3*frame)
	}
}

// TestPingTinyPayload: echo replies shorter than an IPv4 header are counted (IPConn.ReadFrom
// hands over the ICMP message without its IPv4 header; the reader used to skip anything
// under 20 bytes and to index by an IHL read from the ICMP type byte).
func TestPingTinyPayload(t *testing.T) {
	RequireRoot(t)
	hosts := NewHosts(t, HostsOptions{})
	for _, size := range []int{1, 4, 11} {
		st, err := hosts[0].PingWith(hosts[1].IP, PingOptions{Count: 2, Size: size, Interval: 50 * time.Millisecond, Timeout: time.Second})
		if err != nil || st.Received != 2 {
			t.Fatalf("ping with %d payload bytes: %v %v", size, st, err)
		}
	}
}
