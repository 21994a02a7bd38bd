package metrics

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

func TestNewNeedsASource(t *testing.T) {
	if _, err := New(prometheus.NewRegistry(), Options{}); !errors.Is(err, ErrNoSources) {
		t.Fatalf("New without sources: %v, want ErrNoSources", err)
	}
}

func TestNewTwiceOnOneRegistryFails(t *testing.T) {
	reg := prometheus.NewRegistry()
	o := Options{Controller: &fakeController{}}
	if _, err := New(reg, o); err != nil {
		t.Fatal(err)
	}
	if _, err := New(reg, o); err == nil {
		t.Fatal("second registration on the same registry succeeded")
	}
}

func TestDatapathValues(t *testing.T) {
	dp := &fakeDatapath{st: DatapathStats{Samples: []Sample{
		{Counter: TxSegments, Port: "sclp0", Peer: "10.0.0.2", Value: 44},
		{Counter: TxSegments, Port: "sclp1", Peer: "10.0.0.3", Value: 7},
		{Counter: RxFrames, Port: "sclp0", Peer: "10.0.0.2", Path: PathUserspace, Value: 3},
		{Counter: RxFrames, Path: PathKernel, Value: 9},
		{Counter: Drops, Direction: DirectionRx, Reason: "timeout", Value: 2},
		{Counter: Drops, Direction: DirectionRx, Reason: "timeout", Value: 5}, // summed
		{Counter: Exceptions, Reason: "too_large", Value: 11},
	}}}
	reg := prometheus.NewPedanticRegistry()
	if _, err := New(reg, Options{Datapaths: map[offload.Mode]DatapathSource{offload.ModeUDP: dp}}); err != nil {
		t.Fatal(err)
	}
	want := `
# HELP sclp_ovs_tx_segments_total SCLP segments sent on the underlay.
# TYPE sclp_ovs_tx_segments_total counter
sclp_ovs_tx_segments_total{mode="udp",peer="10.0.0.2",port="sclp0"} 44
sclp_ovs_tx_segments_total{mode="udp",peer="10.0.0.3",port="sclp1"} 7
# HELP sclp_ovs_rx_frames_total Inner frames delivered into tunnel ports, by delivery path (kernel or userspace).
# TYPE sclp_ovs_rx_frames_total counter
sclp_ovs_rx_frames_total{mode="udp",path="kernel",peer="",port=""} 9
sclp_ovs_rx_frames_total{mode="udp",path="userspace",peer="10.0.0.2",port="sclp0"} 3
# HELP sclp_ovs_drops_total Packets, segments or partial messages dropped, by direction and reason.
# TYPE sclp_ovs_drops_total counter
sclp_ovs_drops_total{direction="rx",mode="udp",peer="",port="",reason="timeout"} 7
# HELP sclp_ovs_exceptions_total Received segments (or runs of segments merged in BPF) the kernel datapath handed to userspace, by reason.
# TYPE sclp_ovs_exceptions_total counter
sclp_ovs_exceptions_total{mode="udp",reason="too_large"} 11
# HELP sclp_ovs_source_up 1 if the last read of a statistics source succeeded, else 0.
# TYPE sclp_ovs_source_up gauge
sclp_ovs_source_up{source="datapath_udp"} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want),
		"sclp_ovs_tx_segments_total", "sclp_ovs_rx_frames_total", "sclp_ovs_drops_total",
		"sclp_ovs_exceptions_total", "sclp_ovs_source_up"); err != nil {
		t.Fatal(err)
	}
	// A counter the source does not keep has no series at all.
	if n, err := testutil.GatherAndCount(reg, "sclp_ovs_tx_bytes_total", "sclp_ovs_reassembly_completed_total"); err != nil || n != 0 {
		t.Fatalf("absent counters: %d series, %v; want none", n, err)
	}
	// Values are read at scrape time: a change in the source shows in the next scrape.
	dp.st.Samples[0].Value = 45
	if n := dp.reads; n != 2 {
		t.Fatalf("source read %d times in 2 gathers", n)
	}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == "sclp_ovs_tx_segments_total" {
			if v := mf.GetMetric()[0].GetCounter().GetValue(); v != 45 {
				t.Fatalf("after the source changed: %v, want 45", v)
			}
		}
	}
}

func TestReassemblyAndController(t *testing.T) {
	rec := &ReconcileRecorder{}
	rec.Observe(2*time.Millisecond, nil)
	rec.Observe(30*time.Millisecond, errors.New("ovsdb gone"))
	rec.Observe(20*time.Second, nil)
	reg := prometheus.NewPedanticRegistry()
	_, err := New(reg, Options{
		Datapaths: map[offload.Mode]DatapathSource{offload.ModeIP: &fakeDatapath{st: DatapathStats{
			Reassembly: &ReassemblyStats{Completed: 10, CompletedBytes: 12000, TimedOut: 2, Evicted: 1, BufferedBytes: 4096, BufferedMessages: 3}}}},
		Controller: &fakeController{st: ControllerStats{PortsDesired: 3, PortsReady: 2, Reconcile: rec.Snapshot(), OVSDBConnected: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP sclp_ovs_reassembly_buffered_bytes Bytes of buffer the userspace reassembler holds for partial messages now.
# TYPE sclp_ovs_reassembly_buffered_bytes gauge
sclp_ovs_reassembly_buffered_bytes{mode="ip"} 4096
# HELP sclp_ovs_reassembly_buffered_messages Partial messages the userspace reassembler holds now.
# TYPE sclp_ovs_reassembly_buffered_messages gauge
sclp_ovs_reassembly_buffered_messages{mode="ip"} 3
# HELP sclp_ovs_reassembly_completed_bytes_total Bytes of the messages the userspace reassembler completed.
# TYPE sclp_ovs_reassembly_completed_bytes_total counter
sclp_ovs_reassembly_completed_bytes_total{mode="ip"} 12000
# HELP sclp_ovs_reassembly_timed_out_total Partial messages expired before completion (timeout, or first segment never seen).
# TYPE sclp_ovs_reassembly_timed_out_total counter
sclp_ovs_reassembly_timed_out_total{mode="ip"} 2
# HELP sclp_ovs_reassembly_evicted_total Partial messages evicted to stay within the reassembly memory caps.
# TYPE sclp_ovs_reassembly_evicted_total counter
sclp_ovs_reassembly_evicted_total{mode="ip"} 1
# HELP sclp_ovs_ports_desired Tunnel ports recorded in OVSDB that this agent should carry.
# TYPE sclp_ovs_ports_desired gauge
sclp_ovs_ports_desired 3
# HELP sclp_ovs_ports_ready Tunnel ports that are converged and carrying traffic.
# TYPE sclp_ovs_ports_ready gauge
sclp_ovs_ports_ready 2
# HELP sclp_ovs_ovsdb_connected 1 if the agent is connected to OVSDB, else 0.
# TYPE sclp_ovs_ovsdb_connected gauge
sclp_ovs_ovsdb_connected 1
# HELP sclp_ovs_openflow_connected 1 if the last OpenFlow exchange with ovs-vswitchd succeeded, else 0.
# TYPE sclp_ovs_openflow_connected gauge
sclp_ovs_openflow_connected 0
# HELP sclp_ovs_reconcile_errors_total Reconcile passes that ended with an error.
# TYPE sclp_ovs_reconcile_errors_total counter
sclp_ovs_reconcile_errors_total 1
# HELP sclp_ovs_reconcile_passes_total Reconcile passes run.
# TYPE sclp_ovs_reconcile_passes_total counter
sclp_ovs_reconcile_passes_total 3
# HELP sclp_ovs_reconcile_duration_seconds Duration of reconcile passes.
# TYPE sclp_ovs_reconcile_duration_seconds histogram
sclp_ovs_reconcile_duration_seconds_bucket{le="0.001"} 0
sclp_ovs_reconcile_duration_seconds_bucket{le="0.0025"} 1
sclp_ovs_reconcile_duration_seconds_bucket{le="0.005"} 1
sclp_ovs_reconcile_duration_seconds_bucket{le="0.01"} 1
sclp_ovs_reconcile_duration_seconds_bucket{le="0.025"} 1
sclp_ovs_reconcile_duration_seconds_bucket{le="0.05"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="0.1"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="0.25"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="0.5"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="1"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="2.5"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="5"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="10"} 2
sclp_ovs_reconcile_duration_seconds_bucket{le="30"} 3
sclp_ovs_reconcile_duration_seconds_bucket{le="+Inf"} 3
sclp_ovs_reconcile_duration_seconds_sum 20.032
sclp_ovs_reconcile_duration_seconds_count 3
`
	names := []string{"sclp_ovs_reassembly_buffered_bytes", "sclp_ovs_reassembly_buffered_messages",
		"sclp_ovs_reassembly_completed_bytes_total", "sclp_ovs_reassembly_timed_out_total",
		"sclp_ovs_reassembly_evicted_total", "sclp_ovs_ports_desired", "sclp_ovs_ports_ready",
		"sclp_ovs_ovsdb_connected", "sclp_ovs_openflow_connected", "sclp_ovs_reconcile_errors_total",
		"sclp_ovs_reconcile_passes_total", "sclp_ovs_reconcile_duration_seconds"}
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want), names...); err != nil {
		t.Fatal(err)
	}
}

