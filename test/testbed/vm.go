package testbed

import (
	"crypto/rand"
	"net"
	"net/netip"
)

// VMOptions configures NewVM.
type VMOptions struct {
	// Prefix names the VM namespace (default "vm").
	Prefix string
	// Addr is the VM's address with its prefix length, e.g. 192.168.1.1/24. Unset: no address.
	Addr netip.Prefix
	// Dev is the device name inside the VM (default "eth0").
	Dev string
	// HostDev is the name of the host end of the veth pair (default a unique "vm" + 6 hex).
	HostDev string
	// MTU of both ends (default 1500).
	MTU int
	// MAC of the VM's device (default a random locally administered address).
	MAC net.HardwareAddr
	// HostDown leaves the host end down (by default it is up, unaddressed and unplugged, for
	// the test to hand to OVS or a datapath).
	HostDown bool
	// TxChecksumOff turns tx checksum offload off inside the VM (frames leave with a complete
	// checksum instead of CHECKSUM_PARTIAL).
	TxChecksumOff bool
}

// VM is a namespace standing for a virtual machine, attached to a host by a veth pair.
type VM struct {
	*NS
	// Dev is the VM's device; IP and Prefix its address (IP invalid if none); MAC its address.
	Dev    string
	IP     netip.Addr
	Prefix netip.Prefix
	MAC    net.HardwareAddr
	MTU    int
	// Host is the namespace holding the other end, HostDev its name.
	Host    *NS
	HostDev string
}

// NewVM creates a VM namespace attached to host through a veth pair. The host end is left
// up, unaddressed and not plugged anywhere.
func NewVM(tb TB, host *NS, opts VMOptions) *VM {
	tb.Helper()
	if opts.Prefix == "" {
		opts.Prefix = "vm"
	}
	if opts.Dev == "" {
		opts.Dev = "eth0"
	}
	if opts.HostDev == "" {
		opts.HostDev = UniqueName("vm")
	}
	if opts.MTU == 0 {
		opts.MTU = 1500
	}
	if opts.MAC == nil {
		opts.MAC = randomMAC()
	}
	ns := NewNS(tb, opts.Prefix)
	vm := &VM{NS: ns, Dev: opts.Dev, MAC: opts.MAC, MTU: opts.MTU, Host: host, HostDev: opts.HostDev}
	LinkWith(tb, host, opts.HostDev, ns, opts.Dev, LinkOptions{MTU: opts.MTU, Down: true})
	ns.MustRun(tb, "ip", "link", "set", opts.Dev, "address", opts.MAC.String())
	ns.MustRun(tb, "ip", "link", "set", opts.Dev, "up")
	if !opts.HostDown {
		host.MustRun(tb, "ip", "link", "set", opts.HostDev, "up")
	}
	if opts.TxChecksumOff {
		ns.Ethtool(tb, opts.Dev, "tx", "off")
	}
	if opts.Addr.IsValid() {
		vm.IP, vm.Prefix = opts.Addr.Addr(), opts.Addr
		ns.MustRun(tb, "ip", "addr", "add", opts.Addr.String(), "dev", opts.Dev)
	}
	return vm
}

// SetMTU changes the MTU of the VM's device.
func (v *VM) SetMTU(tb TB, mtu int) {
	tb.Helper()
	v.NS.SetMTU(tb, v.Dev, mtu)
	v.MTU = mtu
}

func randomMAC() net.HardwareAddr {
	m := make(net.HardwareAddr, 6)
	_, _ = rand.Read(m)
	m[0] = m[0]&^0x01 | 0x02 // unicast, locally administered
	return m
}
