package metrics

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// gatherStats registers st as the given mode's datapath and returns the registry.
func gatherStats(tb testing.TB, mode offload.Mode, st DatapathStats) *prometheus.Registry {
	tb.Helper()
	reg := prometheus.NewPedanticRegistry()
	if _, err := New(reg, Options{Datapaths: map[offload.Mode]DatapathSource{mode: &fakeDatapath{st: st}}}); err != nil {
		tb.Fatal(err)
	}
	return reg
}

// sampleValue returns the value of the first sample matching c and the labels.
func sampleValue(st DatapathStats, c Counter, dir, reason string) (uint64, bool) {
	for _, s := range st.Samples {
		if s.Counter == c && s.Direction == dir && s.Reason == reason {
			return s.Value, true
		}
	}
	return 0, false
}

func TestFromBPF(t *testing.T) {
	var s bpf.Stats
	s.TxMessages, s.TxSegments, s.TxBytes = 10, 30, 40000
	s.RxSegments, s.RxBytes, s.RxFast, s.RxFastBytes = 31, 41000, 7, 7000
	s.RxExcMulti, s.RxExcLarge, s.RxExcOutOfOrder, s.RxExcBusy, s.RxExcMergedRun = 20, 4, 3, 2, 1
	s.TxDropNoNeigh, s.RxRingFull, s.RxDropBadChecksum, s.RxDropUnknownVNI = 1, 2, 3, 5
	s.RxDuplicate, s.RxThrottled = 7, 11
	st := FromBPF(s)
	want := `
# HELP sclp_ovs_exceptions_total Received segments (or runs of segments merged in BPF) the kernel datapath handed to userspace, by reason.
# TYPE sclp_ovs_exceptions_total counter
sclp_ovs_exceptions_total{mode="ip",reason="buffers_full"} 2
sclp_ovs_exceptions_total{mode="ip",reason="merged_run"} 1
sclp_ovs_exceptions_total{mode="ip",reason="multi_segment"} 20
sclp_ovs_exceptions_total{mode="ip",reason="out_of_order"} 3
sclp_ovs_exceptions_total{mode="ip",reason="too_large"} 4
# HELP sclp_ovs_rx_frames_total Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frames_total counter
sclp_ovs_rx_frames_total{mode="ip",path="kernel",peer="",port=""} 7
# HELP sclp_ovs_tx_segments_total SCLP segments sent on the underlay.
# TYPE sclp_ovs_tx_segments_total counter
sclp_ovs_tx_segments_total{mode="ip",peer="",port=""} 30
`
	reg := gatherStats(t, offload.ModeIP, st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_exceptions_total",
		"sclp_ovs_rx_frames_total", "sclp_ovs_tx_segments_total"); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		dir, reason string
		want        uint64
	}{{"tx", "no_neigh", 1}, {"rx", "ring_full", 2}, {"rx", "bad_checksum", 3}, {"rx", "unknown_vni", 5}, {"tx", "error", 0},
		{"rx", "merge_duplicate", 7}, {"rx", "throttled", 11}} {
		if v, ok := sampleValue(st, Drops, c.dir, c.reason); !ok || v != c.want {
			t.Errorf("drop %s/%s = %d (present %v), want %d", c.dir, c.reason, v, ok, c.want)
		}
	}
	// Every BPF drop counter appears exactly once, and the drops add up.
	var drops, sum uint64
	for _, smp := range st.Samples {
		if smp.Counter == Drops {
			drops++
			sum += smp.Value
		}
	}
	if sum != 29 {
		t.Errorf("sum of drops %d, want 29", sum)
	}
	var n uint64
	for _, name := range bpf.CounterNames {
		if strings.Contains(name, "_drop_") || name == "rx_ring_full" || name == "rx_duplicate" || name == "rx_throttled" {
			n++
		}
	}
	if drops != n {
		t.Errorf("%d drop samples for %d BPF drop counters", drops, n)
	}
	if _, ok := sampleValue(st, TxFrames, "", ""); ok {
		t.Error("FromBPF invented tx_frames (the BPF map has no such counter)")
	}
}

