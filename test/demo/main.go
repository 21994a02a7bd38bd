// Command demo is `make demo`: two simulated KVM hosts (network namespaces), each with its
// own Open vSwitch and sclp-ovs agent and two VMs on br-int, joined by `sclp-ovs add-port`;
// then ping, a short TCP transfer through the tunnel, and a comparison against kernel VXLAN
// and no encapsulation on the same two-host topology. Everything it creates is removed on
// exit, also on failure or Ctrl-C.
//
// Run it as root through test/demo/demo.sh (which builds bin/sclp-ovs first).
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

var (
	binary  = flag.String("bin", "bin/sclp-ovs", "the sclp-ovs binary")
	seconds = flag.Int("t", 3, "seconds of each iperf3 run")
)

func main() {
	flag.Parse()
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "demo: run as root (it creates network namespaces and Open vSwitch instances)")
		os.Exit(1)
	}
	bin, err := filepath.Abs(*binary)
	if err == nil {
		_, err = os.Stat(bin)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo: %v (run make build)\n", err)
		os.Exit(1)
	}
	r := testbed.NewRunner(func(f string, a ...any) {
		if os.Getenv("DEMO_VERBOSE") != "" {
			fmt.Printf("   (testbed) "+f+"\n", a...)
		}
	})
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		<-sig
		fmt.Println("\ninterrupted: cleaning up")
		r.Close()
		os.Exit(130)
	}()
	start := time.Now()
	err = r.Run(func() error { return run(r, bin) })
	step("cleaning up (namespaces, OVS instances, agents, bpffs)")
	r.Close()
	if err != nil {
		fmt.Fprintf(os.Stderr, "demo failed: %v\n", err)
		os.Exit(1)
	}
	fmt.Printf("\ndemo done in %v\n", time.Since(start).Round(time.Second))
}

func step(f string, a ...any) { fmt.Printf("\n==> "+f+"\n", a...) }

// host is one simulated KVM host of the demo.
type host struct {
	*testbed.Host
	ovs *testbed.OVS
	vms []*testbed.VM
}

func (h *host) sclp(bin string, args ...string) (string, error) {
	fmt.Printf("[%s]$ sclp-ovs %s\n", h.label(), strings.Join(args, " "))
	out, err := h.ovs.Command(append([]string{bin, "--db", h.ovs.DBEndpoint()}, args...)...).CombinedOutput()
	for _, l := range strings.Split(strings.TrimRight(string(out), "\n"), "\n") {
		fmt.Println("    " + l)
	}
	if err != nil {
		return string(out), fmt.Errorf("sclp-ovs %s on %s: %v", strings.Join(args, " "), h.label(), err)
	}
	return string(out), nil
}

func (h *host) label() string { return fmt.Sprintf("host%d", h.Index+1) }

