package controller

import (
	"context"
)

// Bridge is one OVS bridge and its ports as the agent sees them.
type Bridge struct {
	Name  string
	Ports []BridgePort
}

// BridgePort is one port of a bridge, described by its (first) Interface.
type BridgePort struct {
	// Name is the Port name, which for a tunnel port is also the Interface and veth name.
	Name string
	// OFPort is the OpenFlow port number OVS assigned to the interface: 0 when not yet
	// assigned, -1 when OVS could not open the device.
	OFPort int
	// ExternalIDs are the Interface's external_ids.
	ExternalIDs map[string]string
	// Protected is Port.protected: OVS's NORMAL action never forwards between two
	// protected ports.
	Protected bool
	// Error is Interface.error, set by ovs-vswitchd when it cannot open the device.
	Error string
}

// Store is the slice of OVSDB the agent uses. Reads come from a monitored cache.
type Store interface {
	// Bridges returns every bridge with its ports.
	Bridges(ctx context.Context) ([]Bridge, error)
	// SetStatus sets (or, for "", removes) sclp-ovs:status in an Interface's external_ids.
	SetStatus(ctx context.Context, iface, status string) error
	// SetProtected sets Port.protected.
	SetProtected(ctx context.Context, port string, protected bool) error
	// SetHeartbeat sets (or, for "", removes) the agent heartbeat in Open_vSwitch
	// external_ids.
	SetHeartbeat(ctx context.Context, value string) error
	// Changes delivers a value (coalesced) whenever the monitored tables change or the
	// connection is re-established.
	Changes() <-chan struct{}
}

// Flow is one OpenFlow flow, in ovs-ofctl syntax.
type Flow struct {
	Cookie   uint64
	Table    int
	Priority int
	Match    string // e.g. "in_port=3,dl_dst=01:00:00:00:00:00/01:00:00:00:00:00"
	Actions  string // e.g. "output:1,output:2" or "NORMAL"
}

// Flows programs OpenFlow flows on a bridge (through ovs-vswitchd).
type Flows interface {
	// Cookies returns the cookie of every flow on bridge whose cookie matches cookie/mask.
	Cookies(ctx context.Context, bridge string, cookie, mask uint64) ([]uint64, error)
	// Replace atomically (one bundle) deletes the flows matching cookie/mask on bridge and
	// adds flows.
	Replace(ctx context.Context, bridge string, cookie, mask uint64, flows []Flow) error
}

// Veth describes a tunnel port's veth pair.
type Veth struct {
	Name     string // OVS side
	PeerName string // datapath side
	MTU      int    // both ends
}

// Links manages the veth pairs of tunnel ports in the host's network namespace. Every pair
// it creates carries an ownership mark (the interface alias), and it never touches a link
// without the mark.
type Links interface {
	// EnsureVeth makes the pair exist, up, with the MTU, fixing what differs in place. A pair
	// that is already correct is left untouched (traffic keeps flowing).
	EnsureVeth(ctx context.Context, v Veth) error
	// DeleteVeth removes the pair whose OVS side is name; absent is success.
	DeleteVeth(ctx context.Context, name string) error
	// Owned returns the OVS-side names of every pair carrying the mark.
	Owned(ctx context.Context) ([]string, error)
}

// StatsReporter is optionally implemented by an offload.Datapath that keeps per-port
// counters; the agent exposes them on its status socket.
type StatsReporter interface {
	PortStats(name string) (map[string]uint64, error)
}