// TestFromBPFEveryException: every exception counter of the BPF map (rx_exc_*) is exported
// once, under the name of its ring reason, so the exceptions add up to what the rx program
// handed to userspace.
func TestFromBPFEveryException(t *testing.T) {
	var s bpf.Stats
	c := s.Counters()
	var want, n uint64
	for i, name := range bpf.CounterNames {
		if strings.HasPrefix(name, "rx_exc_") {
			c[i] = 1 << n // distinct bits: a counter exported twice or not at all shows
			want += c[i]
			n++
		}
	}
	s = bpf.StatsFromCounters(c)
	var got uint64
	reasons := map[string]bool{}
	for _, smp := range FromBPF(s).Samples {
		if smp.Counter != Exceptions {
			continue
		}
		if reasons[smp.Reason] {
			t.Errorf("reason %q exported twice", smp.Reason)
		}
		reasons[smp.Reason] = true
		got += smp.Value
	}
	if got != want || uint64(len(reasons)) != n {
		t.Fatalf("exceptions add up to %#x over %d reasons, want %#x over %d (every rx_exc_ counter)", got, len(reasons), want, n)
	}
	for r := bpf.ReasonMultiSegment; r <= bpf.ReasonMergedRun; r++ {
		if !reasons[r.String()] {
			t.Errorf("ring reason %d (%s) not exported", r, r)
		}
	}
}

func TestFromFallbackAndMerge(t *testing.T) {
	var f fallback.Stats
	f.Reassembly.Completed, f.Reassembly.Direct, f.Reassembly.CompletedBytes = 12, 2, 90000
	f.Reassembly.BufferedBytes, f.Reassembly.BufferedEntries = 8192, 2
	f.Reassembly.Drops[sclp.DropTimeout], f.Reassembly.Drops[sclp.DropOrphan] = 3, 1
	f.Reassembly.Drops[sclp.DropEvicted] = 4
	f.InjectedFrames, f.InjectedBytes, f.InjectErrors, f.LostOnStop = 11, 88000, 1, 6
	var b bpf.Stats
	b.RxFast, b.RxFastBytes = 5, 500
	st := Merge(FromBPF(b), FromFallback(f))
	want := `
# HELP sclp_ovs_rx_frames_total Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frames_total counter
sclp_ovs_rx_frames_total{mode="ip",path="kernel",peer="",port=""} 5
sclp_ovs_rx_frames_total{mode="ip",path="userspace",peer="",port=""} 11
# HELP sclp_ovs_rx_messages_total SCLP messages received whole (single-segment, or reassembled from segments).
# TYPE sclp_ovs_rx_messages_total counter
sclp_ovs_rx_messages_total{mode="ip",peer="",port=""} 17
# HELP sclp_ovs_rx_merged_messages_total Received messages merged from more than one segment or run before delivery.
# TYPE sclp_ovs_rx_merged_messages_total counter
sclp_ovs_rx_merged_messages_total{mode="ip",peer="",port=""} 10
# HELP sclp_ovs_reassembly_timed_out_total Partial messages expired before completion (timeout, or first segment never seen).
# TYPE sclp_ovs_reassembly_timed_out_total counter
sclp_ovs_reassembly_timed_out_total{mode="ip"} 4
# HELP sclp_ovs_reassembly_evicted_total Partial messages evicted to stay within the reassembly memory caps.
# TYPE sclp_ovs_reassembly_evicted_total counter
sclp_ovs_reassembly_evicted_total{mode="ip"} 4
# HELP sclp_ovs_reassembly_buffered_bytes Bytes of buffer the userspace reassembler holds for partial messages now.
# TYPE sclp_ovs_reassembly_buffered_bytes gauge
sclp_ovs_reassembly_buffered_bytes{mode="ip"} 8192
`
	reg := gatherStats(t, offload.ModeIP, st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_rx_frames_total",
		"sclp_ovs_rx_messages_total", "sclp_ovs_rx_merged_messages_total", "sclp_ovs_reassembly_timed_out_total",
		"sclp_ovs_reassembly_evicted_total", "sclp_ovs_reassembly_buffered_bytes"); err != nil {
		t.Fatal(err)
	}
	// Both BPF and the reassembler count rx drops with the same reasons (bad_checksum,
	// bad_vxlan, ...): the collector sums them into one series instead of failing the scrape.
	if _, err := reg.Gather(); err != nil {
		t.Fatalf("gather with overlapping drop reasons: %v", err)
	}
	if v, _ := sampleValue(st, Drops, DirectionRx, "lost_on_stop"); v != 6 {
		t.Errorf("lost_on_stop %d, want 6", v)
	}
}