func run(r *testbed.Runner, bin string) error {
	step("two simulated KVM hosts on a 1500-byte underlay (real 1500-byte frames on the wire)")
	bpffs := mountBPFFS(r)
	hs, err := sclpHosts(r, bin, bpffs, "demo", 2, true)
	if err != nil {
		return err
	}

	step("add-port on both hosts (waits until the agent reports the port ready)")
	t0 := time.Now()
	if _, err := hs[0].sclp(bin, "add-port", "br-int", "peer="+hs[1].IP.String()); err != nil {
		return err
	}
	if _, err := hs[1].sclp(bin, "add-port", "br-int", "peer="+hs[0].IP.String()); err != nil {
		return err
	}
	fmt.Printf("    both ports ready in %v\n", time.Since(t0).Round(time.Millisecond))

	step("what the operator sees")
	if _, err := hs[0].sclp(bin, "show"); err != nil {
		return err
	}
	fmt.Printf("[%s]$ ovs-vsctl show\n", hs[0].label())
	out, _ := hs[0].ovs.Vsctl("show")
	fmt.Print(indent(out))

	step("ping between VMs on different hosts, through OVS and SCLP")
	a, b := hs[0].vms[0], hs[1].vms[0]
	for i := 0; i < 10; i++ { // the first packets resolve ARP and teach the bridges
		if st, _ := a.PingWith(b.IP, testbed.PingOptions{Count: 1, Timeout: 500 * time.Millisecond}); st.Received == 1 {
			break
		}
	}
	st, err := a.PingWith(b.IP, testbed.PingOptions{Count: 5, Interval: 200 * time.Millisecond})
	fmt.Printf("    %v -> %v: %v\n", a.IP, b.IP, st)
	if err != nil {
		return err
	}

	step("TCP through the tunnel: iperf3 -t %d", *seconds)
	sclpGbps, err := iperf(r, a, b)
	if err != nil {
		return err
	}
	fmt.Printf("    %v -> %v: %.2f Gbit/s\n", a.IP, b.IP, sclpGbps)
	if _, err := hs[0].sclp(bin, "stats"); err != nil {
		return err
	}

	step("the same two-host topology with kernel VXLAN (in OVS and in a Linux bridge), no encapsulation, and mode=ip")
	vx, err := measure(r, "vxlan", buildVXLAN)
	if err != nil {
		return err
	}
	ovsvx, err := measure(r, "ovsvx", buildOVSVXLAN)
	if err != nil {
		return err
	}
	plain, err := measure(r, "plain", buildRouted)
	if err != nil {
		return err
	}
	ipGbps, err := measure(r, "sclpip", func(r *testbed.Runner, _ []*testbed.Host) ([2]*testbed.VM, error) {
		return sclpIPPair(r, bin, bpffs)
	})
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(os.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "\n    path\tGbit/s\tvs kernel VXLAN\tinner MTU\tnotes")
	fmt.Fprintf(tw, "    VXLAN over SCLP (mode=udp)\t%.2f\t%.2fx\t1438\tthrough two OVS userspace bridges\n", sclpGbps, sclpGbps/vx)
	fmt.Fprintf(tw, "    VXLAN over SCLP (mode=ip)\t%.2f\t%.2fx\t1438\tthe same, SCLP as IP protocol 234 (tc-eBPF)\n", ipGbps, ipGbps/vx)
	fmt.Fprintf(tw, "    kernel VXLAN port on OVS\t%.2f\t%.2fx\t1450\tthe same OVS userspace bridges, kernel vxlan device as the port\n", ovsvx, ovsvx/vx)
	fmt.Fprintf(tw, "    kernel VXLAN\t%.2f\t1.00x\t1450\tLinux bridge, GRO on\n", vx)
	fmt.Fprintf(tw, "    no encapsulation\t%.2f\t%.2fx\t1500\trouted over the underlay\n", plain, plain/vx)
	tw.Flush()
	fmt.Printf("    (one %d s iperf3 TCP stream each, real 1500-byte frames on the wire, this machine's %d vCPUs\n"+
		"     shared with everything else running; see docs/performance.md for medians of interleaved runs)\n", *seconds, cpus())

	step("del-port on both hosts")
	for i, h := range hs {
		if _, err := h.sclp(bin, "del-port", "br-int", "peer="+hs[1-i].IP.String()); err != nil {
			return err
		}
	}
	return nil
}

// sclpHosts builds two hosts, each with a private OVS (br-int), vms VMs and an sclp-ovs agent.
func sclpHosts(r *testbed.Runner, bin, bpffs, prefix string, vms int, verbose bool) ([]*host, error) {
	hosts := testbed.NewHosts(r, testbed.HostsOptions{N: 2, Prefix: prefix})
	var hs []*host
	for i, th := range hosts {
		h := &host{Host: th, ovs: testbed.StartOVS(r, th.NS)}
		h.ovs.AddBridge(r, "br-int")
		for j := 0; j < vms; j++ {
			addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 100, byte(10*(i+1) + j + 1)}), 24)
			vm := testbed.NewVM(r, th.NS, testbed.VMOptions{Prefix: prefix + "vm", Addr: addr, MTU: 1438})
			h.ovs.AddPort(r, "br-int", vm.HostDev)
			h.vms = append(h.vms, vm)
		}
		if verbose {
			fmt.Printf("    %s: namespace %s, underlay %s %v, OVS (netdev datapath) br-int, VMs %v %v\n",
				h.label(), h.Name, h.Underlay, h.IP, h.vms[0].IP, h.vms[1].IP)
		}
		hs = append(hs, h)
	}
	if verbose {
		step("an sclp-ovs agent on each host")
	}
	for _, h := range hs {
		log := filepath.Join(h.ovs.Dir, "sclp-ovs-agent.log")
		f, err := os.Create(log)
		if err != nil {
			return nil, err
		}
		cmd := h.ovs.Command(bin, "--db", h.ovs.DBEndpoint(), "agent", "--pin-path", filepath.Join(bpffs, h.Name))
		cmd.Stdout, cmd.Stderr = f, f
		p := testbed.StartCmd(r, cmd)
		if verbose {
			fmt.Printf("    %s: sclp-ovs agent pid %d (log %s)\n", h.label(), p.Pid(), log)
		}
	}
	return hs, waitHeartbeat(hs)
}

