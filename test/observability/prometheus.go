package observability

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// PrometheusBinary is Debian's prometheus server.
const PrometheusBinary = "/usr/bin/prometheus"

// PrometheusOptions configure StartPrometheus.
type PrometheusOptions struct {
	// Dir holds the configuration and the TSDB (a test's TempDir).
	Dir string
	// Listen is the web/API address inside the namespace (default 127.0.0.1:9090).
	Listen string
	// Targets are the scrape targets (host:port of /metrics endpoints in the namespace), each
	// with its own labels (e.g. host="h1").
	Targets []Target
	// ScrapeInterval (default 1 s).
	ScrapeInterval time.Duration
}

// Target is one scrape target.
type Target struct {
	Addr   string
	Labels map[string]string
}

// Prometheus is a prometheus server running in a test namespace and a client of its HTTP API.
type Prometheus struct {
	NS     *testbed.NS
	Addr   string
	Proc   *testbed.Proc
	client *http.Client
}

// StartPrometheus writes a configuration scraping opts.Targets, starts prometheus in ns with
// its TSDB under opts.Dir (tb.Cleanup stops it by PID), and waits (bounded) until it is ready.
func StartPrometheus(tb testbed.TB, ns *testbed.NS, opts PrometheusOptions) *Prometheus {
	tb.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:9090"
	}
	if opts.ScrapeInterval <= 0 {
		opts.ScrapeInterval = time.Second
	}
	if _, err := os.Stat(PrometheusBinary); err != nil {
		tb.Fatalf("prometheus is required (Debian package prometheus, `make deps`): %v", err)
	}
	cfg := filepath.Join(opts.Dir, "prometheus.yml")
	if err := os.WriteFile(cfg, []byte(config(opts)), 0o644); err != nil {
		tb.Fatalf("write prometheus config: %v", err)
	}
	p := &Prometheus{NS: ns, Addr: opts.Listen, client: nsClient(ns)}
	p.Proc = ns.StartProc(tb, PrometheusBinary, "--config.file="+cfg,
		"--storage.tsdb.path="+filepath.Join(opts.Dir, "tsdb"), "--web.listen-address="+opts.Listen,
		"--storage.tsdb.retention.time=1h", "--log.level=warn")
	deadline := time.Now().Add(30 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		code, _, err := p.get(ctx, "/-/ready")
		cancel()
		if err == nil && code == http.StatusOK {
			return p
		}
		select {
		case <-p.Proc.Done():
			tb.Fatalf("prometheus exited: %v\n%s", p.Proc.Err(), p.Proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("prometheus not ready after 30 s (last: %d %v)\n%s", code, err, p.Proc.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// config renders the prometheus.yml for opts.
func config(opts PrometheusOptions) string {
	iv := opts.ScrapeInterval.String()
	var b strings.Builder
	fmt.Fprintf(&b, "global:\n  scrape_interval: %s\n  scrape_timeout: %s\n  evaluation_interval: %s\n", iv, iv, iv)
	b.WriteString("scrape_configs:\n  - job_name: sclp-ovs\n    static_configs:\n")
	for _, t := range opts.Targets {
		fmt.Fprintf(&b, "      - targets: [%q]\n", t.Addr)
		if len(t.Labels) > 0 {
			b.WriteString("        labels:\n")
			for k, v := range t.Labels {
				fmt.Fprintf(&b, "          %s: %q\n", k, v)
			}
		}
	}
	return b.String()
}

// nsClient is an HTTP client whose connections are opened inside ns (loopback there).
func nsClient(ns *testbed.NS) *http.Client {
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		var c net.Conn
		err := ns.Do(func() (err error) {
			var d net.Dialer
			c, err = d.DialContext(ctx, network, addr)
			return err
		})
		return c, err
	}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: dial, DisableKeepAlives: true}}
}

// Get fetches path from an HTTP server at addr inside ns and returns status and body.
func Get(ctx context.Context, ns *testbed.NS, addr, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+path, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := nsClient(ns).Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, string(b), err
}

func (p *Prometheus) get(ctx context.Context, path string) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+p.Addr+path, nil)
	if err != nil {
		return 0, nil, err
	}
	resp, err := p.client.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	return resp.StatusCode, b, err
}

// Sample is one element of an instant vector.
type Sample struct {
	Labels map[string]string
	Value  float64
}

// String formats the sample like PromQL output.
func (s Sample) String() string {
	var kv []string
	for k, v := range s.Labels {
		kv = append(kv, k+"="+strconv.Quote(v))
	}
	return fmt.Sprintf("{%s} %g", strings.Join(kv, ","), s.Value)
}

// Query evaluates expr at time at through /api/v1/query and returns the instant vector (a
// scalar result becomes one sample without labels).
func (p *Prometheus) Query(ctx context.Context, expr string, at time.Time) ([]Sample, error) {
	q := url.Values{"query": {expr}, "time": {strconv.FormatFloat(float64(at.UnixMilli())/1000, 'f', 3, 64)}}
	code, body, err := p.get(ctx, "/api/v1/query?"+q.Encode())
	if err != nil {
		return nil, err
	}
	var r struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			ResultType string          `json:"resultType"`
			Result     json.RawMessage `json:"result"`
		} `json:"data"`
	}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, fmt.Errorf("query %q: HTTP %d: %s", expr, code, body)
	}
	if r.Status != "success" {
		return nil, fmt.Errorf("query %q: %s", expr, r.Error)
	}
	switch r.Data.ResultType {
	case "vector":
		var vec []struct {
			Metric map[string]string `json:"metric"`
			Value  [2]any            `json:"value"`
		}
		if err := json.Unmarshal(r.Data.Result, &vec); err != nil {
			return nil, err
		}
		out := make([]Sample, 0, len(vec))
		for _, s := range vec {
			v, err := parseValue(s.Value[1])
			if err != nil {
				return nil, err
			}
			out = append(out, Sample{Labels: s.Metric, Value: v})
		}
		return out, nil
	case "scalar":
		var sc [2]any
		if err := json.Unmarshal(r.Data.Result, &sc); err != nil {
			return nil, err
		}
		v, err := parseValue(sc[1])
		return []Sample{{Value: v}}, err
	}
	return nil, fmt.Errorf("query %q: result type %s", expr, r.Data.ResultType)
}

func parseValue(v any) (float64, error) {
	s, ok := v.(string)
	if !ok {
		return 0, fmt.Errorf("sample value %v is not a string", v)
	}
	return strconv.ParseFloat(s, 64) // accepts NaN, +Inf, -Inf
}
