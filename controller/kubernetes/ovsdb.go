package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"strconv"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// External-ids keys that discovery adds to the keys `sclp-ovs add-port` writes. The agent
// ignores them; `ovs-vsctl list interface` shows them.
const (
	// KeyManagedBy holds the ownership mark of discovery (ManagedBy).
	KeyManagedBy = "sclp-ovs:managed-by"
	// KeyNode holds the name of the Kubernetes node behind the peer.
	KeyNode = "sclp-ovs:k8s-node"
)

var (
	// ErrNoBridge means the configured bridge does not exist in OVSDB.
	ErrNoBridge = errors.New("no such bridge")
	// ErrNotManaged means the port towards a peer, or the port name, belongs to someone
	// else (an operator's add-port, or another tool): discovery leaves it alone.
	ErrNotManaged = errors.New("port not managed by kubernetes discovery")
)

// OVSDB is the part of the CLI's OVSDB client that OVSDBStore uses; the `sclp-ovs` DB
// (package cli) satisfies it, so discovery writes exactly the rows add-port writes.
type OVSDB interface {
	// Bridges returns every bridge with its ports (from the monitored cache).
	Bridges(ctx context.Context) ([]controller.Bridge, error)
	// AddPort creates a tunnel port with its Interface external_ids in one transaction.
	AddPort(ctx context.Context, bridge, name string, externalIDs map[string]string) error
	// DeletePort removes a port and its Interface in one transaction.
	DeletePort(ctx context.Context, bridge, name string) error
}

// OVSDBStore is the PortStore of a real host: it validates options with
// controller.ParseOptions, fills defaults with controller.Resolve and encodes them with
// PortConfig.ExternalIDs, exactly as `sclp-ovs add-port` does, and adds KeyManagedBy and
// KeyNode.
type OVSDBStore struct {
	// DB is the OVSDB connection.
	DB OVSDB
	// Router resolves local_ip, dev and the default MTU from the route to the peer.
	Router controller.Router
}

var _ PortStore = (*OVSDBStore)(nil)

// addPortArgs renders opts as add-port's key=value arguments (zero values left out).
func addPortArgs(peer netip.Addr, o PeerOptions) []string {
	args := []string{"peer=" + peer.String(), "key=" + strconv.FormatUint(uint64(o.VNI), 10)}
	if o.Local.IsValid() {
		args = append(args, "local_ip="+o.Local.String())
	}
	if o.Device != "" {
		args = append(args, "dev="+o.Device)
	}
	if o.Mode != "" {
		args = append(args, "mode="+string(o.Mode))
	}
	if o.DstPort != 0 && o.Mode != offload.ModeIP {
		args = append(args, "dst_port="+strconv.Itoa(int(o.DstPort)))
	}
	if o.MTU != 0 {
		args = append(args, "mtu="+strconv.Itoa(o.MTU))
	}
	return args
}

// externalIDs resolves opts into the external_ids of the port towards peer.
func (s *OVSDBStore) externalIDs(ctx context.Context, bridge string, peer netip.Addr, o PeerOptions) (string, map[string]string, error) {
	cfg, err := controller.ParseOptions(bridge, addPortArgs(peer, o))
	if err != nil {
		return "", nil, err
	}
	res, err := controller.Resolve(ctx, s.Router, cfg)
	if err != nil {
		return "", nil, err
	}
	ids := res.ExternalIDs()
	if o.ManagedBy != "" {
		ids[KeyManagedBy] = o.ManagedBy
	}
	if o.Node != "" {
		ids[KeyNode] = o.Node
	}
	return res.Name, ids, nil
}

