package metrics

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// FromBPF converts the tc-eBPF datapath's host counters (mode=ip; one per-CPU map summed
// over CPUs, not per port) to DatapathStats. Frames the rx program delivers itself
// (single-segment messages, and multi-segment messages it merged) count as path="kernel";
// exceptions are exported for every ring reason (bpf.Reason names); drop counters become
// Drops by direction and reason (the counter name without its "tx_drop_"/"rx_drop_" prefix;
// rx_ring_full is reason "ring_full", rx_duplicate "merge_duplicate", rx_throttled "throttled").
// FromBPFPorts is the same with the counters that the
// datapath also keeps per port and peer labelled by them.
func FromBPF(s bpf.Stats) DatapathStats { return fromBPF(s, nil) }

// FromBPFPorts is FromBPF with the per-port and per-peer breakdown of the datapath
// ((*offload.Manager).PortPeerStats): tx messages, segments, bytes, tx drops (but no_port),
// frames the rx program delivered, their bytes and merges get a sample per port (with its
// peer) plus one without labels for the unattributed bucket; rx segments and bytes one per
// peer (port empty) plus the unattributed bucket (sources that are no peer). Each breakdown
// replaces the host counter it adds up to, so nothing is counted twice.
func FromBPFPorts(s bpf.Stats, pp offload.PortPeerStats) DatapathStats { return fromBPF(s, &pp) }

func fromBPF(s bpf.Stats, pp *offload.PortPeerStats) DatapathStats {
	var out DatapathStats
	if pp == nil {
		out.Add(TxMessages, "", "", s.TxMessages)
		out.Add(TxSegments, "", "", s.TxSegments)
		out.Add(TxBytes, "", "", s.TxBytes)
		out.Add(RxSegments, "", "", s.RxSegments)
		out.Add(RxBytes, "", "", s.RxBytes)
		out.Add(RxMessages, "", "", s.RxFast+s.RxMerged) // messages BPF delivered itself
		out.Add(RxMerged, "", "", s.RxMerged)            // of those, merged from several segments
		out.Samples = append(out.Samples,
			Sample{Counter: RxFrames, Path: PathKernel, Value: s.RxFast + s.RxMerged},
			Sample{Counter: RxFrameBytes, Path: PathKernel, Value: s.RxFastBytes + s.RxMergedBytes})
	} else {
		out.Samples = appendBreakdown(out.Samples, *pp)
	}
	for _, e := range exceptionCounters(s) {
		out.Samples = append(out.Samples, Sample{Counter: Exceptions, Reason: e.reason.String(), Value: e.v})
	}
	for i, v := range s.Counters() {
		name := bpf.CounterNames[i]
		dir, reason := "", ""
		switch {
		case strings.HasPrefix(name, "tx_drop_"):
			dir, reason = DirectionTx, strings.TrimPrefix(name, "tx_drop_")
			if pp != nil && reason != bpf.TxDropNames[0] {
				continue // per port
			}
		case strings.HasPrefix(name, "rx_drop_"):
			dir, reason = DirectionRx, strings.TrimPrefix(name, "rx_drop_")
		case name == "rx_ring_full":
			dir, reason = DirectionRx, "ring_full"
		case name == "rx_duplicate":
			// Dropped in BPF: a duplicate of bytes the merge slot holds or just delivered
			// ("merge_duplicate": the reassembler's own "duplicate" is another series).
			dir, reason = DirectionRx, "merge_duplicate"
		case name == "rx_throttled":
			// Dropped in BPF: a throttled peer's first segment (offload.Throttler).
			dir, reason = DirectionRx, "throttled"
		default:
			continue
		}
		out.Samples = append(out.Samples, Sample{Counter: Drops, Direction: dir, Reason: reason, Value: v})
	}
	return out
}

// appendBreakdown adds the per-port and per-peer samples of pp.
func appendBreakdown(out []Sample, pp offload.PortPeerStats) []Sample {
	names := make([]string, 0, len(pp.Ports))
	for name := range pp.Ports {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		peer := ""
		if a := pp.PortPeer[name]; a.IsValid() {
			peer = a.String()
		}
		out = appendPort(out, name, peer, pp.Ports[name])
	}
	out = appendPort(out, "", "", pp.UnattributedPort)
	peers := make([]netip.Addr, 0, len(pp.Peers))
	for a := range pp.Peers {
		peers = append(peers, a)
	}
	sort.Slice(peers, func(i, j int) bool { return peers[i].Less(peers[j]) })
	for _, a := range peers {
		c := pp.Peers[a]
		out = append(out, Sample{Counter: RxSegments, Peer: a.String(), Value: c.RxSegments},
			Sample{Counter: RxBytes, Peer: a.String(), Value: c.RxBytes})
	}
	return append(out, Sample{Counter: RxSegments, Value: pp.UnattributedPeer.RxSegments},
		Sample{Counter: RxBytes, Value: pp.UnattributedPeer.RxBytes})
}

