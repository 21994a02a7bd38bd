package metrics

// Counter names one datapath counter family. Each has a metric name, help text and a fixed
// set of labels (see the metric table in docs/metrics.md).
type Counter uint8

// Datapath counters. Values are cumulative since the datapath started.
const (
	// TxFrames: inner frames taken from tunnel ports for transmission (labels port, peer).
	TxFrames Counter = iota
	// TxMessages: SCLP messages sent (port, peer).
	TxMessages
	// TxSegments: SCLP segments sent on the underlay (port, peer).
	TxSegments
	// TxBytes: inner frame bytes sent (port, peer).
	TxBytes
	// RxSegments: SCLP segments received from the underlay (port, peer).
	RxSegments
	// RxBytes: underlay bytes of the SCLP segments received (port, peer).
	RxBytes
	// RxMessages: SCLP messages received whole, single-segment or reassembled (port, peer).
	RxMessages
	// RxFrames: inner frames delivered into tunnel ports (port, peer, path).
	RxFrames
	// RxFrameBytes: inner frame bytes delivered into tunnel ports (port, peer, path).
	RxFrameBytes
	// RxMerged: messages delivered that were merged from more than one piece (port, peer).
	RxMerged
	// Exceptions: segments the kernel datapath handed to userspace (reason).
	Exceptions
	// Drops: packets, segments or partial messages dropped (port, peer, direction, reason).
	Drops
	numCounters
)

// Values of the "path" label of RxFrames and RxFrameBytes.
const (
	// PathKernel: delivered by the kernel datapath (tc-eBPF) without a userspace crossing.
	PathKernel = "kernel"
	// PathUserspace: reassembled and injected by userspace.
	PathUserspace = "userspace"
)

// Values of the "direction" label of Drops.
const (
	DirectionTx = "tx"
	DirectionRx = "rx"
)

// Sample is one counter value with its labels. Port and Peer are "" when the source cannot
// attribute the value to a tunnel port (the label is then absent in Prometheus); Path,
// Direction and Reason are used only by the counters whose label set has them.
type Sample struct {
	Counter   Counter
	Port      string
	Peer      string
	Path      string
	Direction string
	Reason    string
	Value     uint64
}

// ReassemblyStats are the userspace reassembler's counters and current usage, summed over
// its workers.
type ReassemblyStats struct {
	// Completed counts messages reassembled and CompletedBytes their bytes.
	Completed, CompletedBytes uint64
	// TimedOut counts partial messages expired (timeout, or first segment never seen).
	TimedOut uint64
	// Evicted counts partial messages evicted under the memory caps.
	Evicted uint64
	// BufferedBytes and BufferedMessages are the bytes and partial messages held now.
	BufferedBytes, BufferedMessages uint64
}

// DatapathStats is a snapshot of one datapath (one encapsulation mode).
type DatapathStats struct {
	// Samples are the counter values the datapath has. A counter the datapath does not keep
	// has no sample (and no series), rather than a zero that would look like a measurement.
	Samples []Sample
	// Reassembly is the userspace reassembler of this mode, nil if it has none.
	Reassembly *ReassemblyStats
}

// Add appends a sample.
func (s *DatapathStats) Add(c Counter, port, peer string, v uint64) {
	s.Samples = append(s.Samples, Sample{Counter: c, Port: port, Peer: peer, Value: v})
}

// DatapathSource is one datapath's statistics, read at scrape time.
type DatapathSource interface {
	DatapathStats() (DatapathStats, error)
}

// DatapathFunc adapts a function to DatapathSource.
type DatapathFunc func() (DatapathStats, error)

// DatapathStats calls f.
func (f DatapathFunc) DatapathStats() (DatapathStats, error) { return f() }

// ControllerStats is a snapshot of the reconciler.
type ControllerStats struct {
	// PortsDesired counts tunnel ports recorded in OVSDB; PortsReady those converged.
	PortsDesired, PortsReady int
	// Reconcile holds passes, failed passes and the pass-duration histogram.
	Reconcile ReconcileSnapshot
	// OVSDBConnected and OpenFlowConnected report the agent's connections.
	OVSDBConnected, OpenFlowConnected bool
}

// ControllerSource is the reconciler's state, read at scrape time.
type ControllerSource interface {
	ControllerStats() ControllerStats
}

// ControllerFunc adapts a function to ControllerSource.
type ControllerFunc func() ControllerStats

// ControllerStats calls f.
func (f ControllerFunc) ControllerStats() ControllerStats { return f() }