// sclpIPPair is the demo topology with mode=ip ports, quietly, one VM per host.
func sclpIPPair(r *testbed.Runner, bin, bpffs string) ([2]*testbed.VM, error) {
	var vms [2]*testbed.VM
	hs, err := sclpHosts(r, bin, bpffs, "dip", 1, false)
	if err != nil {
		return vms, err
	}
	for i, h := range hs {
		cmd := h.ovs.Command(bin, "--db", h.ovs.DBEndpoint(), "add-port", "br-int", "peer="+hs[1-i].IP.String(), "mode=ip", "mtu=1438")
		if out, err := cmd.CombinedOutput(); err != nil {
			return vms, fmt.Errorf("add-port mode=ip: %v: %s", err, out)
		}
		vms[i] = h.vms[0]
	}
	return vms, nil
}

func indent(s string) string {
	var b strings.Builder
	for _, l := range strings.Split(strings.TrimRight(s, "\n"), "\n") {
		b.WriteString("    " + l + "\n")
	}
	return b.String()
}

func cpus() int {
	var set unix.CPUSet
	if unix.SchedGetaffinity(0, &set) != nil {
		return 0
	}
	return set.Count()
}

// mountBPFFS mounts a bpffs in the root mount namespace for the agents' pinned state (mode=ip):
// `ip netns exec` gives each agent a private /sys.
func mountBPFFS(r *testbed.Runner) string {
	dir := r.TempDir()
	p := filepath.Join(dir, "bpf")
	if err := os.Mkdir(p, 0o700); err != nil {
		r.Fatalf("%v", err)
	}
	if err := unix.Mount("bpf", p, "bpf", 0, "mode=0700"); err != nil {
		r.Fatalf("mount bpffs: %v", err)
	}
	r.Cleanup(func() { unix.Unmount(p, unix.MNT_DETACH) })
	return p
}

