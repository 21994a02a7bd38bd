//go:build linux

package observability

import (
	"context"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// rateWindow replaces Grafana's $__rate_interval: twenty 1 s scrapes, so that a query
// evaluated at a settled time after a 3 s stream still sees it.
const rateWindow = "20s"

// obs is the monitoring side of a test: prometheus and the agents' endpoints in one namespace.
type obs struct {
	t      *testing.T
	prom   *Prometheus
	agents []*hostAgent
	hosts  []string // instance label value per host
}

// query evaluates expr at time at and fails the test on an API error.
func (o *obs) query(expr string, at time.Time) []Sample {
	o.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := o.prom.Query(ctx, expr, at)
	if err != nil {
		o.t.Fatal(err)
	}
	return s
}

// value evaluates expr at time at and requires exactly one sample.
func (o *obs) value(expr string, at time.Time) float64 {
	o.t.Helper()
	s := o.query(expr, at)
	if len(s) != 1 {
		o.t.Fatalf("%s: %d samples %v, want 1", expr, len(s), s)
	}
	return s[0].Value
}

// settle waits until prometheus has scraped every target after now (so a query at the
// returned time sees every counter as it is now, given no traffic meanwhile).
func (o *obs) settle() time.Time {
	o.t.Helper()
	mark := time.Now()
	deadline := mark.Add(20 * time.Second)
	for {
		time.Sleep(300 * time.Millisecond)
		at := time.Now()
		ok := 0
		for _, s := range o.query(`timestamp(up) * 1000 * up`, at) { // 0 unless the scrape succeeded
			if s.Value > float64(mark.UnixMilli()) {
				ok++
			}
		}
		if ok == len(o.agents) {
			return at
		}
		if at.After(deadline) {
			o.t.Fatalf("prometheus did not scrape all %d targets within 20 s", len(o.agents))
		}
	}
}

// counter returns a counter's value on host h (sum over the selected series) at time at.
func (o *obs) counter(h int, metric, sel string, at time.Time) float64 {
	o.t.Helper()
	if sel != "" {
		sel = "," + sel
	}
	return o.value(fmt.Sprintf(`sum(%s{instance=%q%s})`, metric, o.hosts[h], sel), at)
}

// delta is a counter's increase on host h between two times.
func (o *obs) delta(h int, metric, sel string, from, to time.Time) float64 {
	o.t.Helper()
	return o.counter(h, metric, sel, to) - o.counter(h, metric, sel, from)
}

// between fails unless lo <= v <= hi.
func between(t *testing.T, what string, v, lo, hi float64) {
	t.Helper()
	if v < lo || v > hi || math.IsNaN(v) {
		t.Errorf("%s = %v, want %v..%v", what, v, lo, hi)
	} else {
		t.Logf("%s = %v (want %v..%v)", what, v, lo, hi)
	}
}

// TestPrometheusScrapesTunnel runs traffic through a real mode=udp tunnel between two
// namespace hosts, has Debian's prometheus scrape both hosts' metrics endpoints every
// second, checks the counters against the traffic sent, and evaluates every query of the
// Grafana dashboard through the Prometheus HTTP API, requiring data.
func TestPrometheusScrapesTunnel(t *testing.T) {
	testbed.RequireRoot(t)
	observe(t, newUDPTunnel(t))
}

// TestPrometheusScrapesIPMode is the same over mode=ip: the tc-eBPF datapath's per-CPU
// counters and the userspace fallback, with the kernel and userspace delivery paths.
func TestPrometheusScrapesIPMode(t *testing.T) {
	testbed.RequireRoot(t)
	tn := newIPTunnel(t)
	// The liveness check asks the kernel: it fails for a device without the programs.
	h := tn.hosts[0]
	bogus := metrics.AttachedCheck(func() []offload.PortSpec {
		return []offload.PortSpec{{Name: "bogus", PeerName: "lo", Device: h.Underlay}}
	}, h.Do)
	if err := bogus.Fn(context.Background()); !errors.Is(err, metrics.ErrNotAttached) {
		t.Fatalf("programs_attached on lo: %v, want ErrNotAttached", err)
	}
	observe(t, tn)
}

// observe starts the endpoints and prometheus, sends known traffic and checks everything.
func observe(t *testing.T, tn *tunnel) {
	mon := testbed.NewNS(t, "mon")
	o := &obs{t: t}
	var targets []Target
	for i := range tn.hosts {
		addr := fmt.Sprintf("127.0.0.1:%d", 9310+i)
		o.agents = append(o.agents, startAgent(t, tn, i, mon, addr))
		o.hosts = append(o.hosts, addr)
		targets = append(targets, Target{Addr: addr, Labels: map[string]string{"host": tn.hosts[i].Name}})
	}
	waitHTTP(t, mon, o.hosts, "/healthz", 200, 10*time.Second)
	waitHTTP(t, mon, o.hosts, "/readyz", 200, 10*time.Second)
	o.prom = StartPrometheus(t, mon, PrometheusOptions{Dir: t.TempDir(), Targets: targets})
	udpMode := tn.mode == offload.ModeUDP
	if udpMode {
		// mode=udp's transmit fast path starts per port once the next hop's MAC is known
		// (the datapath's neighbour refresh, every 500 ms): one ping resolves it both ways,
		// so that the counted pings below all take the fast path.
		if _, err := tn.vms[0].Ping(tn.vms[1].IP, 1); err != nil {
			t.Fatalf("warm-up ping: %v", err)
		}
		time.Sleep(time.Second)
	}
	t0 := o.settle()
	// Port selectors: both modes count per port (mode=ip: the BPF programs' per-port
	// counters and the fallback's per-port injections).
	port := func(i int) string { return `port="sclp` + strconv.Itoa(i) + `"` }
	and := func(a, b string) string {
		if a == "" || b == "" {
			return a + b
		}
		return a + "," + b
	}
	// One-segment messages take the tc-BPF fast path in both modes (mode=udp: on by default).
	delivered := `path="kernel"`

	// Phase 1: N pings of a known size. Each echo request is one inner frame of
	// 14 + 20 + 8 + size bytes and one SCLP segment; ARP adds at most a few frames.
	const n, size = 20, 1000
	frame := float64(14 + 20 + 8 + size)
	st, err := tn.vms[0].PingWith(tn.vms[1].IP, testbed.PingOptions{Count: n, Size: size, Interval: 20 * time.Millisecond})
	if err != nil || st.Received != n {
		t.Fatalf("ping through the tunnel: %v (%v)", st, err)
	}
	t1 := o.settle()
	const slack = 4 // ARP request/reply, a neighbour probe
	if udpMode {
		between(t, "sender tx_frames", o.delta(0, "sclp_ovs_tx_frames_total", port(0), t0, t1), n, n+slack)
		between(t, "receiver reassembly_completed (none: one segment each, the fast path)", o.delta(1, "sclp_ovs_reassembly_completed_total", "", t0, t1), 0, slack)
	} else {
		between(t, "receiver exceptions (none: one segment each)", o.delta(1, "sclp_ovs_exceptions_total", "", t0, t1), 0, 0)
	}
	between(t, "sender tx_messages", o.delta(0, "sclp_ovs_tx_messages_total", port(0), t0, t1), n, n+slack)
	between(t, "sender tx_segments (one per small message)", o.delta(0, "sclp_ovs_tx_segments_total", port(0), t0, t1), n, n+slack)
	between(t, "sender tx_bytes", o.delta(0, "sclp_ovs_tx_bytes_total", port(0), t0, t1), n*frame, n*frame+slack*64)
	between(t, "receiver rx_segments", o.delta(1, "sclp_ovs_rx_segments_total", "", t0, t1), n, n+slack)
	if !udpMode { // mode=ip counts received segments per peer
		between(t, "receiver rx_segments from host 0", o.delta(1, "sclp_ovs_rx_segments_total", fmt.Sprintf("peer=%q", tn.specs[1].Peer), t0, t1), n, n+slack)
	}
	between(t, "receiver rx_messages", o.delta(1, "sclp_ovs_rx_messages_total", "", t0, t1), n, n+slack)
	// Underlay bytes per echo request: SCLP + VXLAN + frame, in a UDP payload (mode=udp) or
	// an Ethernet frame with IPv4 (mode=ip, counted at the underlay's tc ingress).
	wire := float64(sclp.HeaderLen + sclp.VXLANHeaderLen + 14 + 20 + 8 + size)
	if !udpMode {
		wire += 14 + 20
	}
	between(t, "receiver rx_bytes", o.delta(1, "sclp_ovs_rx_bytes_total", "", t0, t1), n*wire, n*wire+slack*100)
	between(t, "receiver rx_frames ("+delivered+")", o.delta(1, "sclp_ovs_rx_frames_total", and(port(1), delivered), t0, t1), n, n+slack)
	between(t, "receiver rx_frame_bytes", o.delta(1, "sclp_ovs_rx_frame_bytes_total", port(1), t0, t1), n*frame, n*frame+slack*64)
	between(t, "receiver merged messages (none: one segment each)", o.delta(1, "sclp_ovs_rx_merged_messages_total", "", t0, t1), 0, 0)
	between(t, "replies tx_messages on host 1", o.delta(1, "sclp_ovs_tx_messages_total", port(1), t0, t1), n, n+slack)
	between(t, "replies rx_frames on host 0", o.delta(0, "sclp_ovs_rx_frames_total", port(0), t0, t1), n, n+slack)
	between(t, "drops on both hosts", o.delta(0, "sclp_ovs_drops_total", "", t0, t1)+o.delta(1, "sclp_ovs_drops_total", "", t0, t1), 0, 0)

	// Phase 2: a TCP stream for 3 s. The VM hands 64 KB GSO frames to the tunnel port, so
	// messages are segmented on the wire and merged again before delivery.
	got := tn.tcpFor(t, 3*time.Second)
	t2 := o.settle()
	b := float64(got)
	t.Logf("tcp: %d bytes in 3 s (%.2f Gbit/s)", got, b*8/3e9)
	between(t, "sender tx_bytes >= TCP payload", o.delta(0, "sclp_ovs_tx_bytes_total", port(0), t1, t2), b, 1.2*b+1e6)
	between(t, "receiver rx_frame_bytes >= TCP payload", o.delta(1, "sclp_ovs_rx_frame_bytes_total", port(1), t1, t2), b, 1.2*b+1e6)
	// No drops: every inner byte sent by host 0 was delivered into host 1's tunnel port.
	if drops := o.delta(0, "sclp_ovs_drops_total", "", t1, t2) + o.delta(1, "sclp_ovs_drops_total", "", t1, t2); drops == 0 {
		sent := o.delta(0, "sclp_ovs_tx_bytes_total", "", t1, t2)
		between(t, "receiver rx_frame_bytes == sender tx_bytes", o.delta(1, "sclp_ovs_rx_frame_bytes_total", "", t1, t2), sent, sent)
	} else {
		t.Logf("%v drops during the stream: delivered bytes not compared with sent bytes", drops)
	}
	segs, msgs := o.delta(0, "sclp_ovs_tx_segments_total", "", t1, t2), o.delta(0, "sclp_ovs_tx_messages_total", "", t1, t2)
	overhead := sclp.UDPOverhead
	if !udpMode {
		overhead = sclp.IPv4Overhead
	}
	mss := tn.hosts[0].MTU - overhead
	between(t, "segments per message sent", segs/msgs, 1.5, float64(sclp.SegmentCount(sclp.MaxMessageLen, mss)))
	between(t, "wire segments >= payload / MSS", segs, b/float64(mss), math.Inf(1))
	between(t, "merged messages on the receiver", o.delta(1, "sclp_ovs_rx_merged_messages_total", "", t1, t2), 1, math.Inf(1))
	between(t, "frames delivered by userspace", o.delta(1, "sclp_ovs_rx_frames_total", `path="userspace"`, t1, t2), 1, math.Inf(1))
	if !udpMode {
		between(t, "multi-segment exceptions handed to userspace", o.delta(1, "sclp_ovs_exceptions_total", `reason="multi_segment"`, t1, t2), 2, math.Inf(1))
	}

	// Prometheus holds exactly what the datapath counts once traffic has stopped.
	o.checkTruth(tn)

	// Every query of the dashboard has data, evaluated at the first scrape after the stream.
	o.checkDashboard(t2, tn)
}

// checkTruth compares prometheus' latest values with the datapaths' own counters, retrying
// (bounded) if background frames (ARP) moved a counter between the reads.
func (o *obs) checkTruth(tn *tunnel) {
	t := o.t
	t.Helper()
	var last string
	for try := 0; try < 5; try++ {
		before := tn.truth()
		at := o.settle()
		want := tn.truth()
		if fmt.Sprint(before) != fmt.Sprint(want) {
			continue // traffic between the reads
		}
		last = ""
		for k, v := range want {
			h, metric, _ := strings.Cut(k, "|")
			metric, sel, _ := strings.Cut(metric, "|") // "host|metric[|label selector]"
			i, _ := strconv.Atoi(h)
			if got := o.counter(i, metric, sel, at); got != v {
				last += fmt.Sprintf("\n%s{%s} on host %d: prometheus %v, datapath %v", metric, sel, i, got, v)
			}
		}
		if last == "" {
			t.Logf("prometheus matches the datapath counters exactly (%d counters)", len(want))
			return
		}
	}
	t.Errorf("prometheus differs from the datapath:%s", last)
}

// checkDashboard evaluates every dashboard query at time at and requires at least one
// finite sample; a few queries also get value checks.
func (o *obs) checkDashboard(at time.Time, tn *tunnel) {
	t := o.t
	t.Helper()
	d, err := LoadDashboard(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	qs := d.Queries()
	withData := 0
	for _, q := range qs {
		expr := Expand(q.Expr, rateWindow, map[string]string{"instance": ".*"})
		res := o.query(expr, at)
		if len(res) > 0 {
			withData++
		}
		if len(res) == 0 {
			if m, ok := otherModeOnly(expr, tn.mode); ok {
				t.Logf("%s/%s: no data, as expected: %s exists only in another mode", q.Panel, q.RefID, m)
			} else {
				t.Errorf("%s/%s: no data for %s", q.Panel, q.RefID, expr)
			}
			continue
		}
		for _, s := range res {
			if math.IsNaN(s.Value) || math.IsInf(s.Value, 0) || s.Value < 0 {
				t.Errorf("%s/%s: %s gave %v", q.Panel, q.RefID, expr, s)
			}
		}
		checkPanelValues(t, q, res, tn)
	}
	t.Logf("%d of %d dashboard queries returned data (mode=%s)", withData, len(qs), tn.mode)
}

// checkPanelValues checks the values of panels whose meaning the test knows.
func checkPanelValues(t *testing.T, q Query, res []Sample, tn *tunnel) {
	t.Helper()
	byLabel := func(label, value string) (float64, bool) {
		for _, s := range res {
			if s.Labels[label] == value {
				return s.Value, true
			}
		}
		return 0, false
	}
	want := func(ok bool, format string, args ...any) {
		if !ok {
			t.Errorf("%s/%s: "+format+" (got %v)", append([]any{q.Panel, q.RefID}, append(args, res)...)...)
		}
	}
	peer := func(i int) string { return tn.hosts[i].IP.String() }
	mode := string(tn.mode)
	switch q.Panel + "/" + q.RefID {
	case "Scrape up/A", "Datapath stats readable/A", "Ports ready / desired/A":
		for _, s := range res {
			want(s.Value == 1, "want 1 for every agent")
		}
	case "Throughput per peer/A":
		v, ok := byLabel("peer", peer(1))
		want(ok && v > 1e6, "tx toward %q above 1 Mbit/s", peer(1))
	case "Throughput per peer/B":
		v, ok := byLabel("peer", peer(0))
		want(ok && v > 1e6, "rx from %q above 1 Mbit/s", peer(0))
	case "Merge ratio/A", "Merge ratio/B":
		v, ok := byLabel("mode", mode)
		want(ok && v > 1.5, "more than 1.5 wire segments per frame")
	case "Userspace share/A":
		v, ok := byLabel("mode", mode)
		want(ok && v > 0 && v < 1, "small frames delivered in the kernel (fast path), merged ones from userspace")
	case "Exceptions to userspace (mode=ip)/A":
		v, ok := byLabel("reason", "multi_segment")
		want(ok && v > 0, "multi-segment messages handed to userspace")
	case "Reconcile latency/B":
		want(len(res) == 2 && res[0].Value > 0, "a p99 per agent")
	}
}

// modeOnly are the metrics only one mode exports (docs/metrics.md).
var modeOnly = map[string]offload.Mode{
	"sclp_ovs_exceptions_total": offload.ModeIP,
	"sclp_ovs_tx_frames_total":  offload.ModeUDP,
}

// otherModeOnly reports whether expr uses a metric that only a mode other than mode exports.
func otherModeOnly(expr string, mode offload.Mode) (string, bool) {
	for _, m := range MetricNames(expr) {
		if only, ok := modeOnly[m]; ok && only != mode {
			return m, true
		}
	}
	return "", false
}
