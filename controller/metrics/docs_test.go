package metrics

import (
	"bufio"
	"os"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// docPath is the metric reference that must match the code.
const docPath = "../../docs/metrics.md"

// docMetric is one row of the table in docs/metrics.md.
type docMetric struct {
	typ, help string
	labels    []string
}

// gatheredFamilies gathers reg and returns the sclp_ovs_ families by name.
func gatheredFamilies(tb testing.TB, reg prometheus.Gatherer) map[string]*dto.MetricFamily {
	tb.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		tb.Fatal(err)
	}
	out := map[string]*dto.MetricFamily{}
	for _, mf := range mfs {
		if strings.HasPrefix(mf.GetName(), Prefix) {
			out[mf.GetName()] = mf
		}
	}
	return out
}

var descName = regexp.MustCompile(`fqName: "([^"]+)"`)

// describedNames returns the names of every descriptor the collector describes.
func describedNames(tb testing.TB) []string {
	tb.Helper()
	c, err := NewCollector(Options{Controller: &fakeController{}})
	if err != nil {
		tb.Fatal(err)
	}
	ch := make(chan *prometheus.Desc, 100)
	c.Describe(ch)
	close(ch)
	var names []string
	for d := range ch {
		m := descName.FindStringSubmatch(d.String())
		if m == nil {
			tb.Fatalf("cannot read the name of %s", d)
		}
		names = append(names, m[1])
	}
	sort.Strings(names)
	return names
}

// parseDoc reads the metric table: rows "| `name` | type | `l1`, `l2` | help |".
func parseDoc(tb testing.TB) map[string]docMetric {
	tb.Helper()
	f, err := os.Open(docPath)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	out := map[string]docMetric{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if !strings.HasPrefix(line, "| `"+Prefix) {
			continue
		}
		cells := strings.Split(strings.Trim(line, "|"), "|")
		if len(cells) != 4 {
			tb.Fatalf("%s: row with %d cells, want 4: %s", docPath, len(cells), line)
		}
		name := strings.Trim(strings.TrimSpace(cells[0]), "`")
		var labels []string
		for _, l := range strings.Split(cells[2], ",") {
			if l = strings.Trim(strings.TrimSpace(l), "`"); l != "" && l != "-" {
				labels = append(labels, l)
			}
		}
		sort.Strings(labels)
		if _, dup := out[name]; dup {
			tb.Errorf("%s lists %s twice", docPath, name)
		}
		out[name] = docMetric{typ: strings.TrimSpace(cells[1]), help: strings.TrimSpace(cells[3]), labels: labels}
	}
	if len(out) == 0 {
		tb.Fatalf("%s has no metric table", docPath)
	}
	return out
}

// TestDocMatchesCode fails when docs/metrics.md and the collector differ in any metric,
// type, label or help text.
func TestDocMatchesCode(t *testing.T) {
	doc := parseDoc(t)
	got := gatheredFamilies(t, fullRegistry(t))
	for name, mf := range got {
		d, ok := doc[name]
		if !ok {
			t.Errorf("%s is exported but missing from %s", name, docPath)
			continue
		}
		if typ := strings.ToLower(mf.GetType().String()); typ != d.typ {
			t.Errorf("%s: type %s in code, %s in the doc", name, typ, d.typ)
		}
		if mf.GetHelp() != d.help {
			t.Errorf("%s: help differs\ncode: %s\ndoc:  %s", name, mf.GetHelp(), d.help)
		}
		var labels []string
		for _, lp := range mf.GetMetric()[0].GetLabel() {
			if lp.GetName() != "le" {
				labels = append(labels, lp.GetName())
			}
		}
		sort.Strings(labels)
		if !slices.Equal(labels, d.labels) {
			t.Errorf("%s: labels %v in code, %v in the doc", name, labels, d.labels)
		}
	}
	for name := range doc {
		if _, ok := got[name]; !ok {
			t.Errorf("%s is documented but the code does not export it", name)
		}
	}
}
