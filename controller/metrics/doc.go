// Package metrics exports the agent's state to Prometheus and serves the health endpoints.
//
// Everything is read at scrape time from small source interfaces, so collecting costs
// nothing on the packet path:
//
//   - DatapathSource: one per encapsulation mode (the mode=udp datapath, the mode=ip tc-eBPF
//     manager with its userspace fallback). Adapters turn the datapaths' own statistics into
//     DatapathStats: FromUDP and UDPSource, FromBPF, FromFallback and IPSource.
//   - ControllerSource: ports desired and ready, reconcile passes, errors and latency (recorded
//     by a ReconcileRecorder), OVSDB and OpenFlow connectivity.
//
// New registers one Collector on an injected prometheus.Registerer; there is no global
// registry and no package state. Every metric name starts with "sclp_ovs_", counters end in
// "_total", and values are in base units (bytes, seconds). docs/metrics.md lists every metric;
// a test compares that table with what the collector really exports.
//
// Start serves /metrics, /healthz (liveness: every Live check passes, e.g. OVSDB reachable
// and programs attached) and /readyz (readiness: every Ready check passes, e.g. every desired
// port converged) on a loopback address by default (DefaultAddress). StartAgent builds a
// registry (Go and process collectors plus this collector) and the server in one call; Wire
// does that for `sclp-ovs agent --metrics-address` from the agent's real parts (reconciler,
// OVSDB store, datapaths, tracked OpenFlow client, pass recorder) and retries a busy address.
// AttachedCheck asks the kernel whether mode=ip's programs are attached.
package metrics
