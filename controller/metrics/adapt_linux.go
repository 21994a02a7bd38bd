//go:build linux

package metrics

import (
	"net/netip"
	"sort"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
)

// FromUDP converts the mode=udp datapath's counters to DatapathStats. Transmit counters,
// delivered frames (path "userspace", and "kernel" for the tc-BPF fast path), transmit drops
// and injection errors are per port and labelled with the port's peer from peers (port name
// -> peer address; "" when absent). Receive segments, bytes, merges and reassembly drops are
// per listening socket group, so they carry no port label.
//
// What the fast path carries (udp.Options.FastPath: one-segment messages sent and received
// by tc-BPF) is counted like the socket path's: a frame it sends is a frame, a message and a
// segment; one it delivers is a segment and a message received (no port label, like the
// socket path's) and a frame delivered on path "kernel" (per port). Its receive bytes are
// counted as the socket path counts them, UDP payload bytes: the inner frame plus the SCLP and
// VXLAN headers.
func FromUDP(s udp.Stats, peers map[string]netip.Addr) DatapathStats {
	out := DatapathStats{Reassembly: reassembly(s.Reassembly)}
	names := make([]string, 0, len(s.Ports))
	for name := range s.Ports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		p, peer := s.Ports[name], ""
		if a, ok := peers[name]; ok && a.IsValid() {
			peer = a.String()
		}
		out.Add(TxFrames, name, peer, p.TxFrames+p.TxFastFrames)
		out.Add(TxMessages, name, peer, p.TxMessages+p.TxFastFrames)
		out.Add(TxSegments, name, peer, p.TxSegments+p.TxFastFrames)
		out.Add(TxBytes, name, peer, p.TxBytes+p.TxFastBytes)
		out.Samples = append(out.Samples,
			Sample{Counter: RxFrames, Port: name, Peer: peer, Path: PathUserspace, Value: p.RxInjectedFrames},
			Sample{Counter: RxFrameBytes, Port: name, Peer: peer, Path: PathUserspace, Value: p.RxInjectedBytes})
		if s.FastPath.Loaded {
			out.Samples = append(out.Samples,
				Sample{Counter: RxFrames, Port: name, Peer: peer, Path: PathKernel, Value: p.RxFastFrames},
				Sample{Counter: RxFrameBytes, Port: name, Peer: peer, Path: PathKernel, Value: p.RxFastBytes})
		}
		out.Samples = appendDrops(out.Samples, name, peer, []drop{
			{DirectionTx, "too_large", p.TxTooLarge},
			{DirectionTx, "unsupported_gso", p.TxUnsupportedGSO},
			{DirectionTx, "send_error", p.TxSendErrors},
			{DirectionTx, "truncated", p.TxTruncated},
			{DirectionTx, "socket_overflow", p.TxSocketDrops},
			{DirectionRx, "inject_error", p.RxInjectErrors},
		})
	}
	fp := s.FastPath
	out.Add(RxSegments, "", "", s.RxSegments+fp.RxFrames)
	out.Add(RxBytes, "", "", s.RxBytes+fp.RxBytes+fp.RxFrames*(sclp.HeaderLen+sclp.VXLANHeaderLen))
	out.Add(RxMessages, "", "", s.Reassembly.Reassembly.Completed+fp.RxFrames)
	out.Add(RxMerged, "", "", merged(s.Reassembly.Reassembly))
	out.Samples = appendReassemblyDrops(out.Samples, s.Reassembly)
	if fp.Loaded {
		// The fast path's own drops (no port: the programs count per datapath).
		out.Samples = appendDrops(out.Samples, "", "", []drop{
			{DirectionRx, "bad_checksum", fp.RxDropChecksum},
			{DirectionRx, "error", fp.RxDropError},
			{DirectionTx, "csum", fp.TxDropChecksum},
			{DirectionTx, "error", fp.TxDropError},
		})
	}
	return out
}

// drop is one drop counter: its direction, reason and value.
type drop struct {
	dir, reason string
	v           uint64
}

// appendDrops appends a Drops sample per counter, labelled with port and peer.
func appendDrops(out []Sample, port, peer string, ds []drop) []Sample {
	for _, d := range ds {
		out = append(out, Sample{Counter: Drops, Port: port, Peer: peer, Direction: d.dir, Reason: d.reason, Value: d.v})
	}
	return out
}

// UDPStatser is what FromUDP reads: *udp.Datapath.
type UDPStatser interface{ Stats() udp.Stats }

// UDPSource is the DatapathSource of a mode=udp datapath. Peers, if set, names each port's
// peer (the agent passes the ports it carries).
type UDPSource struct {
	Datapath UDPStatser
	Peers    func() map[string]netip.Addr
}

// DatapathStats reads the datapath.
func (u UDPSource) DatapathStats() (DatapathStats, error) {
	var peers map[string]netip.Addr
	if u.Peers != nil {
		peers = u.Peers()
	}
	return FromUDP(u.Datapath.Stats(), peers), nil
}

// sourceOf returns the DatapathSource for dp, nil if it has no readable statistics.
func sourceOf(dp offload.Datapath, peers func() map[string]netip.Addr) DatapathSource {
	switch d := dp.(type) {
	case DatapathSource:
		return d
	case UDPStatser:
		return UDPSource{Datapath: d, Peers: peers}
	case BPFStatser:
		return ipSourceOf(d, dp)
	}
	return nil
}
