// Package observability proves the agent's metrics against a real Prometheus.
//
// The end-to-end tests build namespace hosts joined by a real SCLP tunnel, send traffic whose
// size the test knows exactly, and have Debian's prometheus (/usr/bin/prometheus, temporary
// configuration and TSDB, scraping every second, in a test namespace) scrape the
// controller/metrics endpoints of both hosts:
//
//   - TestPrometheusScrapesTunnel and TestPrometheusScrapesIPMode drive the mode=udp and
//     mode=ip datapaths directly (the test runs the control loop);
//   - TestAgentMetrics runs the real `sclp-ovs agent` with private OVS instances in both
//     modes, with --metrics-address on the underlay and prometheus on a third host.
//
// Each evaluates every query of deploy/grafana/sclp-ovs.json through the Prometheus HTTP API,
// requires data, and checks the counters against the traffic sent and against the
// datapaths' own counters.
//
// The non-test files hold the small pieces the tests share: reading the dashboard's queries
// (Dashboard, Query) and a Prometheus process and API client (Prometheus).
package observability
