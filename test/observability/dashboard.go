package observability

import (
	"encoding/json"
	"fmt"
	"os"
	"regexp"
	"sort"
	"strings"
)

// Query is one PromQL expression of the dashboard and where it is.
type Query struct {
	// Panel is the panel title ("variable NAME" for a template variable).
	Panel string
	// RefID is the target's refId.
	RefID string
	// Expr is the expression as written in the dashboard (Grafana variables unexpanded).
	Expr string
}

// panel is the part of a Grafana panel that the tests read.
type panel struct {
	ID         int             `json:"id"`
	Type       string          `json:"type"`
	Title      string          `json:"title"`
	Datasource json.RawMessage `json:"datasource"`
	Targets    []struct {
		RefID string `json:"refId"`
		Expr  string `json:"expr"`
	} `json:"targets"`
	Panels []panel `json:"panels"` // rows
}

// Dashboard is a parsed Grafana dashboard.
type Dashboard struct {
	Title      string  `json:"title"`
	UID        string  `json:"uid"`
	Panels     []panel `json:"panels"`
	Templating struct {
		List []struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			Definition string `json:"definition"`
		} `json:"list"`
	} `json:"templating"`
}

// LoadDashboard reads and parses a dashboard JSON file.
func LoadDashboard(path string) (*Dashboard, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d Dashboard
	if err := json.Unmarshal(b, &d); err != nil {
		return nil, fmt.Errorf("parse dashboard %s: %w", path, err)
	}
	return &d, nil
}

// Panels returns every panel, rows' nested panels included, rows excluded.
func (d *Dashboard) panels() []panel {
	var out []panel
	var walk func([]panel)
	walk = func(ps []panel) {
		for _, p := range ps {
			if p.Type != "row" {
				out = append(out, p)
			}
			walk(p.Panels)
		}
	}
	walk(d.Panels)
	return out
}

// labelValues matches a Grafana label_values(METRIC, LABEL) variable query.
var labelValues = regexp.MustCompile(`^label_values\(\s*(.+?)\s*,\s*[a-zA-Z_]+\s*\)$`)

// Queries returns every PromQL expression: each panel target, and the series selector of each
// query variable (label_values(SELECTOR, label) evaluates SELECTOR).
func (d *Dashboard) Queries() []Query {
	var out []Query
	for _, v := range d.Templating.List {
		if v.Type != "query" {
			continue
		}
		expr := v.Definition
		if m := labelValues.FindStringSubmatch(expr); m != nil {
			expr = m[1]
		}
		out = append(out, Query{Panel: "variable " + v.Name, RefID: v.Name, Expr: expr})
	}
	for _, p := range d.panels() {
		for _, t := range p.Targets {
			out = append(out, Query{Panel: p.Title, RefID: t.RefID, Expr: t.Expr})
		}
	}
	return out
}

// Expand replaces Grafana's variables in expr: $__rate_interval (and $__interval) by
// rateWindow, and every other $name or ${name} by vars[name].
func Expand(expr, rateWindow string, vars map[string]string) string {
	expr = strings.NewReplacer("$__rate_interval", rateWindow, "${__rate_interval}", rateWindow,
		"$__interval", rateWindow, "${__interval}", rateWindow).Replace(expr)
	names := make([]string, 0, len(vars))
	for k := range vars {
		names = append(names, k)
	}
	sort.Slice(names, func(i, j int) bool { return len(names[i]) > len(names[j]) }) // longest first
	for _, k := range names {
		expr = strings.ReplaceAll(expr, "${"+k+"}", vars[k])
		expr = strings.ReplaceAll(expr, "$"+k, vars[k])
	}
	return expr
}

// metricName matches identifiers that can be metric names in PromQL; MetricNames filters.
var metricName = regexp.MustCompile(`[a-zA-Z_:][a-zA-Z0-9_:]*`)

// MetricNames returns the sclp_ovs_ metric names expr refers to (label values and strings
// excluded), sorted and unique.
func MetricNames(expr string) []string {
	seen := map[string]bool{}
	inString := false
	var b strings.Builder
	for _, r := range expr { // blank out quoted strings (label values)
		switch {
		case r == '"':
			inString = !inString
			b.WriteRune(' ')
		case inString:
			b.WriteRune(' ')
		default:
			b.WriteRune(r)
		}
	}
	for _, m := range metricName.FindAllString(b.String(), -1) {
		if strings.HasPrefix(m, "sclp_ovs_") {
			seen[m] = true
		}
	}
	out := make([]string, 0, len(seen))
	for m := range seen {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}
