// Package observability proves the agent's metrics against a real Prometheus.
//
// The end-to-end test builds two namespace hosts joined by a real SCLP tunnel (mode=udp),
// sends traffic whose size the test knows exactly, serves the controller/metrics endpoint
// from the sending and receiving side, and starts Debian's prometheus (/usr/bin/prometheus)
// on loopback with a temporary configuration and TSDB scraping every second. It then
// evaluates every query of deploy/grafana/sclp-ovs.json through the Prometheus HTTP API,
// requires data for each, and checks the counters against the traffic sent.
//
// The non-test files hold the small pieces the tests share: reading the dashboard's queries
// (Dashboard, Query) and a Prometheus process and API client (Prometheus).
package observability
