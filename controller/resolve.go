package controller

import (
	"context"
	"errors"
	"fmt"
	"net/netip"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// Route is what the host's routing table says about reaching a peer.
type Route struct {
	Local  netip.Addr // preferred source address
	Device string     // outgoing device
	MTU    int        // the device's MTU (or the route's, if it sets one)
}

// Router answers route queries in the host's network namespace.
type Router interface {
	// RouteTo returns the route toward peer.
	RouteTo(ctx context.Context, peer netip.Addr) (Route, error)
	// DeviceMTU returns the MTU of a device, or an error if it does not exist.
	DeviceMTU(ctx context.Context, dev string) (int, error)
}

// ErrNoRoute is wrapped when the host has no route toward a peer.
var ErrNoRoute = errors.New("no route to peer")

// Resolve fills the defaults of c: mode udp, dst_port 4795 (udp), ttl 64, local_ip and dev
// from the route toward the peer, and mtu = underlay MTU - overhead of the mode.
func Resolve(ctx context.Context, r Router, c PortConfig) (PortConfig, error) {
	if c.Name == "" {
		c.Name = DefaultName(c.Peer)
	}
	if c.Mode == "" {
		c.Mode = offload.ModeUDP
	}
	if c.Mode == offload.ModeUDP && c.DstPort == 0 {
		c.DstPort = offload.DefaultUDPPort
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	devMTU := 0
	if !c.Local.IsValid() || c.Device == "" {
		rt, err := r.RouteTo(ctx, c.Peer)
		if err != nil {
			return c, fmt.Errorf("%w %v: %v (add a route, or pass local_ip= and dev=)", ErrNoRoute, c.Peer, err)
		}
		if !c.Local.IsValid() {
			c.Local = rt.Local
		}
		if c.Device == "" {
			c.Device = rt.Device
			devMTU = rt.MTU
		}
	}
	if devMTU == 0 {
		m, err := r.DeviceMTU(ctx, c.Device)
		if err != nil {
			return c, fmt.Errorf("underlay device %s: %w (pass an existing dev=)", c.Device, err)
		}
		devMTU = m
	}
	if c.MTU == 0 {
		c.MTU = devMTU - OverheadUDP
		if c.Mode == offload.ModeIP {
			c.MTU = devMTU - OverheadIP
		}
		if c.MTU < MinMTU {
			return c, fmt.Errorf("underlay %s MTU %d leaves no room for the tunnel: pass mtu=", c.Device, devMTU)
		}
	}
	if !c.Local.IsValid() {
		return c, fmt.Errorf("no local address toward %v: pass local_ip=", c.Peer)
	}
	return c, nil
}

// PortSpec converts a resolved configuration into what the datapath runs.
func (c PortConfig) PortSpec() offload.PortSpec {
	return offload.PortSpec{
		Name: c.Name, PeerName: c.PeerName(), Peer: c.Peer, Local: c.Local, Device: c.Device,
		VNI: c.VNI, Mode: c.Mode, DstPort: c.DstPort, MTU: c.MTU, TTL: c.TTL, TOS: c.TOS,
	}
}