func waitHeartbeat(hs []*host) error {
	deadline := time.Now().Add(15 * time.Second)
	for _, h := range hs {
		for {
			out, _ := h.ovs.Vsctl("get", "Open_vSwitch", ".", "external_ids")
			if strings.Contains(out, "sclp-ovs:agent-heartbeat") {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: the agent wrote no heartbeat (see its log in %s)", h.label(), h.ovs.Dir)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nil
}

// iperf runs an iperf3 server in b and a client in a and returns the received Gbit/s.
func iperf(r *testbed.Runner, a, b *testbed.VM) (float64, error) {
	srv := b.StartProc(r, "iperf3", "-s", "-1", "-B", b.IP.String())
	defer srv.Stop(time.Second)
	var out []byte
	var err error
	for i := 0; i < 50; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), time.Duration(*seconds+15)*time.Second)
		out, err = a.CommandContext(ctx, "iperf3", "-c", b.IP.String(), "-t", fmt.Sprint(*seconds), "-J").Output()
		cancel()
		if !strings.Contains(string(out), "Connection refused") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
		Error string `json:"error"`
	}
	if jerr := json.Unmarshal(out, &res); jerr != nil || res.Error != "" || err != nil {
		return 0, fmt.Errorf("iperf3 %v -> %v: %v %s %v", a.IP, b.IP, err, res.Error, jerr)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9, nil
}

// measure builds a fresh two-host topology with one VM per host, wired by build, and runs
// iperf3 between the VMs.
func measure(r *testbed.Runner, prefix string, build func(r *testbed.Runner, hs []*testbed.Host) ([2]*testbed.VM, error)) (float64, error) {
	var hs []*testbed.Host
	if prefix != "sclpip" {
		hs = testbed.NewHosts(r, testbed.HostsOptions{N: 2, Prefix: prefix})
	}
	vms, err := build(r, hs)
	if err != nil {
		return 0, err
	}
	for i := 0; i < 10; i++ {
		if st, _ := vms[0].PingWith(vms[1].IP, testbed.PingOptions{Count: 1, Timeout: 500 * time.Millisecond}); st.Received == 1 {
			break
		}
	}
	g, err := iperf(r, vms[0], vms[1])
	if err == nil {
		fmt.Printf("    %-6s %v -> %v: %.2f Gbit/s\n", prefix, vms[0].IP, vms[1].IP, g)
	}
	return g, err
}

// buildVXLAN: a kernel VXLAN device (VNI 42) and the VM's veth in a Linux bridge on each host.
func buildVXLAN(r *testbed.Runner, hs []*testbed.Host) ([2]*testbed.VM, error) {
	var vms [2]*testbed.VM
	for i, h := range hs {
		vm := testbed.NewVM(r, h.NS, testbed.VMOptions{Prefix: "demovx",
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 101, byte(i + 1)}), 24), MTU: 1450})
		peer := hs[1-i].IP.String()
		for _, args := range [][]string{
			{"ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", h.IP.String(), "remote", peer, "dstport", "4789", "dev", h.Underlay},
			{"ip", "link", "add", "br0", "type", "bridge"},
			{"ip", "link", "set", "vx0", "master", "br0"},
			{"ip", "link", "set", vm.HostDev, "master", "br0"},
			{"ip", "link", "set", "vx0", "up"},
			{"ip", "link", "set", "br0", "up"},
		} {
			if _, err := h.Run(args...); err != nil {
				return vms, err
			}
		}
		vms[i] = vm
	}
	return vms, nil
}

// buildOVSVXLAN: the demo's OVS topology with a kernel VXLAN device (VNI 42) as the tunnel
// port instead of sclp-ovs: same bridges, same datapath, another encapsulation.
func buildOVSVXLAN(r *testbed.Runner, hs []*testbed.Host) ([2]*testbed.VM, error) {
	var vms [2]*testbed.VM
	for i, h := range hs {
		o := testbed.StartOVS(r, h.NS)
		o.AddBridge(r, "br-int")
		vm := testbed.NewVM(r, h.NS, testbed.VMOptions{Prefix: "demoov",
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 102, byte(i + 1)}), 24), MTU: 1450})
		if _, err := h.Run("ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", h.IP.String(),
			"remote", hs[1-i].IP.String(), "dstport", "4789", "dev", h.Underlay); err != nil {
			return vms, err
		}
		if _, err := h.Run("ip", "link", "set", "vx0", "up"); err != nil {
			return vms, err
		}
		o.AddPort(r, "br-int", vm.HostDev)
		o.AddPort(r, "br-int", "vx0")
		vms[i] = vm
	}
	return vms, nil
}

// buildRouted: each VM on its own subnet behind its host, the hosts route between them.
func buildRouted(r *testbed.Runner, hs []*testbed.Host) ([2]*testbed.VM, error) {
	var vms [2]*testbed.VM
	for i, h := range hs {
		vm := testbed.NewVM(r, h.NS, testbed.VMOptions{Prefix: "demopl",
			Addr: netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, byte(110 + i), 2}), 24)})
		gw := fmt.Sprintf("192.168.%d.1", 110+i)
		other := fmt.Sprintf("192.168.%d.0/24", 110+(1-i))
		for _, c := range []struct {
			ns   *testbed.NS
			args []string
		}{
			{h.NS, []string{"ip", "addr", "add", gw + "/24", "dev", vm.HostDev}},
			{h.NS, []string{"sysctl", "-qw", "net.ipv4.ip_forward=1"}},
			{h.NS, []string{"ip", "route", "add", other, "via", hs[1-i].IP.String()}},
			{vm.NS, []string{"ip", "route", "add", "default", "via", gw}},
		} {
			if _, err := c.ns.Run(c.args...); err != nil {
				return vms, err
			}
		}
		vms[i] = vm
	}
	return vms, nil
}