// EnsurePeer implements PortStore. A port with other options is deleted and re-added (two
// transactions; the agent rebuilds its veth pair).
func (s *OVSDBStore) EnsurePeer(ctx context.Context, bridge string, peer netip.Addr, o PeerOptions) (bool, error) {
	name, ids, err := s.externalIDs(ctx, bridge, peer, o)
	if err != nil {
		return false, err
	}
	bridges, err := s.DB.Bridges(ctx)
	if err != nil {
		return false, fmt.Errorf("read OVSDB: %w", err)
	}
	br, ok := findBridge(bridges, bridge)
	if !ok {
		return false, fmt.Errorf("%w %s (create it: ovs-vsctl add-br %s -- set bridge %s datapath_type=netdev)", ErrNoBridge, bridge, bridge, bridge)
	}
	for _, p := range br.Ports {
		if !controller.Owned(p.ExternalIDs) || p.ExternalIDs[controller.KeyPeer] != peer.String() {
			continue
		}
		if p.ExternalIDs[KeyManagedBy] != o.ManagedBy {
			return false, fmt.Errorf("peer %v: port %s: %w", peer, p.Name, ErrNotManaged)
		}
		if p.Name == name && sameIDs(p.ExternalIDs, ids) {
			return false, nil
		}
		if err := s.DB.DeletePort(ctx, bridge, p.Name); err != nil {
			return false, fmt.Errorf("replace port %s: %w", p.Name, err)
		}
	}
	for _, b := range bridges {
		for _, p := range b.Ports {
			if p.Name == name && (b.Name != bridge || p.ExternalIDs[controller.KeyPeer] != peer.String()) {
				return false, fmt.Errorf("port name %s is taken on %s: %w", name, b.Name, ErrNotManaged)
			}
		}
	}
	if err := s.DB.AddPort(ctx, bridge, name, ids); err != nil {
		return false, fmt.Errorf("add port %s to %s: %w", name, bridge, err)
	}
	return true, nil
}

// sameIDs compares external_ids, ignoring the status the agent writes.
func sameIDs(have, want map[string]string) bool {
	h := maps.Clone(have)
	delete(h, controller.KeyStatus)
	return maps.Equal(h, want)
}

// DeletePeer implements PortStore. It removes only ports carrying discovery's mark.
func (s *OVSDBStore) DeletePeer(ctx context.Context, bridge string, peer netip.Addr) error {
	bridges, err := s.DB.Bridges(ctx)
	if err != nil {
		return fmt.Errorf("read OVSDB: %w", err)
	}
	br, ok := findBridge(bridges, bridge)
	if !ok {
		return nil
	}
	for _, p := range br.Ports {
		if !controller.Owned(p.ExternalIDs) || p.ExternalIDs[controller.KeyPeer] != peer.String() {
			continue
		}
		if p.ExternalIDs[KeyManagedBy] != ManagedBy {
			return fmt.Errorf("peer %v: port %s: %w", peer, p.Name, ErrNotManaged)
		}
		if err := s.DB.DeletePort(ctx, bridge, p.Name); err != nil {
			return fmt.Errorf("delete port %s: %w", p.Name, err)
		}
	}
	return nil
}

// ListPeers implements PortStore: every sclp-ovs tunnel port on bridge, decoded from its
// external_ids. A missing bridge has no peers.
func (s *OVSDBStore) ListPeers(ctx context.Context, bridge string) ([]Peer, error) {
	bridges, err := s.DB.Bridges(ctx)
	if err != nil {
		return nil, fmt.Errorf("read OVSDB: %w", err)
	}
	br, _ := findBridge(bridges, bridge)
	var out []Peer
	for _, p := range br.Ports {
		if !controller.Owned(p.ExternalIDs) {
			continue
		}
		addr, err := netip.ParseAddr(p.ExternalIDs[controller.KeyPeer])
		if err != nil {
			continue // a row edited by hand; the agent reports it
		}
		out = append(out, Peer{Addr: addr, Port: p.Name, Options: optionsOf(p.ExternalIDs)})
	}
	return out, nil
}

// optionsOf decodes the recorded options (unparsable numbers read as zero).
func optionsOf(ids map[string]string) PeerOptions {
	num := func(k string) uint64 { n, _ := strconv.ParseUint(ids[k], 10, 32); return n }
	local, _ := netip.ParseAddr(ids[controller.KeyLocalIP])
	return PeerOptions{
		VNI: uint32(num(controller.KeyVNI)), Mode: offload.Mode(ids[controller.KeyMode]),
		DstPort: uint16(num(controller.KeyDstPort)), Local: local, Device: ids[controller.KeyDev],
		MTU: int(num(controller.KeyMTU)), ManagedBy: ids[KeyManagedBy], Node: ids[KeyNode],
	}
}

func findBridge(bridges []controller.Bridge, name string) (controller.Bridge, bool) {
	for _, b := range bridges {
		if b.Name == name {
			return b, true
		}
	}
	return controller.Bridge{}, false
}
