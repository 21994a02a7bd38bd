package main

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// Model is one way of carrying VM1's traffic to VM2.
type Model struct {
	// Name is the model's name in results.csv.
	Name string
	// Short prefixes its namespaces (at most 6 characters, all starting with "b").
	Short string
	// VMMTU is the MTU of both VMs' devices.
	VMMTU int
	// Note says what the model is, for the summary.
	Note string
	// build wires the model between two fresh hosts with one VM each and returns the PIDs of
	// processes it started whose CPU counts (ovs-vswitchd).
	build func(tb testbed.TB, hosts []*testbed.Host, vms []*testbed.VM) (pids []int, err error)
	// hosts configures the underlay (GRO off for the ablation).
	hosts testbed.HostsOptions
	// vm configures the VMs (checksum offload off for OVS tunnels).
	vm testbed.VMOptions
}

// fragTimeout is the VMs' IPv4 reassembly timeout (net.ipv4.ipfrag_time).
const fragTimeout = 2 * time.Second

// Inner MTUs: a full-size inner frame fits one wire frame (one SCLP segment).
const (
	wireMTU    = 1500
	vxlanMTU   = wireMTU - 50                   // IPv4 20 + UDP 8 + VXLAN 8 + Ethernet 14
	geneveMTU  = wireMTU - 50                   // no options
	greMTU     = wireMTU - 42                   // IPv4 20 + GRE with key 8 + Ethernet 14
	sclpIPMTU  = wireMTU - 20 - 12 - 8 - 14     // 1446
	sclpUDPMTU = wireMTU - 20 - 8 - 12 - 8 - 14 // 1438
	jumboMTU   = 65000                          // the jumbo overlay
	benchVNI   = 42
)

// AllModels returns every model name in the order rows are reported.
func AllModels() []string {
	var names []string
	for _, m := range models() {
		names = append(names, m.Name)
	}
	return names
}

// ModelByName returns the named model.
func ModelByName(name string) (Model, bool) {
	for _, m := range models() {
		if m.Name == name {
			return m, true
		}
	}
	return Model{}, false
}

func models() []Model {
	udpNoGRO := testbed.HostsOptions{NoGRO: true}
	ovsVM := testbed.VMOptions{TxChecksumOff: true}
	return []Model{
		{Name: "noencap", Short: "bplain", VMMTU: wireMTU, build: buildRouted,
			Note: "VMs routed by the hosts straight over the underlay (no tunnel)"},
		{Name: "vxlan", Short: "bvxlan", VMMTU: vxlanMTU, build: buildKernelVXLAN,
			Note: "kernel VXLAN device bridged with the VM, GRO on the underlay"},
		{Name: "sclp", Short: "bsclpi", VMMTU: sclpIPMTU, build: buildSCLP(offload.ModeIP, sclpIPMTU, udp.Options{}),
			Note: "VXLAN over SCLP, IP protocol 234 (mode=ip: tc-eBPF + userspace fallback)"},
		{Name: "sclp-udp", Short: "bsclpu", VMMTU: sclpUDPMTU, build: buildSCLP(offload.ModeUDP, sclpUDPMTU, udp.Options{}),
			Note: "VXLAN over SCLP in UDP (mode=udp: UDP GSO/GRO)"},
		{Name: "sclp-nomerge", Short: "bnomrg", VMMTU: sclpUDPMTU, hosts: udpNoGRO,
			build: buildSCLP(offload.ModeUDP, sclpUDPMTU, udp.Options{SkipGRO: true}),
			Note:  "mode=udp with the receive-side merge off (underlay GRO off: every segment crosses the stack alone)"},
		{Name: "sclp-jumbo", Short: "bjmbip", VMMTU: jumboMTU, build: buildSCLP(offload.ModeIP, jumboMTU, udp.Options{}),
			Note: "mode=ip with a 65000-byte inner MTU over the same 1500-byte wire"},
		{Name: "sclp-udp-jumbo", Short: "bjmbud", VMMTU: jumboMTU, build: buildSCLP(offload.ModeUDP, jumboMTU, udp.Options{}),
			Note: "mode=udp with a 65000-byte inner MTU over the same 1500-byte wire"},
		{Name: "ovs-vxlan", Short: "bovsvx", VMMTU: vxlanMTU, vm: ovsVM, build: buildOVSTunnel("vxlan"),
			Note: "Open vSwitch userspace VXLAN (netdev datapath; VM tx checksum offload off)"},
		{Name: "ovs-geneve", Short: "bovsgn", VMMTU: geneveMTU, vm: ovsVM, build: buildOVSTunnel("geneve"),
			Note: "Open vSwitch userspace Geneve (netdev datapath; VM tx checksum offload off)"},
		{Name: "ovs-gre", Short: "bovsgr", VMMTU: greMTU, vm: ovsVM, build: buildOVSTunnel("gre"),
			Note: "Open vSwitch userspace GRE (Ethernet over GRE with key; VM tx checksum offload off)"},
	}
}

// Env is a built model: the namespaces iperf3 runs in and the counters around each run.
type Env struct {
	Model    Model
	Hosts    []*testbed.Host
	VMs      []*testbed.VM
	ServerIP netip.Addr
	// Wire counts frames arriving on the receiving host's underlay; Deliver frames arriving
	// on the receiving VM's device.
	Wire, Deliver *DevCounter
	pids          []int
}

