package observability

import (
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
)

// dashboardPath is the dashboard under test.
const dashboardPath = "../../deploy/grafana/sclp-ovs.json"

var fqName = regexp.MustCompile(`fqName: "([^"]+)"`)

// exportedNames returns every metric name the collector can export, histograms with their
// _bucket, _sum and _count series.
func exportedNames(tb testing.TB) map[string]bool {
	tb.Helper()
	c, err := metrics.NewCollector(metrics.Options{Controller: metrics.ControllerFunc(func() metrics.ControllerStats {
		return metrics.ControllerStats{}
	})})
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 128)
	c.Describe(ch)
	close(ch)
	out := map[string]bool{}
	for d := range ch {
		m := fqName.FindStringSubmatch(d.String())
		if m == nil {
			tb.Fatalf("no name in %s", d)
		}
		out[m[1]] = true
		if strings.HasSuffix(m[1], "_seconds") { // the histogram
			for _, s := range []string{"_bucket", "_sum", "_count"} {
				out[m[1]+s] = true
			}
		}
	}
	return out
}

// TestDashboardUsesOnlyRealMetrics: every query of the dashboard names only metrics that the
// collector exports, and the dashboard is well formed (unique panel ids, a data source and at
// least one query on every panel, unique refIds within a panel).
func TestDashboardUsesOnlyRealMetrics(t *testing.T) {
	d, err := LoadDashboard(dashboardPath)
	if err != nil {
		t.Fatal(err)
	}
	if d.UID == "" || d.Title == "" {
		t.Errorf("dashboard without uid or title")
	}
	known := exportedNames(t)
	used := map[string]bool{}
	qs := d.Queries()
	if len(qs) < 10 {
		t.Fatalf("only %d queries in the dashboard", len(qs))
	}
	for _, q := range qs {
		names := MetricNames(q.Expr)
		if len(names) == 0 && !strings.HasPrefix(strings.TrimSpace(q.Expr), "up") {
			t.Errorf("%s/%s: %q uses no sclp_ovs_ metric", q.Panel, q.RefID, q.Expr)
		}
		for _, n := range names {
			used[n] = true
			if !known[n] {
				t.Errorf("%s/%s: %q uses %s, which the collector does not export", q.Panel, q.RefID, q.Expr, n)
			}
		}
	}
	ids := map[int]bool{}
	for _, p := range d.panels() {
		if ids[p.ID] {
			t.Errorf("panel id %d used twice", p.ID)
		}
		ids[p.ID] = true
		if len(p.Datasource) == 0 || len(p.Targets) == 0 {
			t.Errorf("panel %q has no data source or no query", p.Title)
		}
		var refs []string
		for _, tg := range p.Targets {
			if slices.Contains(refs, tg.RefID) {
				t.Errorf("panel %q: refId %s twice", p.Title, tg.RefID)
			}
			refs = append(refs, tg.RefID)
		}
	}
	// The panels the operators asked for are there.
	for _, want := range []string{"Throughput per peer", "Packet rate per peer", "Merge ratio", "Userspace share",
		"Drops by reason", "Reassembly buffer occupancy", "OVSDB connected", "Ports ready / desired"} {
		found := false
		for _, p := range d.panels() {
			found = found || p.Title == want
		}
		if !found {
			t.Errorf("no panel %q", want)
		}
	}
	t.Logf("%d queries over %d metrics", len(qs), len(used))
}

func TestMetricNamesAndExpand(t *testing.T) {
	e := `sum by (mode) (rate(sclp_ovs_rx_frames_total{instance=~"$instance",path="sclp_ovs_fake"}[$__rate_interval])) / sclp_ovs_x_bucket`
	if got := MetricNames(e); !slices.Equal(got, []string{"sclp_ovs_rx_frames_total", "sclp_ovs_x_bucket"}) {
		t.Errorf("MetricNames = %v", got)
	}
	got := Expand(e, "10s", map[string]string{"instance": ".*"})
	if strings.Contains(got, "$") || !strings.Contains(got, `[10s]`) || !strings.Contains(got, `instance=~".*"`) {
		t.Errorf("Expand = %s", got)
	}
}