// appendPort adds one port's samples (port "" for the unattributed bucket).
func appendPort(out []Sample, port, peer string, c bpf.PortCounters) []Sample {
	out = append(out,
		Sample{Counter: TxMessages, Port: port, Peer: peer, Value: c.TxMessages},
		Sample{Counter: TxSegments, Port: port, Peer: peer, Value: c.TxSegments},
		Sample{Counter: TxBytes, Port: port, Peer: peer, Value: c.TxBytes},
		Sample{Counter: RxMessages, Port: port, Peer: peer, Value: c.RxFrames},
		Sample{Counter: RxMerged, Port: port, Peer: peer, Value: c.RxMerged},
		Sample{Counter: RxFrames, Port: port, Peer: peer, Path: PathKernel, Value: c.RxFrames},
		Sample{Counter: RxFrameBytes, Port: port, Peer: peer, Path: PathKernel, Value: c.RxFrameBytes})
	for i, v := range c.TxDrops {
		if i > 0 { // no_port: never per port
			out = append(out, Sample{Counter: Drops, Port: port, Peer: peer, Direction: DirectionTx, Reason: bpf.TxDropNames[i], Value: v})
		}
	}
	return out
}

// exceptionCounter is the count of one ring-buffer exception reason.
type exceptionCounter struct {
	reason bpf.Reason
	v      uint64
}

// exceptionCounters returns the rx program's exception counters by ring reason (every
// reason the program writes into a record; count_exc in offload/bpf/rx.h and merge_flush in
// merge.h pick the counter).
func exceptionCounters(s bpf.Stats) [5]exceptionCounter {
	return [5]exceptionCounter{
		{bpf.ReasonMultiSegment, s.RxExcMulti},
		{bpf.ReasonOutOfOrder, s.RxExcOutOfOrder},
		{bpf.ReasonTooLarge, s.RxExcLarge},
		{bpf.ReasonBuffersFull, s.RxExcBusy},
		{bpf.ReasonMergedRun, s.RxExcMergedRun},
	}
}

// FromFallback converts the userspace reassembly pipeline's counters (mode=ip's exception
// path) to DatapathStats: the reassembler, merged messages, frames injected (path
// "userspace") and receive drops by reason, none of them per port.
func FromFallback(s fallback.Stats) DatapathStats {
	out := DatapathStats{Reassembly: reassembly(s)}
	out.Samples = append(out.Samples,
		Sample{Counter: RxFrames, Path: PathUserspace, Value: s.InjectedFrames},
		Sample{Counter: RxFrameBytes, Path: PathUserspace, Value: s.InjectedBytes},
		Sample{Counter: Drops, Direction: DirectionRx, Reason: "inject_error", Value: s.InjectErrors})
	out.Samples = appendReassemblyDrops(out.Samples, s)
	out.Add(RxMessages, "", "", s.Reassembly.Completed)
	out.Add(RxMerged, "", "", merged(s.Reassembly))
	return out
}

// Merge returns the samples of a and b together; the Reassembly of the first that has one
// is kept. Samples with the same labels are summed by the collector.
func Merge(a, b DatapathStats) DatapathStats {
	out := DatapathStats{Samples: append(append([]Sample(nil), a.Samples...), b.Samples...), Reassembly: a.Reassembly}
	if out.Reassembly == nil {
		out.Reassembly = b.Reassembly
	}
	return out
}

// reassembly extracts the reassembler's part of fallback statistics.
func reassembly(s fallback.Stats) *ReassemblyStats {
	r := s.Reassembly
	return &ReassemblyStats{Completed: r.Completed, CompletedBytes: r.CompletedBytes,
		TimedOut: s.TimedOut(), Evicted: s.Evicted(),
		BufferedBytes: uint64(max(r.BufferedBytes, 0)), BufferedMessages: uint64(max(r.BufferedEntries, 0))}
}

// merged counts messages assembled from more than one piece (the rest were delivered as they
// came, without a copy).
func merged(r sclp.Stats) uint64 {
	if r.Completed < r.Direct {
		return 0
	}
	return r.Completed - r.Direct
}

// appendReassemblyDrops adds the receive drops the reassembly pipeline counted, by reason
// (sclp.DropReason names), and partial messages lost when workers stopped.
func appendReassemblyDrops(out []Sample, s fallback.Stats) []Sample {
	for r := sclp.DropReason(1); r < sclp.NumDropReasons; r++ {
		out = append(out, Sample{Counter: Drops, Direction: DirectionRx, Reason: r.String(), Value: s.Reassembly.Drops[r]})
	}
	return append(out, Sample{Counter: Drops, Direction: DirectionRx, Reason: "lost_on_stop", Value: s.LostOnStop})
}

