package offload

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
)

// Mode is the encapsulation a tunnel port uses on the wire.
type Mode string

const (
	// ModeUDP carries SCLP segments inside UDP datagrams, so the kernel's UDP GSO and GRO do
	// the per-segment work. It is the default because it is the faster mode here.
	ModeUDP Mode = "udp"
	// ModeIP carries SCLP as IP protocol 234, the paper's wire format.
	ModeIP Mode = "ip"
)

// Valid reports whether m names a known mode.
func (m Mode) Valid() bool { return m == ModeUDP || m == ModeIP }

// DefaultUDPPort is the UDP destination port of mode=udp when none is configured. It is
// unassigned in the IANA port registry (4793-4799 are free; 4789 is VXLAN, 4790 VXLAN-GPE,
// 4791 RoCEv2), which TestDefaultUDPPortUnassigned checks against the registry's local copy.
// An unassigned port can still be assigned later: it is configurable per port (dst_port).
const DefaultUDPPort uint16 = 4795

// ErrBadPortSpec is returned (wrapped) for a PortSpec that fails validation.
var ErrBadPortSpec = errors.New("invalid tunnel port spec")

// PortSpec is what the controller asks a datapath to run for one tunnel port.
type PortSpec struct {
	// Name is the OVS-side veth: the tunnel port that OVS (or a VM namespace) sends into.
	Name string
	// PeerName is the datapath-side end of the veth pair.
	PeerName string
	// Peer is the remote host's underlay address.
	Peer netip.Addr
	// Local is this host's underlay address.
	Local netip.Addr
	// Device is the underlay device name.
	Device string
	// VNI is the VXLAN network identifier (24 bits).
	VNI uint32
	// Mode is the encapsulation on the wire.
	Mode Mode
	// DstPort is the UDP destination port (mode=udp only).
	DstPort uint16
	// MTU is the tunnel port's MTU.
	MTU int
	// TTL and TOS of the outer IPv4 header (0 TTL means 64).
	TTL, TOS uint8
}

// Validate checks the spec and returns an error wrapping ErrBadPortSpec naming the first
// problem.
func (s PortSpec) Validate() error {
	switch {
	case s.Name == "" || len(s.Name) > 15:
		return fmt.Errorf("%w: port name %q must be 1-15 characters", ErrBadPortSpec, s.Name)
	case s.PeerName == "" || len(s.PeerName) > 15:
		return fmt.Errorf("%w: peer name %q must be 1-15 characters", ErrBadPortSpec, s.PeerName)
	case !s.Peer.Is4():
		return fmt.Errorf("%w: peer %v is not an IPv4 address", ErrBadPortSpec, s.Peer)
	case !s.Local.Is4():
		return fmt.Errorf("%w: local %v is not an IPv4 address", ErrBadPortSpec, s.Local)
	case s.VNI >= 1<<24:
		return fmt.Errorf("%w: VNI %d does not fit 24 bits", ErrBadPortSpec, s.VNI)
	case !s.Mode.Valid():
		return fmt.Errorf("%w: mode %q (want udp or ip)", ErrBadPortSpec, s.Mode)
	case s.MTU < 68 || s.MTU > 65000:
		return fmt.Errorf("%w: mtu %d outside 68-65000", ErrBadPortSpec, s.MTU)
	}
	return nil
}

// Datapath runs tunnel ports. Implementations are idempotent: ensuring a port that already
// runs with the same spec changes nothing, and removing an absent port succeeds.
type Datapath interface {
	// EnsurePort makes the datapath carry spec. The veth pair already exists.
	EnsurePort(ctx context.Context, spec PortSpec) error
	// RemovePort stops carrying the named port and releases what it held.
	RemovePort(ctx context.Context, name string) error
	// Close stops the datapath. Pinned kernel state may stay for a successor to adopt.
	Close() error
}
