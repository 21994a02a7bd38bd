package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// buildOVSTunnel runs a private Open vSwitch (userspace datapath) on each host, as OVS-DPDK
// deployments do without DPDK: br-phy holds the underlay device and the host's underlay
// address (OVS's native tunnelling routes and resolves neighbours through it), br-int holds
// the VM's port and a tunnel port of type kind toward the other host.
func buildOVSTunnel(kind string) func(testbed.TB, []*testbed.Host, []*testbed.VM) ([]int, error) {
	return func(tb testbed.TB, hosts []*testbed.Host, vms []*testbed.VM) ([]int, error) {
		ovss := make([]*testbed.OVS, len(hosts))
		for i, h := range hosts {
			// OVS 3.1 drops TSO packets entering its userspace tunnels (PLATFORM.md): the VMs
			// send finished frames (tx checksum off), so userspace TSO stays off.
			o := testbed.StartOVSWith(tb, h.NS, testbed.OVSOptions{NoUserspaceTSO: true})
			ovss[i] = o
			o.AddBridge(tb, "br-phy")
			o.AddBridge(tb, "br-int")
			o.AddPort(tb, "br-phy", h.Underlay)
			h.MustRun(tb, "ip", "addr", "flush", "dev", h.Underlay)
			h.MustRun(tb, "ip", "addr", "add", h.Prefix.String(), "dev", "br-phy")
			h.MustRun(tb, "ip", "link", "set", "br-phy", "up")
			h.MustRun(tb, "ip", "link", "set", "br-phy", "mtu", strconv.Itoa(h.MTU))
			o.AddPort(tb, "br-int", vms[i].HostDev)
			opts := []string{"options:remote_ip=" + hosts[1-i].IP.String(), "options:local_ip=" + h.IP.String(),
				"options:key=" + strconv.Itoa(benchVNI)}
			args := append([]string{"--may-exist", "add-port", "br-int", "tun0", "--", "set", "interface", "tun0",
				"type=" + kind}, opts...)
			o.MustVsctl(tb, args...)
		}
		// Seed each side's tunnel neighbour cache with the other's br-phy MAC, so the first
		// packets do not wait for OVS's own ARP.
		for i, h := range hosts {
			mac, err := deviceMAC(hosts[1-i].NS, "br-phy")
			if err != nil {
				return nil, err
			}
			if out, err := ovss[i].Appctl("ovs-vswitchd", "tnl/arp/set", "br-phy", hosts[1-i].IP.String(), mac); err != nil {
				return nil, fmt.Errorf("tnl/arp/set on %s: %w: %s", h.Name, err, out)
			}
			if out, err := ovss[i].Appctl("ovs-vswitchd", "ovs/route/add", hosts[1-i].IP.String()+"/32", "br-phy"); err != nil {
				tb.Logf("ovs/route/add on %s: %v: %s (the kernel route is used)", h.Name, err, out)
			}
		}
		var pids []int
		for _, o := range ovss {
			pids = append(pids, o.VswitchdPid())
		}
		return pids, nil
	}
}

// deviceMAC reads a device's MAC address inside a namespace.
func deviceMAC(ns *testbed.NS, dev string) (string, error) {
	out, err := ns.Run("cat", "/sys/class/net/"+dev+"/address")
	if err != nil {
		return "", err
	}
	mac := strings.TrimSpace(out)
	if _, err := net.ParseMAC(mac); err != nil {
		return "", fmt.Errorf("mac of %s in %s: %w", dev, ns.Name, err)
	}
	return mac, nil
}
