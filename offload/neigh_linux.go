package offload

import (
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// usableNeigh are the neighbour states whose MAC the kernel itself would send to.
const usableNeigh = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY |
	netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// nextHop returns the MAC address of the next hop toward peer out of dev. If the kernel has
// no usable neighbour entry it triggers resolution (one UDP datagram to the next hop's
// discard port, bound to dev) and polls until timeout.
func nextHop(dev netlink.Link, peer netip.Addr, timeout time.Duration) ([6]byte, error) {
	nh := peer
	if routes, err := netlink.RouteGet(peer.AsSlice()); err == nil && len(routes) > 0 {
		if gw, ok := netip.AddrFromSlice(routes[0].Gw); ok && routes[0].Gw != nil {
			nh = gw.Unmap()
		}
	}
	deadline := time.Now().Add(timeout)
	for probed := false; ; {
		if mac, ok := lookupNeigh(dev.Attrs().Index, nh); ok {
			return mac, nil
		}
		if time.Now().After(deadline) {
			return [6]byte{}, fmt.Errorf("next hop %v on %s: %w", nh, dev.Attrs().Name, ErrNoNeighbor)
		}
		if !probed {
			probed = true
			probeNeigh(dev.Attrs().Name, nh)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lookupNeigh(ifindex int, ip netip.Addr) ([6]byte, bool) {
	neighs, err := netlink.NeighList(ifindex, netlink.FAMILY_V4)
	if err != nil {
		return [6]byte{}, false
	}
	for _, n := range neighs {
		a, ok := netip.AddrFromSlice(n.IP)
		if ok && a.Unmap() == ip && n.State&usableNeigh != 0 && len(n.HardwareAddr) == 6 {
			return [6]byte(n.HardwareAddr), true
		}
	}
	return [6]byte{}, false
}

// probeNeigh makes the kernel resolve ip by sending it one empty UDP datagram (port 9,
// discard) out of dev.
func probeNeigh(dev string, ip netip.Addr) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	_ = unix.BindToDevice(fd, dev)
	_ = unix.Sendto(fd, nil, unix.MSG_DONTWAIT, &unix.SockaddrInet4{Port: 9, Addr: ip.As4()})
}

// hwAddr returns a device's 6-byte MAC address.
func hwAddr(l netlink.Link) [6]byte {
	var mac [6]byte
	if a := l.Attrs().HardwareAddr; len(a) == 6 {
		copy(mac[:], net.HardwareAddr(a))
	}
	return mac
}