// TestFromBPFMerged: multi-segment messages the rx program merged and delivered itself count
// as received messages, merged messages and kernel-path frames and bytes, like single-segment
// ones (they used to be missing from every one of them).
func TestFromBPFMerged(t *testing.T) {
	var s bpf.Stats
	s.RxFast, s.RxFastBytes = 7, 7000
	s.RxMerged, s.RxMergedBytes, s.RxMergeSegments = 3, 24000, 18
	want := `
# HELP sclp_ovs_rx_frame_bytes_total Inner frame bytes delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frame_bytes_total counter
sclp_ovs_rx_frame_bytes_total{mode="ip",path="kernel",peer="",port=""} 31000
# HELP sclp_ovs_rx_frames_total Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frames_total counter
sclp_ovs_rx_frames_total{mode="ip",path="kernel",peer="",port=""} 10
# HELP sclp_ovs_rx_merged_messages_total Received messages merged from more than one segment or run before delivery.
# TYPE sclp_ovs_rx_merged_messages_total counter
sclp_ovs_rx_merged_messages_total{mode="ip",peer="",port=""} 3
# HELP sclp_ovs_rx_messages_total SCLP messages received whole (single-segment, or reassembled from segments).
# TYPE sclp_ovs_rx_messages_total counter
sclp_ovs_rx_messages_total{mode="ip",peer="",port=""} 10
`
	reg := gatherStats(t, offload.ModeIP, FromBPF(s))
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_rx_frame_bytes_total",
		"sclp_ovs_rx_frames_total", "sclp_ovs_rx_merged_messages_total", "sclp_ovs_rx_messages_total"); err != nil {
		t.Fatal(err)
	}
}

