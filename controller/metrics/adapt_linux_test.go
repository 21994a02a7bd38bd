//go:build linux

package metrics

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
)

// fakeUDP is a handwritten UDPStatser.
type fakeUDP struct{ st udp.Stats }

func (f fakeUDP) Stats() udp.Stats { return f.st }

func TestFromUDP(t *testing.T) {
	var s udp.Stats
	s.Ports = map[string]udp.PortStats{
		"sclp0": {TxFrames: 100, TxMessages: 100, TxSegments: 4400, TxBytes: 6_400_000, TxSocketDrops: 2,
			RxInjectedFrames: 90, RxInjectedBytes: 5_000_000},
		"sclp1": {TxFrames: 1, TxMessages: 1, TxSegments: 1, TxBytes: 98},
	}
	s.RxDatagrams, s.RxSegments, s.RxBytes = 10, 4000, 5_100_000
	s.Reassembly.Reassembly.Completed, s.Reassembly.Reassembly.Direct = 90, 30
	s.Reassembly.Reassembly.Drops[sclp.DropShort] = 7
	src := UDPSource{Datapath: fakeUDP{s}, Peers: func() map[string]netip.Addr {
		return map[string]netip.Addr{"sclp0": netip.MustParseAddr("10.0.0.2")} // sclp1: unknown peer
	}}
	st, err := src.DatapathStats()
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP sclp_ovs_tx_bytes_total Inner frame bytes sent through the tunnel.
# TYPE sclp_ovs_tx_bytes_total counter
sclp_ovs_tx_bytes_total{mode="udp",peer="10.0.0.2",port="sclp0"} 6.4e+06
sclp_ovs_tx_bytes_total{mode="udp",peer="",port="sclp1"} 98
# HELP sclp_ovs_rx_frame_bytes_total Inner frame bytes delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frame_bytes_total counter
sclp_ovs_rx_frame_bytes_total{mode="udp",path="userspace",peer="10.0.0.2",port="sclp0"} 5e+06
sclp_ovs_rx_frame_bytes_total{mode="udp",path="userspace",peer="",port="sclp1"} 0
# HELP sclp_ovs_rx_segments_total SCLP segments received from the underlay.
# TYPE sclp_ovs_rx_segments_total counter
sclp_ovs_rx_segments_total{mode="udp",peer="",port=""} 4000
# HELP sclp_ovs_rx_messages_total SCLP messages received whole (single-segment, or reassembled from segments).
# TYPE sclp_ovs_rx_messages_total counter
sclp_ovs_rx_messages_total{mode="udp",peer="",port=""} 90
# HELP sclp_ovs_rx_merged_messages_total Received messages merged from more than one segment or run before delivery.
# TYPE sclp_ovs_rx_merged_messages_total counter
sclp_ovs_rx_merged_messages_total{mode="udp",peer="",port=""} 60
`
	reg := gatherStats(t, offload.ModeUDP, st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_tx_bytes_total",
		"sclp_ovs_rx_frame_bytes_total", "sclp_ovs_rx_segments_total", "sclp_ovs_rx_messages_total", "sclp_ovs_rx_merged_messages_total"); err != nil {
		t.Fatal(err)
	}
	if v, _ := sampleValue(st, Drops, DirectionTx, "socket_overflow"); v != 2 {
		t.Errorf("socket_overflow %d, want 2", v)
	}
	if v, _ := sampleValue(st, Drops, DirectionRx, "short"); v != 7 {
		t.Errorf("rx short %d, want 7", v)
	}
	if _, ok := sampleValue(st, Exceptions, "", "multi_segment"); ok {
		t.Error("mode=udp has no kernel exceptions, but FromUDP reported some")
	}
}

// TestFromUDPFastPath: what the tc-BPF fast path carries counts like the socket path's
// traffic (frames, messages, segments sent; segments, bytes, messages received) and its
// deliveries appear on path "kernel"; its drops are exported.
func TestFromUDPFastPath(t *testing.T) {
	var s udp.Stats
	s.Ports = map[string]udp.PortStats{
		"sclp0": {TxFrames: 10, TxMessages: 10, TxSegments: 450, TxBytes: 650_000, TxFastFrames: 7, TxFastBytes: 700,
			RxInjectedFrames: 9, RxInjectedBytes: 585_000, RxFastFrames: 6, RxFastBytes: 600},
	}
	s.RxSegments, s.RxBytes = 405, 586_000
	s.Reassembly.Reassembly.Completed = 9
	s.FastPath = udp.FastPathStats{Loaded: true, RxFrames: 6, RxBytes: 600, RxDropChecksum: 3, TxDropError: 1}
	st := FromUDP(s, map[string]netip.Addr{"sclp0": netip.MustParseAddr("10.0.0.2")})
	want := `
# HELP sclp_ovs_tx_frames_total Inner frames taken from tunnel ports for transmission.
# TYPE sclp_ovs_tx_frames_total counter
sclp_ovs_tx_frames_total{mode="udp",peer="10.0.0.2",port="sclp0"} 17
# HELP sclp_ovs_tx_segments_total SCLP segments sent on the underlay.
# TYPE sclp_ovs_tx_segments_total counter
sclp_ovs_tx_segments_total{mode="udp",peer="10.0.0.2",port="sclp0"} 457
# HELP sclp_ovs_tx_bytes_total Inner frame bytes sent through the tunnel.
# TYPE sclp_ovs_tx_bytes_total counter
sclp_ovs_tx_bytes_total{mode="udp",peer="10.0.0.2",port="sclp0"} 650700
# HELP sclp_ovs_rx_frames_total Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frames_total counter
sclp_ovs_rx_frames_total{mode="udp",path="kernel",peer="10.0.0.2",port="sclp0"} 6
sclp_ovs_rx_frames_total{mode="udp",path="userspace",peer="10.0.0.2",port="sclp0"} 9
# HELP sclp_ovs_rx_segments_total SCLP segments received from the underlay.
# TYPE sclp_ovs_rx_segments_total counter
sclp_ovs_rx_segments_total{mode="udp",peer="",port=""} 411
# HELP sclp_ovs_rx_bytes_total Underlay bytes of the SCLP segments received (mode=udp: UDP payloads; mode=ip: Ethernet frames).
# TYPE sclp_ovs_rx_bytes_total counter
sclp_ovs_rx_bytes_total{mode="udp",peer="",port=""} 586720
# HELP sclp_ovs_rx_messages_total SCLP messages received whole (single-segment, or reassembled from segments).
# TYPE sclp_ovs_rx_messages_total counter
sclp_ovs_rx_messages_total{mode="udp",peer="",port=""} 15
`
	reg := gatherStats(t, offload.ModeUDP, st)
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), "sclp_ovs_tx_frames_total", "sclp_ovs_tx_segments_total",
		"sclp_ovs_tx_bytes_total", "sclp_ovs_rx_frames_total", "sclp_ovs_rx_segments_total", "sclp_ovs_rx_bytes_total",
		"sclp_ovs_rx_messages_total"); err != nil {
		t.Fatal(err)
	}
	// The collector sums samples with the same labels (the reassembler reports
	// bad_checksum too).
	sum := func(dir, reason string) (v uint64) {
		for _, smp := range st.Samples {
			if smp.Counter == Drops && smp.Direction == dir && smp.Reason == reason {
				v += smp.Value
			}
		}
		return v
	}
	if v := sum(DirectionRx, "bad_checksum"); v != 3 {
		t.Errorf("rx bad_checksum %d, want 3 (the fast path's)", v)
	}
	if v := sum(DirectionTx, "error"); v != 1 {
		t.Errorf("tx error %d, want 1 (the fast path's)", v)
	}
}