// Build creates the model's hosts, VMs and tunnel, checks VM1 reaches VM2 and starts the
// iperf3 server. Everything is registered with tb's cleanups.
func Build(tb testbed.TB, m Model) (*Env, error) {
	ho := m.hosts
	ho.Prefix = m.Short
	hosts := testbed.NewHosts(tb, ho)
	var vms []*testbed.VM
	for i, h := range hosts {
		vo := m.vm
		vo.Prefix = m.Short + "v"
		vo.MTU = m.VMMTU
		vo.Addr = netip.MustParsePrefix(fmt.Sprintf("192.168.%d.%d/24", vmSubnet(m, i), 10+i))
		vm := testbed.NewVM(tb, h.NS, vo)
		// Incomplete IP reassembly queues (an overloaded run of fragmented UDP) hold the
		// namespace's fragment memory for ipfrag_time (30 s by default), and while it is over
		// the high threshold every new fragment is dropped: the next run would measure the
		// previous one's leftovers. Two seconds, and measure waits for them to expire.
		vm.MustRun(tb, "sysctl", "-q", "-w", fmt.Sprintf("net.ipv4.ipfrag_time=%d", fragTimeout/time.Second))
		vms = append(vms, vm)
	}
	pids, err := m.build(tb, hosts, vms)
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", m.Name, err)
	}
	e := &Env{Model: m, Hosts: hosts, VMs: vms, ServerIP: vms[1].IP, pids: pids}
	if _, err := vms[0].PingWith(e.ServerIP, testbed.PingOptions{Count: 3, Interval: 100e6}); err != nil {
		// The first packets may wait for ARP or neighbour resolution: one more try.
		if st, err := vms[0].PingWith(e.ServerIP, testbed.PingOptions{Count: 3, Interval: 100e6}); err != nil {
			return nil, fmt.Errorf("build %s: VM1 cannot reach VM2: %v (%v)", m.Name, err, st)
		}
	}
	if e.Wire, err = NewDevCounter(hosts[1].Name, hosts[1].Underlay); err != nil {
		return nil, err
	}
	tb.Cleanup(e.Wire.Close)
	if e.Deliver, err = NewDevCounter(vms[1].Name, vms[1].Dev); err != nil {
		return nil, err
	}
	tb.Cleanup(e.Deliver.Close)
	return e, nil
}

// vmSubnet gives the routed model two subnets and every other model one.
func vmSubnet(m Model, i int) int {
	if m.Name == "noencap" {
		return 100 + i
	}
	return 100
}

// buildRouted makes each host a router between its VM and the underlay.
func buildRouted(tb testbed.TB, hosts []*testbed.Host, vms []*testbed.VM) ([]int, error) {
	for i, h := range hosts {
		gw := fmt.Sprintf("192.168.%d.1", 100+i)
		h.MustRun(tb, "sysctl", "-qw", "net.ipv4.ip_forward=1")
		h.MustRun(tb, "ip", "addr", "add", gw+"/24", "dev", vms[i].HostDev)
		h.MustRun(tb, "ip", "route", "add", fmt.Sprintf("192.168.%d.0/24", 100+1-i), "via", hosts[1-i].IP.String())
		vms[i].MustRun(tb, "ip", "route", "add", "default", "via", gw)
	}
	return nil, nil
}

// buildKernelVXLAN bridges each VM with a kernel VXLAN device toward the other host.
func buildKernelVXLAN(tb testbed.TB, hosts []*testbed.Host, vms []*testbed.VM) ([]int, error) {
	for i, h := range hosts {
		h.MustRun(tb, "ip", "link", "add", "vx0", "mtu", strconv.Itoa(vxlanMTU), "type", "vxlan",
			"id", strconv.Itoa(benchVNI), "local", h.IP.String(), "remote", hosts[1-i].IP.String(),
			"dstport", "4789", "dev", h.Underlay)
		h.MustRun(tb, "ip", "link", "add", "br0", "type", "bridge")
		h.MustRun(tb, "ip", "link", "set", "vx0", "master", "br0")
		h.MustRun(tb, "ip", "link", "set", vms[i].HostDev, "master", "br0")
		h.MustRun(tb, "ip", "link", "set", "vx0", "up")
		h.MustRun(tb, "ip", "link", "set", "br0", "up")
	}
	return nil, nil
}

// buildSCLP starts a datapath of the given mode on each host with the VM's host end as the
// tunnel port (no OVS, as the datapaths' own integration tests do).
func buildSCLP(mode offload.Mode, mtu int, uo udp.Options) func(testbed.TB, []*testbed.Host, []*testbed.VM) ([]int, error) {
	return func(tb testbed.TB, hosts []*testbed.Host, vms []*testbed.VM) ([]int, error) {
		for i, h := range hosts {
			spec := offload.PortSpec{Name: "sclp" + strconv.Itoa(i), PeerName: vms[i].HostDev,
				Peer: hosts[1-i].IP, Local: h.IP, Device: h.Underlay, VNI: benchVNI, Mode: mode, MTU: mtu}
			var dp offload.Datapath
			err := h.Do(func() error {
				var err error
				if dp, err = newDatapath(mode, uo, h.Name); err != nil {
					return err
				}
				return dp.EnsurePort(context.Background(), spec)
			})
			if dp != nil {
				tb.Cleanup(func() { dp.Close() })
			}
			if err != nil {
				return nil, fmt.Errorf("start mode=%s datapath on %s: %w", mode, h.Name, err)
			}
		}
		return nil, nil
	}
}

// errNotAvailable marks a model whose datapath this tree does not provide yet.
var errNotAvailable = errors.New("datapath not available")

// newDatapath creates a datapath of the given mode in the calling thread's namespace
// (nsName).
func newDatapath(mode offload.Mode, uo udp.Options, nsName string) (offload.Datapath, error) {
	switch mode {
	case offload.ModeUDP:
		return udp.New(uo)
	case offload.ModeIP:
		return newIPDatapath(nsName)
	}
	return nil, fmt.Errorf("mode %q: %w", mode, errNotAvailable)
}
