package main

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// benchNamespaces lists the network namespaces the harness names (every model's Short starts
// with "b" and is followed by a host or VM suffix).
func benchNamespaces(t *testing.T) map[string]bool {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	shorts := map[string]bool{}
	for _, m := range models() {
		shorts[m.Short] = true
	}
	got := map[string]bool{}
	for _, l := range strings.Split(string(out), "\n") {
		f := strings.Fields(l)
		if len(f) == 0 {
			continue
		}
		name := f[0]
		if i := strings.LastIndexByte(name, '-'); i > 1 && shorts[strings.TrimRight(name[:i], "12v")] {
			got[name] = true
		}
	}
	return got
}

// TestSmoke runs the whole harness on a tiny configuration: the kernel baselines must
// measure traffic with frames on the wire, every requested model gets rows (measured or
// failed with its error), the outputs are written, and nothing is left behind.
func TestSmoke(t *testing.T) {
	testbed.RequireRoot(t)
	before := benchNamespaces(t)
	cfg := Config{Models: []string{"noencap", "vxlan", "sclp-udp"}, Runs: 1, Duration: time.Second,
		Points: []Point{{TCP, 1, 65536}, {UDP, 1, 1024}}, OutDir: t.TempDir(), SearchRuns: 2, SearchSizes: []int{1024}}
	rep := Measure(context.Background(), cfg, UI{Log: t.Logf})
	if len(rep.Rows) != len(cfg.Models)*len(cfg.Points) {
		t.Fatalf("%d rows, want %d: %+v", len(rep.Rows), len(cfg.Models)*len(cfg.Points), rep.Rows)
	}
	for _, r := range rep.Rows {
		t.Logf("%s %s: %.2f Gbit/s loss %.1f%% wire %.0f (avg %.0f B) delivered %.0f cores %.2f err %q", r.Model, r.Point,
			r.Gbps, r.LossPct, r.WirePkts, r.WireFrameBytes, r.DeliveredPkts, r.CPUCores, r.Error)
		if !r.OK() {
			if r.Model != "sclp-udp" || r.Error == "" {
				t.Errorf("%s %s failed: %s", r.Model, r.Point, r.Error)
			}
			continue
		}
		if r.Gbps <= 0 || r.WirePkts <= 0 || r.DeliveredPkts <= 0 || r.CPUCores <= 0 {
			t.Errorf("%s %s measured nothing: %+v", r.Model, r.Point, r)
		}
		// The wire carries real frames: none of the 64 KB skbs a veth would pass with offloads
		// on (rx_bytes counts the frame without its 14-byte Ethernet header).
		if r.WireFrameBytes <= 0 || r.WireFrameBytes > 1500 {
			t.Errorf("%s %s: average wire frame %.0f bytes: the wire does not carry real 1500-byte frames",
				r.Model, r.Point, r.WireFrameBytes)
		}
	}
	// Every model measured at the UDP point was searched for its sustained rate, with offered
	// rates actually applied (iperf3 -b) and a passing result within the loss limit.
	udpOK := 0
	for _, r := range rep.Rows {
		if r.OK() && r.Point.Proto == UDP {
			udpOK++
		}
	}
	if len(rep.Sustained) != udpOK {
		t.Errorf("%d sustained-rate searches, want %d", len(rep.Sustained), udpOK)
	}
	for _, s := range rep.Sustained {
		t.Logf("%s %s sustained: %s (%d runs)", s.Model, s.Point, sustainedCell(s), len(s.Trace))
		if len(s.Trace) == 0 || len(s.Trace) > cfg.SearchRuns || s.Err != "" {
			t.Errorf("%s: %d runs, error %q", s.Model, len(s.Trace), s.Err)
		}
		if s.OK && (s.Best.Sample.LossPct > MaxSustainedLossPct || s.Best.Sample.Gbps <= 0) {
			t.Errorf("%s: sustained result %+v", s.Model, s.Best.Sample)
		}
	}
	if _, err := WriteOutputs(rep); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{"results.csv", "sustained.csv", "summary.md", PlotFiles[0]} {
		if st, err := os.Stat(filepath.Join(cfg.OutDir, f)); err != nil || st.Size() == 0 {
			t.Errorf("%s not written: %v", f, err)
		}
	}
	for ns := range benchNamespaces(t) {
		if !before[ns] {
			t.Errorf("namespace %s left behind", ns)
		}
	}
}

// TestSmokeInterrupted cancels a run in the middle (as Ctrl-C does): the run stops, says so,
// and removes everything it built.
func TestSmokeInterrupted(t *testing.T) {
	testbed.RequireRoot(t)
	before := benchNamespaces(t)
	cfg := Config{Models: []string{"vxlan"}, Runs: 5, Duration: 2 * time.Second,
		Points: []Point{{TCP, 1, 65536}}, OutDir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	logf := func(format string, args ...any) {
		t.Logf(format, args...)
		if strings.Contains(format, "run %d") { // the first measurement is done
			cancel()
		}
	}
	start := time.Now()
	rep := Measure(ctx, cfg, UI{Log: logf})
	if !rep.Interrupted {
		t.Error("run not marked interrupted")
	}
	if n := len(rep.Samples); n >= cfg.Runs {
		t.Errorf("%d samples after the interrupt: the run went on", n)
	}
	t.Logf("interrupted run took %v", time.Since(start))
	for ns := range benchNamespaces(t) {
		if !before[ns] {
			t.Errorf("namespace %s left behind after the interrupt", ns)
		}
	}
}
