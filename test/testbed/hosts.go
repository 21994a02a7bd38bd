package testbed

import (
	"fmt"
	"net/netip"
	"strconv"
)

// DefaultUnderlay is the name of each host's underlay device.
const DefaultUnderlay = "ul0"

// HostsOptions configures NewHosts. The zero value gives 2 hosts, 10.0.0.1/24 and 10.0.0.2/24
// on "ul0", MTU 1500, real frames on the wire and GRO on.
type HostsOptions struct {
	// N is the number of hosts (default 2). 3 or more are joined through a Linux bridge in an
	// extra "switch" namespace.
	N int
	// Prefix names the host namespaces (default "h").
	Prefix string
	// Subnet is the underlay subnet; host i (from 0) gets address i+1 (default 10.0.0.0/24).
	Subnet netip.Prefix
	// MTU of the underlay (default 1500; 9000 works).
	MTU int
	// Underlay is the device name inside each host (default "ul0").
	Underlay string
	// KeepOffloads leaves TSO/GSO/UDP segmentation on, so 64 KB skbs cross the veth unsplit.
	// By default they are off on every underlay device: the wire carries real MTU-sized frames.
	KeepOffloads bool
	// TxChecksumOff also turns tx checksumming off (`ethtool -K DEV tx off`) on the underlay,
	// so the kernel finalises CHECKSUM_PARTIAL packets in software (PLATFORM.md checksum trap).
	TxChecksumOff bool
	// NoGRO leaves GRO off. By default `gro on` is set on every underlay device (veth needs it
	// for NAPI, and kernel VXLAN and UDP GRO depend on it).
	NoGRO bool
}

func (o *HostsOptions) defaults() {
	if o.N == 0 {
		o.N = 2
	}
	if o.Prefix == "" {
		o.Prefix = "h"
	}
	if !o.Subnet.IsValid() {
		o.Subnet = netip.MustParsePrefix("10.0.0.0/24")
	}
	if o.MTU == 0 {
		o.MTU = 1500
	}
	if o.Underlay == "" {
		o.Underlay = DefaultUnderlay
	}
}

// Host is a simulated hypervisor: a namespace with one underlay device and address.
type Host struct {
	*NS
	// Underlay is the underlay device name inside the namespace.
	Underlay string
	// IP is the host's underlay address; Prefix is IP with the subnet length.
	IP     netip.Addr
	Prefix netip.Prefix
	// MTU of the underlay device.
	MTU int
	// Index is the host's position (0-based) in the slice NewHosts returned.
	Index int
}

// NewHosts creates opts.N hosts on one underlay: two are joined by a veth pair, three or more
// through a bridge in a "switch" namespace. Addresses live only inside the namespaces.
func NewHosts(tb TB, opts HostsOptions) []*Host {
	tb.Helper()
	opts.defaults()
	if opts.N < 2 {
		tb.Fatalf("testbed: NewHosts needs at least 2 hosts, got %d", opts.N)
	}
	hosts := make([]*Host, opts.N)
	addr := opts.Subnet.Masked().Addr()
	for i := range hosts {
		addr = addr.Next()
		if !opts.Subnet.Contains(addr) {
			tb.Fatalf("testbed: subnet %s too small for %d hosts", opts.Subnet, opts.N)
		}
		ns := NewNS(tb, opts.Prefix+strconv.Itoa(i+1))
		hosts[i] = &Host{NS: ns, Underlay: opts.Underlay, IP: addr,
			Prefix: netip.PrefixFrom(addr, opts.Subnet.Bits()), MTU: opts.MTU, Index: i}
	}
	lo := LinkOptions{MTU: opts.MTU}
	if opts.N == 2 {
		LinkWith(tb, hosts[0].NS, opts.Underlay, hosts[1].NS, opts.Underlay, lo)
	} else {
		sw := NewNS(tb, "sw")
		sw.MustRun(tb, "ip", "link", "add", "br0", "mtu", strconv.Itoa(opts.MTU), "type", "bridge")
		sw.MustRun(tb, "ip", "link", "set", "br0", "up")
		for i, h := range hosts {
			port := fmt.Sprintf("p%d", i+1)
			LinkWith(tb, h.NS, opts.Underlay, sw, port, lo)
			// The switch forwards frames as they come: no re-merging, no re-segmenting.
			sw.Ethtool(tb, port, "gro", "off", "tso", "off", "gso", "off", "tx-udp-segmentation", "off")
			sw.MustRun(tb, "ip", "link", "set", port, "master", "br0")
		}
	}
	for _, h := range hosts {
		h.configure(tb, opts)
	}
	return hosts
}

func (h *Host) configure(tb TB, opts HostsOptions) {
	tb.Helper()
	if !opts.KeepOffloads {
		h.RealFrames(tb, h.Underlay)
	}
	if opts.TxChecksumOff {
		h.Ethtool(tb, h.Underlay, "tx", "off")
	}
	if !opts.NoGRO {
		h.Ethtool(tb, h.Underlay, "gro", "on")
	}
	h.MustRun(tb, "ip", "addr", "add", h.Prefix.String(), "dev", h.Underlay)
}
