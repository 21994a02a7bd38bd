package offload

import (
	"encoding/json"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// iperf runs a TCP iperf3 test (64 KB writes) from client to server and returns Gbit/s.
func iperf(b *testing.B, client, server *testbed.NS, dst netip.Addr, secs int) float64 {
	b.Helper()
	srv := server.StartProc(b, "iperf3", "-s", "-1", "-B", dst.String())
	defer srv.Stop(time.Second)
	time.Sleep(300 * time.Millisecond)
	out, err := client.Run("iperf3", "-c", dst.String(), "-t", strconv.Itoa(secs), "-l", "64K", "-J")
	if err != nil {
		b.Fatalf("iperf3: %v\n%s", err, out)
	}
	var res struct {
		End struct {
			SumReceived struct {
				BitsPerSecond float64 `json:"bits_per_second"`
			} `json:"sum_received"`
		} `json:"end"`
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		b.Fatalf("iperf3 json: %v", err)
	}
	return res.End.SumReceived.BitsPerSecond / 1e9
}

func benchSecs() int {
	if s, err := strconv.Atoi(os.Getenv("SCLP_BENCH_SECS")); err == nil && s > 0 {
		return s
	}
	return 5
}

// BenchmarkThroughputNative compares, in one run on the same kind of topology and wire
// (two hosts, veth underlay with real 1500-byte frames, receiver GRO on, VM namespaces with
// offloads on, one TCP stream, 64 KB writes): no encapsulation (host to host), kernel VXLAN
// (a vxlan device moved into each VM namespace) and native SCLP (tc-BPF + userspace
// fallback). It reports Gbit/s of each and the SCLP/VXLAN ratio, plus the BPF run time per
// segment while SCLP runs. SCLP_BENCH_SECS sets the iperf3 duration (default 5);
// SCLP_BENCH_ONLY=sclp runs only the SCLP case (for profiling with perf).
func BenchmarkThroughputNative(b *testing.B) {
	testbed.RequireRoot(b)
	secs := benchSecs()
	var plain, vxlan, native float64
	var txNs, rxNs float64
	only := os.Getenv("SCLP_BENCH_ONLY") // "sclp": skip the baselines (for profiling)
	for range b.N {
		if only != "sclp" {
			hosts := testbed.NewHosts(b, testbed.HostsOptions{Prefix: "tp"})
			plain = iperf(b, hosts[0].NS, hosts[1].NS, hosts[1].IP, secs)
		}
		if only != "sclp" {
			hosts := testbed.NewHosts(b, testbed.HostsOptions{Prefix: "tv"})
			var vms []*testbed.NS
			for i, h := range hosts {
				vm := testbed.NewNS(b, "tvm")
				h.MustRun(b, "ip", "link", "add", "vx0", "type", "vxlan", "id", "42", "local", h.IP.String(),
					"remote", hosts[1-i].IP.String(), "dstport", "4789", "dev", h.Underlay)
				h.MustRun(b, "ip", "link", "set", "vx0", "netns", vm.Name)
				vm.MustRun(b, "ip", "addr", "add", fmt.Sprintf("192.168.88.%d/24", i+1), "dev", "vx0")
				vm.MustRun(b, "ip", "link", "set", "vx0", "up")
				vms = append(vms, vm)
			}
			vxlan = iperf(b, vms[0], vms[1], netip.MustParseAddr("192.168.88.2"), secs)
		}
		{
			bed := newNativeBed(b, bedOptions{VMOffloads: true, Fallback: true})
			stop, err := ebpf.EnableStats(uint32(unix.BPF_STATS_RUN_TIME))
			if err != nil {
				b.Fatal(err)
			}
			s0, r0 := bed.stats(0), bed.stats(1)
			p0, _ := bed.manager(0).ProgramStats()
			q0, _ := bed.manager(1).ProgramStats()
			native = iperf(b, bed.vms[0].NS, bed.vms[1].NS, bed.vms[1].IP, secs)
			p1, _ := bed.manager(0).ProgramStats()
			q1, _ := bed.manager(1).ProgramStats()
			s1, r1 := bed.stats(0), bed.stats(1)
			stop.Close()
			segs := float64(s1.TxSegments - s0.TxSegments)
			txNs = float64(p1[bpf.ProgTx].Runtime-p0[bpf.ProgTx].Runtime) / segs
			rxNs = float64(q1[bpf.ProgRx].Runtime-q0[bpf.ProgRx].Runtime) / float64(r1.RxSegments-r0.RxSegments)
			b.Logf("sclp tx host: %+v", s1.Sub(s0))
			b.Logf("sclp rx host: %+v", r1.Sub(r0))
		}
	}
	b.ReportMetric(plain, "plain-Gbit/s")
	b.ReportMetric(vxlan, "vxlan-Gbit/s")
	b.ReportMetric(native, "sclp-Gbit/s")
	b.ReportMetric(native/vxlan, "sclp/vxlan")
	b.ReportMetric(txNs, "tx-bpf-ns/segment")
	b.ReportMetric(rxNs, "rx-bpf-ns/segment")
}

// BenchmarkThroughputJumboOverlay: VM MTU 8000 over the same 1500-byte underlay, one TCP
// stream, 64 KB writes: kernel VXLAN (vx0 MTU 8000: the outer packets are IP-fragmented),
// SCLP with VM TSO off (every frame <= 8014 bytes is reassembled in BPF and delivered as one
// frame) and SCLP with VM TSO on (64 KB frames: userspace fallback, GSO injection).
func BenchmarkThroughputJumboOverlay(b *testing.B) {
	testbed.RequireRoot(b)
	secs := benchSecs()
	var vxlan, merged, tso float64
	for range b.N {
		{
			hosts := testbed.NewHosts(b, testbed.HostsOptions{Prefix: "jv"})
			var vms []*testbed.NS
			for i, h := range hosts {
				vm := testbed.NewNS(b, "jvm")
				h.MustRun(b, "ip", "link", "add", "vx0", "mtu", "8000", "type", "vxlan", "id", "42", "local", h.IP.String(),
					"remote", hosts[1-i].IP.String(), "dstport", "4789", "dev", h.Underlay)
				h.MustRun(b, "ip", "link", "set", "vx0", "netns", vm.Name)
				vm.MustRun(b, "ip", "addr", "add", fmt.Sprintf("192.168.89.%d/24", i+1), "dev", "vx0")
				vm.MustRun(b, "ip", "link", "set", "vx0", "up")
				vms = append(vms, vm)
			}
			vxlan = iperf(b, vms[0], vms[1], netip.MustParseAddr("192.168.89.2"), secs)
		}
		{
			bed := newNativeBed(b, bedOptions{InnerMTU: 8000, Fallback: true})
			before := bed.stats(1)
			merged = iperf(b, bed.vms[0].NS, bed.vms[1].NS, bed.vms[1].IP, secs)
			d := bed.stats(1).Sub(before)
			b.Logf("sclp, VM TSO off: merged in BPF %d frames from %d segments, exceptions %d",
				d.RxMerged, d.RxMergeSegments, d.RxExcMulti+d.RxExcOutOfOrder+d.RxExcBusy+d.RxExcMergedRun)
		}
		{
			bed := newNativeBed(b, bedOptions{InnerMTU: 8000, VMOffloads: true, Fallback: true})
			tso = iperf(b, bed.vms[0].NS, bed.vms[1].NS, bed.vms[1].IP, secs)
		}
	}
	b.ReportMetric(vxlan, "vxlan-Gbit/s")
	b.ReportMetric(merged, "sclp-bpf-merge-Gbit/s")
	b.ReportMetric(tso, "sclp-tso-fallback-Gbit/s")
}
