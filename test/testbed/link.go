package testbed

import (
	"strconv"
)

// LinkOptions configures a veth pair made by LinkWith.
type LinkOptions struct {
	// MTU of both ends; 0 keeps the kernel default (1500).
	MTU int
	// Down leaves both ends administratively down.
	Down bool
}

// Link creates a veth pair with end aName in namespace a and end bName in namespace b (a and
// b may be the same namespace) and brings both ends up. The pair is created inside a, never in
// the root namespace, and disappears with the namespaces.
func Link(tb TB, a *NS, aName string, b *NS, bName string) {
	tb.Helper()
	LinkWith(tb, a, aName, b, bName, LinkOptions{})
}

// LinkWith is Link with options.
func LinkWith(tb TB, a *NS, aName string, b *NS, bName string, opts LinkOptions) {
	tb.Helper()
	args := []string{"ip", "link", "add", aName}
	var peerMTU []string
	if opts.MTU > 0 {
		m := strconv.Itoa(opts.MTU)
		args = append(args, "mtu", m)
		peerMTU = []string{"mtu", m}
	}
	args = append(args, "type", "veth", "peer", "name", bName)
	args = append(args, peerMTU...)
	if b.Name != a.Name {
		args = append(args, "netns", b.Name)
	}
	a.MustRun(tb, args...)
	if opts.Down {
		return
	}
	a.MustRun(tb, "ip", "link", "set", aName, "up")
	b.MustRun(tb, "ip", "link", "set", bName, "up")
}

// Ethtool runs `ethtool -K dev features...` in the namespace, for example
// Ethtool(tb, "ul0", "tso", "off", "gso", "off").
func (n *NS) Ethtool(tb TB, dev string, features ...string) {
	tb.Helper()
	n.MustRun(tb, append([]string{"ethtool", "-K", dev}, features...)...)
}

// RealFrames turns off TSO, GSO and UDP segmentation offload on dev, so every packet the
// namespace sends through dev is a real, MTU-sized frame on the wire (software GSO still runs
// before the device). See PLATFORM.md: `gso off` alone leaves tx-udp-segmentation on for veth.
func (n *NS) RealFrames(tb TB, dev string) {
	tb.Helper()
	n.Ethtool(tb, dev, "tso", "off", "gso", "off", "tx-udp-segmentation", "off")
}

// SetMTU sets the MTU of dev in the namespace.
func (n *NS) SetMTU(tb TB, dev string, mtu int) {
	tb.Helper()
	n.MustRun(tb, "ip", "link", "set", dev, "mtu", strconv.Itoa(mtu))
}
