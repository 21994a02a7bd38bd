package offload

import (
	"net/netip"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// PortPeerStats are mode=ip's per-port and per-peer counters, summed over CPUs
// ((*Manager).PortPeerStats). Together with the unattributed buckets they add up to the
// matching host counters of Stats: TxMessages, TxSegments, TxBytes, the tx drops after the
// port lookup, the frames the rx program delivered (RxFast + RxMerged) and their bytes,
// RxMerged, RxSegments and RxBytes.
type PortPeerStats struct {
	// Ports holds the counters of each port the manager carries, by PortSpec.Name.
	Ports map[string]bpf.PortCounters
	// PortPeer is the peer of each port in Ports.
	PortPeer map[string]netip.Addr
	// Peers holds the receive counters of each peer address.
	Peers map[netip.Addr]bpf.PeerCounters
	// UnattributedPort counts what no port entry accounts for.
	UnattributedPort bpf.PortCounters
	// UnattributedPeer counts segments from sources that are no peer (and so are dropped).
	UnattributedPeer bpf.PeerCounters
}
