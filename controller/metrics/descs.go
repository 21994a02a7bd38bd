package metrics

import "github.com/prometheus/client_golang/prometheus"

// Prefix starts every metric name.
const Prefix = "sclp_ovs_"

// Label sets.
var (
	trafficLabels   = []string{"mode", "port", "peer"}
	deliveryLabels  = []string{"mode", "port", "peer", "path"}
	exceptionLabels = []string{"mode", "reason"}
	dropLabels      = []string{"mode", "port", "peer", "direction", "reason"}
	modeLabel       = []string{"mode"}
)

// counterSpec is a datapath counter's name, help and labels.
type counterSpec struct {
	name, help string
	labels     []string
}

// counterSpecs describes each Counter.
var counterSpecs = [numCounters]counterSpec{
	TxFrames:     {"tx_frames_total", "Inner frames taken from tunnel ports for transmission.", trafficLabels},
	TxMessages:   {"tx_messages_total", "SCLP messages sent (one per inner frame sent).", trafficLabels},
	TxSegments:   {"tx_segments_total", "SCLP segments sent on the underlay.", trafficLabels},
	TxBytes:      {"tx_bytes_total", "Inner frame bytes sent through the tunnel.", trafficLabels},
	RxSegments:   {"rx_segments_total", "SCLP segments received from the underlay.", trafficLabels},
	RxBytes:      {"rx_bytes_total", "Underlay bytes of the SCLP segments received (mode=udp: UDP payloads; mode=ip: Ethernet frames).", trafficLabels},
	RxMessages:   {"rx_messages_total", "SCLP messages received whole (single-segment, or reassembled from segments).", trafficLabels},
	RxFrames:     {"rx_frames_total", "Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).", deliveryLabels},
	RxFrameBytes: {"rx_frame_bytes_total", "Inner frame bytes delivered into tunnel ports, by delivery path (kernel or userspace).", deliveryLabels},
	RxMerged:     {"rx_merged_messages_total", "Received messages merged from more than one segment or run before delivery.", trafficLabels},
	Exceptions:   {"exceptions_total", "Received segments (or runs of segments merged in BPF) the kernel datapath handed to userspace, by reason.", exceptionLabels},
	Drops:        {"drops_total", "Packets, segments or partial messages dropped, by direction and reason.", dropLabels},
}

// descs are the collector's descriptors.
type descs struct {
	counters [numCounters]*prometheus.Desc

	reasmCompleted, reasmCompletedBytes, reasmTimedOut, reasmEvicted *prometheus.Desc
	reasmBufferedBytes, reasmBufferedMessages                        *prometheus.Desc

	portsDesired, portsReady                       *prometheus.Desc
	reconcilePasses, reconcileErrors, reconcileDur *prometheus.Desc
	ovsdbConnected, openflowConnected              *prometheus.Desc

	sourceUp, buildInfo *prometheus.Desc
}

func newDescs() *descs {
	d := &descs{}
	for i, s := range counterSpecs {
		d.counters[i] = prometheus.NewDesc(Prefix+s.name, s.help, s.labels, nil)
	}
	m := func(name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(Prefix+name, help, labels, nil)
	}
	d.reasmCompleted = m("reassembly_completed_total", "Messages the userspace reassembler completed.", modeLabel...)
	d.reasmCompletedBytes = m("reassembly_completed_bytes_total", "Bytes of the messages the userspace reassembler completed.", modeLabel...)
	d.reasmTimedOut = m("reassembly_timed_out_total", "Partial messages expired before completion (timeout, or first segment never seen).", modeLabel...)
	d.reasmEvicted = m("reassembly_evicted_total", "Partial messages evicted to stay within the reassembly memory caps.", modeLabel...)
	d.reasmBufferedBytes = m("reassembly_buffered_bytes", "Bytes of buffer the userspace reassembler holds for partial messages now.", modeLabel...)
	d.reasmBufferedMessages = m("reassembly_buffered_messages", "Partial messages the userspace reassembler holds now.", modeLabel...)
	d.portsDesired = m("ports_desired", "Tunnel ports recorded in OVSDB that this agent should carry.")
	d.portsReady = m("ports_ready", "Tunnel ports that are converged and carrying traffic.")
	d.reconcilePasses = m("reconcile_passes_total", "Reconcile passes run.")
	d.reconcileErrors = m("reconcile_errors_total", "Reconcile passes that ended with an error.")
	d.reconcileDur = m("reconcile_duration_seconds", "Duration of reconcile passes.")
	d.ovsdbConnected = m("ovsdb_connected", "1 if the agent is connected to OVSDB, else 0.")
	d.openflowConnected = m("openflow_connected", "1 if the last OpenFlow exchange with ovs-vswitchd succeeded, else 0.")
	d.sourceUp = m("source_up", "1 if the last read of a statistics source succeeded, else 0.", "source")
	d.buildInfo = m("build_info", "Always 1; the version label says which sclp-ovs build runs.", "version")
	return d
}

// all returns every descriptor.
func (d *descs) all() []*prometheus.Desc {
	out := append([]*prometheus.Desc(nil), d.counters[:]...)
	return append(out, d.reasmCompleted, d.reasmCompletedBytes, d.reasmTimedOut, d.reasmEvicted,
		d.reasmBufferedBytes, d.reasmBufferedMessages, d.portsDesired, d.portsReady,
		d.reconcilePasses, d.reconcileErrors, d.reconcileDur, d.ovsdbConnected,
		d.openflowConnected, d.sourceUp, d.buildInfo)
}
