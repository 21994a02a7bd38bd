//go:build linux

package metrics

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
)

// BenchmarkGather measures one scrape's collection (Gather, without HTTP encoding) of an
// agent with 100 mode=udp ports and a mode=ip datapath with its fallback: the cost is per
// scrape, never per packet.
func BenchmarkGather(b *testing.B) {
	var us udp.Stats
	us.Ports = map[string]udp.PortStats{}
	peers := map[string]netip.Addr{}
	for i := range 100 {
		name := fmt.Sprintf("sclp0a0000%02x", i)
		us.Ports[name] = udp.PortStats{TxFrames: uint64(i), TxBytes: 1500 * uint64(i)}
		peers[name] = netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
	}
	var bs bpf.Stats
	bs.TxMessages = 7
	ip := &fakeIPDP{st: bs, fb: fallback.Stats{InjectedFrames: 3}}
	reg := prometheus.NewRegistry()
	rec := &ReconcileRecorder{}
	_, err := New(reg, Options{
		Datapaths: map[offload.Mode]DatapathSource{
			offload.ModeUDP: UDPSource{Datapath: fakeUDP{us}, Peers: func() map[string]netip.Addr { return peers }},
			offload.ModeIP:  IPSource{Datapath: ip, Fallback: fallbackAdapter{ip}},
		},
		Controller: &fakeController{st: ControllerStats{PortsDesired: 101, PortsReady: 101, Reconcile: rec.Snapshot()}},
	})
	if err != nil {
		b.Fatal(err)
	}
	mfs, _ := reg.Gather()
	series := 0
	for _, mf := range mfs {
		series += len(mf.GetMetric())
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(series), "series")
}

// BenchmarkGatherBaseline gathers the same number of series (1273) kept the usual way, in
// client_golang CounterVecs updated by the code, as the baseline for BenchmarkGather.
func BenchmarkGatherBaseline(b *testing.B) {
	reg := prometheus.NewRegistry()
	const families, perFamily = 19, 67 // 1273 series
	for f := range families {
		cv := prometheus.NewCounterVec(prometheus.CounterOpts{Name: fmt.Sprintf("baseline_%d_total", f), Help: "baseline"},
			[]string{"mode", "port", "peer"})
		reg.MustRegister(cv)
		for i := range perFamily {
			cv.WithLabelValues("udp", fmt.Sprintf("sclp%d", i), fmt.Sprintf("10.0.0.%d", i)).Add(float64(i))
		}
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		if _, err := reg.Gather(); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(families*perFamily, "series")
}