// TestFromBPFPorts: with the datapath's per-port and per-peer counters, mode=ip's series
// carry port and peer labels (the unattributed buckets without), each breakdown replaces
// its host counter (sums equal, nothing twice), and tx no_port stays per host.
func TestFromBPFPorts(t *testing.T) {
	var s bpf.Stats
	s.TxMessages, s.TxSegments, s.TxBytes, s.TxDropNoPort, s.TxDropNoNeigh = 12, 30, 40000, 4, 3
	s.RxSegments, s.RxBytes, s.RxFast, s.RxFastBytes, s.RxMerged, s.RxMergedBytes = 33, 41000, 7, 7000, 2, 9000
	pa, pb := netip.MustParseAddr("10.0.0.2"), netip.MustParseAddr("10.0.0.3")
	var a, b, none bpf.PortCounters
	a.TxMessages, a.TxSegments, a.TxBytes, a.RxFrames, a.RxFrameBytes, a.RxMerged = 10, 25, 35000, 8, 15000, 2
	a.TxDrops[3] = 2 // no_neigh
	b.TxMessages, b.TxSegments, b.TxBytes, b.RxFrames, b.RxFrameBytes = 1, 4, 4000, 1, 1000
	b.TxDrops[3] = 1
	none.TxMessages, none.TxSegments, none.TxBytes = 1, 1, 1000
	pp := offload.PortPeerStats{
		Ports:    map[string]bpf.PortCounters{"sclp0a000002": a, "sclp0a000003": b},
		PortPeer: map[string]netip.Addr{"sclp0a000002": pa, "sclp0a000003": pb},
		Peers: map[netip.Addr]bpf.PeerCounters{pa: {RxSegments: 25, RxBytes: 33000},
			pb: {RxSegments: 6, RxBytes: 7000}},
		UnattributedPort: none, UnattributedPeer: bpf.PeerCounters{RxSegments: 2, RxBytes: 1000},
	}
	st := FromBPFPorts(s, pp)
	want := `
# HELP sclp_ovs_tx_bytes_total Inner frame bytes sent through the tunnel.
# TYPE sclp_ovs_tx_bytes_total counter
sclp_ovs_tx_bytes_total{mode="ip",peer="",port=""} 1000
sclp_ovs_tx_bytes_total{mode="ip",peer="10.0.0.2",port="sclp0a000002"} 35000
sclp_ovs_tx_bytes_total{mode="ip",peer="10.0.0.3",port="sclp0a000003"} 4000
# HELP sclp_ovs_rx_segments_total SCLP segments received from the underlay.
# TYPE sclp_ovs_rx_segments_total counter
sclp_ovs_rx_segments_total{mode="ip",peer="",port=""} 2
sclp_ovs_rx_segments_total{mode="ip",peer="10.0.0.2",port=""} 25
sclp_ovs_rx_segments_total{mode="ip",peer="10.0.0.3",port=""} 6
# HELP sclp_ovs_rx_frame_bytes_total Inner frame bytes delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frame_bytes_total counter
sclp_ovs_rx_frame_bytes_total{mode="ip",path="kernel",peer="",port=""} 0
sclp_ovs_rx_frame_bytes_total{mode="ip",path="kernel",peer="10.0.0.2",port="sclp0a000002"} 15000
sclp_ovs_rx_frame_bytes_total{mode="ip",path="kernel",peer="10.0.0.3",port="sclp0a000003"} 1000
# HELP sclp_ovs_rx_merged_messages_total Received messages merged from more than one segment or run before delivery.
# TYPE sclp_ovs_rx_merged_messages_total counter
sclp_ovs_rx_merged_messages_total{mode="ip",peer="",port=""} 0
sclp_ovs_rx_merged_messages_total{mode="ip",peer="10.0.0.2",port="sclp0a000002"} 2
sclp_ovs_rx_merged_messages_total{mode="ip",peer="10.0.0.3",port="sclp0a000003"} 0
`
	reg := gatherStats(t, offload.ModeIP, st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_tx_bytes_total",
		"sclp_ovs_rx_segments_total", "sclp_ovs_rx_frame_bytes_total", "sclp_ovs_rx_merged_messages_total"); err != nil {
		t.Fatal(err)
	}
	// The breakdown adds up to the host counters, each counted once.
	sum := map[Counter]uint64{}
	drops := map[string]uint64{}
	for _, smp := range st.Samples {
		sum[smp.Counter] += smp.Value
		if smp.Counter == Drops && smp.Direction == DirectionTx {
			drops[smp.Reason] += smp.Value
		}
	}
	for c, w := range map[Counter]uint64{TxMessages: s.TxMessages, TxSegments: s.TxSegments, TxBytes: s.TxBytes,
		RxSegments: s.RxSegments, RxBytes: s.RxBytes, RxFrames: s.RxFast + s.RxMerged, RxMessages: s.RxFast + s.RxMerged,
		RxFrameBytes: s.RxFastBytes + s.RxMergedBytes, RxMerged: s.RxMerged} {
		if sum[c] != w {
			t.Errorf("counter %v: samples add up to %d, host counter %d", c, sum[c], w)
		}
	}
	if drops["no_neigh"] != s.TxDropNoNeigh || drops["no_port"] != s.TxDropNoPort {
		t.Errorf("tx drops %v, want no_neigh %d (per port) and no_port %d (host)", drops, s.TxDropNoNeigh, s.TxDropNoPort)
	}
	for _, smp := range st.Samples {
		if smp.Counter == Drops && smp.Reason == "no_port" && smp.Port != "" {
			t.Errorf("no_port counted per port: %+v", smp)
		}
	}
}