func TestSourceErrorSkipsOnlyThatSource(t *testing.T) {
	var failed []string
	reg := prometheus.NewPedanticRegistry()
	_, err := New(reg, Options{
		Datapaths: map[offload.Mode]DatapathSource{
			offload.ModeIP:  &fakeDatapath{err: errors.New("stats map unreadable")},
			offload.ModeUDP: &fakeDatapath{st: DatapathStats{Samples: []Sample{{Counter: TxBytes, Value: 1}}}},
		},
		OnError: func(source string, err error) { failed = append(failed, source+": "+err.Error()) },
	})
	if err != nil {
		t.Fatal(err)
	}
	want := `
# HELP sclp_ovs_source_up 1 if the last read of a statistics source succeeded, else 0.
# TYPE sclp_ovs_source_up gauge
sclp_ovs_source_up{source="datapath_ip"} 0
sclp_ovs_source_up{source="datapath_udp"} 1
# HELP sclp_ovs_tx_bytes_total Inner frame bytes sent through the tunnel.
# TYPE sclp_ovs_tx_bytes_total counter
sclp_ovs_tx_bytes_total{mode="udp",peer="",port=""} 1
`
	if err := testutil.GatherAndCompare(reg, strings.NewReader(want)); err != nil {
		t.Fatal(err)
	}
	if len(failed) != 1 || failed[0] != "datapath_ip: stats map unreadable" {
		t.Fatalf("OnError calls %q", failed)
	}
}

