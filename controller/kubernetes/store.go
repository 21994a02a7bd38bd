package kubernetes

import (
	"context"
	"net/netip"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// ManagedBy is the ownership mark that discovery puts on the ports it creates. Ports with
// another mark (or none, as `sclp-ovs add-port` leaves them) are never changed or removed.
const ManagedBy = "kubernetes"

// PeerOptions are the settings of the tunnel port towards one peer, modelled on the
// key=value options of `sclp-ovs add-port`. Zero values mean "the agent's default".
type PeerOptions struct {
	// VNI is the VXLAN network identifier (add-port key=).
	VNI uint32
	// Mode is the encapsulation (add-port mode=).
	Mode offload.Mode
	// DstPort is the UDP destination port in mode=udp (add-port dst_port=); 0 is the default.
	DstPort uint16
	// Local is this host's underlay address (add-port local_ip=).
	Local netip.Addr
	// Device is the underlay device (add-port dev=); empty lets the agent pick it by route.
	Device string
	// MTU is the tunnel port MTU (add-port mtu=); 0 is underlay MTU - 54.
	MTU int
	// ManagedBy is the ownership mark; discovery always sets it to ManagedBy.
	ManagedBy string
	// Node is the name of the Kubernetes node behind the peer, for operators.
	Node string
}

// Peer is one tunnel port as a PortStore reports it.
type Peer struct {
	// Addr is the remote underlay address.
	Addr netip.Addr
	// Port is the OVS port name.
	Port string
	// Options are the port's recorded settings, ManagedBy included.
	Options PeerOptions
}

// PortStore reads and writes the tunnel ports of a bridge in OVSDB: the same model and
// functions `sclp-ovs add-port` and `del-port` use. Implementations are idempotent.
type PortStore interface {
	// EnsurePeer creates the port towards peer on bridge, or replaces it when its options
	// differ. It reports whether it changed anything; a port that is already right costs
	// no write, so discovery calls it for every peer on every pass.
	EnsurePeer(ctx context.Context, bridge string, peer netip.Addr, opts PeerOptions) (changed bool, err error)
	// DeletePeer removes the port towards peer from bridge; an absent port is no error.
	DeletePeer(ctx context.Context, bridge string, peer netip.Addr) error
	// ListPeers returns every tunnel port on bridge, whoever created it.
	ListPeers(ctx context.Context, bridge string) ([]Peer, error)
}