// BPFStatser is what IPSource reads from the tc-eBPF datapath: *offload.Manager.
type BPFStatser interface {
	Stats() (bpf.Stats, error)
}

// FallbackStatser is implemented by a datapath that runs the userspace fallback pipeline
// (mode=ip's exception path), e.g. by returning (*fallback.Pipeline).Stats().
type FallbackStatser interface {
	FallbackStats() fallback.Stats
}

// PipelineStatser is what IPSource reads from the fallback: *fallback.Pipeline.
type PipelineStatser interface {
	Stats() fallback.Stats
}

// PortPeerStatser is implemented by a mode=ip datapath that keeps per-port and per-peer
// counters: *offload.Manager.
type PortPeerStatser interface {
	PortPeerStats() (offload.PortPeerStats, error)
}

// PortInjectStatser is implemented by a mode=ip datapath that counts the frames its
// userspace fallback injected per port (offload.CountedPort), by port name.
type PortInjectStatser interface {
	PortInjectStats() map[string]offload.InjectCounts
}

// PortInjectStatsFunc adapts a function to PortInjectStatser.
type PortInjectStatsFunc func() map[string]offload.InjectCounts

// PortInjectStats calls f.
func (f PortInjectStatsFunc) PortInjectStats() map[string]offload.InjectCounts { return f() }

// IPSource is the DatapathSource of mode=ip: the BPF counters (FromBPF, or FromBPFPorts if
// Ports is set) and, if set, the userspace fallback pipeline (FromFallback), whose delivered
// frames are exported per port (with the port's peer when Ports is set) if Injected is set.
type IPSource struct {
	Datapath BPFStatser
	Fallback PipelineStatser
	Ports    PortPeerStatser
	Injected PortInjectStatser
}

// DatapathStats reads the BPF stats maps and the fallback pipeline.
func (s IPSource) DatapathStats() (DatapathStats, error) {
	b, err := s.Datapath.Stats()
	if err != nil {
		return DatapathStats{}, fmt.Errorf("read mode=ip datapath stats: %w", err)
	}
	var (
		st       DatapathStats
		portPeer map[string]netip.Addr
	)
	if s.Ports == nil {
		st = FromBPF(b)
	} else {
		pp, err := s.Ports.PortPeerStats()
		if err != nil {
			return DatapathStats{}, fmt.Errorf("read mode=ip port and peer stats: %w", err)
		}
		st, portPeer = FromBPFPorts(b, pp), pp.PortPeer
	}
	if s.Fallback != nil {
		fb := FromFallback(s.Fallback.Stats())
		if s.Injected != nil {
			fb.Samples = perPortInjected(fb.Samples, s.Injected.PortInjectStats(), portPeer)
		}
		st = Merge(st, fb)
	}
	return st, nil
}

// perPortInjected replaces the fallback's per-host userspace deliveries in out by the per-port
// counts of inj (labelled with the port's peer from peers, if known).
func perPortInjected(out []Sample, inj map[string]offload.InjectCounts, peers map[string]netip.Addr) []Sample {
	kept := out[:0]
	for _, smp := range out {
		if (smp.Counter == RxFrames || smp.Counter == RxFrameBytes) && smp.Path == PathUserspace {
			continue
		}
		kept = append(kept, smp)
	}
	names := make([]string, 0, len(inj))
	for name := range inj {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		peer := ""
		if a := peers[name]; a.IsValid() {
			peer = a.String()
		}
		c := inj[name]
		kept = append(kept, Sample{Counter: RxFrames, Port: name, Peer: peer, Path: PathUserspace, Value: c.Frames},
			Sample{Counter: RxFrameBytes, Port: name, Peer: peer, Path: PathUserspace, Value: c.Bytes})
	}
	return kept
}

// ipSourceOf is the IPSource of a mode=ip datapath d (dp itself): its host counters plus
// whatever else dp reports (the userspace fallback, per-port/per-peer counters, per-port
// injections).
func ipSourceOf(d BPFStatser, dp offload.Datapath) IPSource {
	src := IPSource{Datapath: d}
	if f, ok := dp.(FallbackStatser); ok {
		src.Fallback = fallbackAdapter{f}
	}
	if p, ok := dp.(PortPeerStatser); ok {
		src.Ports = p
	}
	if p, ok := dp.(PortInjectStatser); ok {
		src.Injected = p
	}
	return src
}
