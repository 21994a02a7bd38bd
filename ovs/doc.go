// Package ovs talks to Open vSwitch: OVSDB through libovsdb (typed models, a monitored cache,
// transactions) and OpenFlow through go-openvswitch's ovs-ofctl wrapper.
//
// # OVSDB
//
// Dial connects to ovsdb-server (endpoint "unix:/path/db.sock" or "tcp:host:port"; empty means
// DefaultEndpoint: $OVS_RUNDIR/db.sock, else /var/run/openvswitch/db.sock), monitors the
// Open_vSwitch, Bridge, Port and Interface tables into a local cache and reconnects by itself
// after the server restarts (the monitors are re-established and the cache refilled). Reads
// (Bridge, Interface, Interfaces, ...) come from the cache; writes are single transactions:
//
//	AddPort       insert Port + Interface and add the port to the bridge, or update the
//	              existing port's Interface (external_ids, mtu_request): idempotent
//	DeletePort    remove the port from its bridge (Port and Interface rows are garbage collected)
//	SetInterfaceExternalIDs / SetInterfaceStatus / SetRootExternalIDs
//	              set and remove keys without touching others
//	SetPortProtected / PortOptions.Protected
//	              Port.protected: NORMAL never forwards between two protected ports, which
//	              is split horizon for tunnel ports in a full mesh
//	AddBridge     a netdev bridge with its internal port, like ovs-vsctl add-br
//	WaitVswitchd  next_cfg/cur_cfg handshake: wait until ovs-vswitchd applied our changes
//
// Subscribe and OnChange report cache changes so a reconciler can wake up.
//
// # OpenFlow
//
// OpenFlow is a thin layer over go-openvswitch's ovs.Client (ovs-ofctl with OpenFlow 1.3, and
// 1.4 allowed for bundles). Every flow this project installs carries a cookie under a cookie
// mask, so ReplaceFlows and DeleteFlows touch only flows we own. ovs-ofctl is found through OVS_RUNDIR or an explicit
// run directory (OpenFlowOptions.RunDir), so the same code drives the system OVS and the
// private instances of the tests. Tests inject the Exec function and see the exact commands.
//
// All errors are wrapped with context; match them with errors.Is against the sentinels
// (ErrNotConnected, ErrNoBridge, ErrNoPort, ErrNoInterface, ErrPortExists, ...).
package ovs