func TestControllerWithoutTimings(t *testing.T) {
	reg := prometheus.NewPedanticRegistry()
	_, err := New(reg, Options{Controller: &fakeController{st: ControllerStats{Reconcile: ReconcileSnapshot{Passes: 5}}}})
	if err != nil {
		t.Fatal(err)
	}
	if n, _ := testutil.GatherAndCount(reg, "sclp_ovs_reconcile_errors_total", "sclp_ovs_reconcile_duration_seconds"); n != 0 {
		t.Fatalf("errors/durations exported without a recorder (%d series): they would claim 0", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "sclp_ovs_reconcile_passes_total"); n != 1 {
		t.Fatalf("passes: %d series", n)
	}
}

// TestLint runs promlint (naming, units, _total, help text) over every metric.
func TestLint(t *testing.T) {
	problems, err := testutil.GatherAndLint(fullRegistry(t))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("promlint: %s: %s", p.Metric, p.Text)
	}
}

// TestEveryDescriptorIsExported: the full fake sources reach every descriptor, so the doc
// test below sees every metric.
func TestEveryDescriptorIsExported(t *testing.T) {
	got := gatheredFamilies(t, fullRegistry(t))
	for _, name := range describedNames(t) {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is described but not exported by the full fake sources", name)
		}
	}
}

func TestReconcileRecorderConcurrent(t *testing.T) {
	var r ReconcileRecorder
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := 0; i < 1000; i++ {
				r.Observe(time.Duration(i)*time.Microsecond, nil)
				_ = r.Snapshot()
			}
		}()
	}
	for g := 0; g < 4; g++ {
		<-done
	}
	s := r.Snapshot()
	if s.Passes != 4000 || s.Count != 4000 || s.Buckets[30] != 4000 || s.Errors != 0 {
		t.Fatalf("snapshot %+v", s)
	}
	if s.Buckets[0.001] != 4000 { // every observation is 0..999 us
		t.Fatalf("le=0.001 bucket %d, want 4000", s.Buckets[0.001])
	}
}
