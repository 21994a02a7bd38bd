package cli

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// Interface aliases that mark the veth pairs sclp-ovs owns.
const (
	aliasPort = "sclp-ovs:port"
	aliasPeer = "sclp-ovs:peer"
)

// netLinks implements controller.Links with rtnetlink in the calling process's namespace.
type netLinks struct{}

func (netLinks) EnsureVeth(ctx context.Context, v controller.Veth) error {
	l, err := netlink.LinkByName(v.Name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return createVeth(v)
	}
	if err != nil {
		return err
	}
	if l.Attrs().Alias != aliasPort {
		return fmt.Errorf("link %s exists and is not owned by sclp-ovs (delete it or choose another name=)", v.Name)
	}
	veth, ok := l.(*netlink.Veth)
	peer, perr := vethPeer(veth)
	if !ok || perr != nil || peer.Attrs().Name != v.PeerName {
		// Ours but broken (wrong type or peer): rebuild it.
		if err := netlink.LinkDel(l); err != nil {
			return fmt.Errorf("delete broken pair %s: %w", v.Name, err)
		}
		return createVeth(v)
	}
	for _, end := range []netlink.Link{l, peer} {
		if end.Attrs().MTU != v.MTU {
			if err := netlink.LinkSetMTU(end, v.MTU); err != nil {
				return fmt.Errorf("set %s mtu %d: %w", end.Attrs().Name, v.MTU, err)
			}
		}
		if end.Attrs().Flags&net.FlagUp == 0 {
			if err := netlink.LinkSetUp(end); err != nil {
				return fmt.Errorf("set %s up: %w", end.Attrs().Name, err)
			}
		}
	}
	return nil
}

func vethPeer(v *netlink.Veth) (netlink.Link, error) {
	if v == nil {
		return nil, errors.New("not a veth")
	}
	idx, err := netlink.VethPeerIndex(v)
	if err != nil {
		return nil, err
	}
	return netlink.LinkByIndex(idx)
}

func createVeth(v controller.Veth) error {
	// A leftover peer end of ours would block the name.
	if p, err := netlink.LinkByName(v.PeerName); err == nil {
		if p.Attrs().Alias != aliasPeer {
			return fmt.Errorf("link %s exists and is not owned by sclp-ovs (delete it or choose another name=)", v.PeerName)
		}
		if err := netlink.LinkDel(p); err != nil {
			return err
		}
	}
	la := netlink.NewLinkAttrs()
	la.Name, la.MTU = v.Name, v.MTU
	veth := &netlink.Veth{LinkAttrs: la, PeerName: v.PeerName, PeerMTU: uint32(v.MTU)}
	if err := netlink.LinkAdd(veth); err != nil {
		return fmt.Errorf("create veth %s/%s: %w", v.Name, v.PeerName, err)
	}
	for name, alias := range map[string]string{v.Name: aliasPort, v.PeerName: aliasPeer} {
		l, err := netlink.LinkByName(name)
		if err == nil {
			err = netlink.LinkSetAlias(l, alias)
		}
		if err == nil {
			err = netlink.LinkSetUp(l)
		}
		if err != nil {
			netlink.LinkDel(veth)
			return fmt.Errorf("set up %s: %w", name, err)
		}
	}
	return nil
}

func (netLinks) DeleteVeth(ctx context.Context, name string) error {
	l, err := netlink.LinkByName(name)
	if errors.As(err, new(netlink.LinkNotFoundError)) {
		return nil
	}
	if err != nil {
		return err
	}
	if l.Attrs().Alias != aliasPort {
		return fmt.Errorf("link %s is not owned by sclp-ovs", name)
	}
	return netlink.LinkDel(l)
}

func (netLinks) Owned(ctx context.Context) ([]string, error) {
	links, err := netlink.LinkList()
	if err != nil {
		return nil, err
	}
	var out []string
	for _, l := range links {
		if l.Attrs().Alias == aliasPort && l.Type() == "veth" {
			out = append(out, l.Attrs().Name)
		}
	}
	return out, nil
}

// netRouter implements controller.Router with rtnetlink.
type netRouter struct{}

func (netRouter) RouteTo(ctx context.Context, peer netip.Addr) (controller.Route, error) {
	routes, err := netlink.RouteGet(peer.AsSlice())
	if err != nil {
		return controller.Route{}, err
	}
	if len(routes) == 0 {
		return controller.Route{}, errors.New("no route")
	}
	r := routes[0]
	l, err := netlink.LinkByIndex(r.LinkIndex)
	if err != nil {
		return controller.Route{}, err
	}
	if l.Attrs().Name == "lo" {
		return controller.Route{}, fmt.Errorf("%v is a local address", peer)
	}
	rt := controller.Route{Device: l.Attrs().Name, MTU: l.Attrs().MTU}
	if r.MTU > 0 && r.MTU < rt.MTU {
		rt.MTU = r.MTU
	}
	if a, ok := netip.AddrFromSlice(r.Src); ok {
		rt.Local = a.Unmap()
	}
	return rt, nil
}

func (netRouter) DeviceMTU(ctx context.Context, dev string) (int, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return 0, fmt.Errorf("%s: %w", dev, err)
	}
	return l.Attrs().MTU, nil
}

// linkCounters returns a device's kernel counters (nil if it does not exist).
func linkCounters(name string) map[string]uint64 {
	l, err := netlink.LinkByName(name)
	if err != nil || l.Attrs().Statistics == nil {
		return nil
	}
	s := l.Attrs().Statistics
	return map[string]uint64{
		"rx_packets": s.RxPackets, "rx_bytes": s.RxBytes, "rx_dropped": s.RxDropped,
		"tx_packets": s.TxPackets, "tx_bytes": s.TxBytes, "tx_dropped": s.TxDropped,
	}
}
