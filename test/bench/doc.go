// Command bench is the benchmark harness behind `make bench`: it reproduces the paper's
// evaluation (throughput against write size, the pre-reassembly ablation, 2 and 4 flows, UDP
// throughput and loss) on namespace hosts joined by an underlay that carries real 1500-byte
// frames.
//
// Every model gets its own pair of hosts and VMs, built once at start:
//
//	VM1 ── veth ── host1 ══ underlay veth (1500 B frames, sender tso/gso/udp-seg off) ══ host2 ── veth ── VM2
//	iperf3 client                                                                            iperf3 server
//
// Models: noencap (VMs routed over the underlay), vxlan (kernel device, GRO on), sclp (mode=ip,
// tc-eBPF), sclp-udp (mode=udp), sclp-nomerge (mode=udp with the receive-side kernel merge
// disabled: the Fig. 9 ablation), sclp-jumbo and sclp-udp-jumbo (65000-byte inner MTU over the
// same wire) and ovs-vxlan, ovs-geneve, ovs-gre (Open vSwitch userspace tunnels in private
// instances). Models are interleaved: every run visits every point, and at every point every
// model, in a rotated order, so drift hits all alike; the median over runs is reported.
//
// Per measurement it records the receiver's iperf3 rate (and loss for UDP), the frames on the
// wire (receiving host's underlay rx_packets), the frames delivered to the receiving VM (its
// rx_packets), the machine's busy cores (/proc/stat) and the harness process's own CPU
// (getrusage: the in-process mode=udp datapaths). It then runs the Go and BPF
// microbenchmarks, and writes bench-results/results.csv, micro.csv, summary.md and PNG plots.
//
// BENCH_QUICK=1 runs a few points once for 3 s; BENCH_MODELS=a,b restricts the models;
// BENCH_OUT sets the output directory; BENCH_REPLOT=1 redraws the plots from BENCH_OUT/results.csv.
// See docs/benchmarks.md.
package main
