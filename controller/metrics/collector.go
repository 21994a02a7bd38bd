package metrics

import (
	"errors"
	"fmt"
	"sort"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// ErrNoSources is returned by New when Options name no source at all.
var ErrNoSources = errors.New("metrics: no statistics source")

// Options configure a Collector.
type Options struct {
	// Datapaths are the datapaths by mode; each becomes the "mode" label of its metrics and
	// the source "datapath_<mode>" of sclp_ovs_source_up.
	Datapaths map[offload.Mode]DatapathSource
	// Controller is the reconciler (optional; without it the controller metrics are absent).
	Controller ControllerSource
	// Version is the build_info version label (optional).
	Version string
	// OnError, if set, is told about every failed source read (the scrape goes on without
	// that source and sclp_ovs_source_up reports 0).
	OnError func(source string, err error)
}

// Collector is a prometheus.Collector that reads its sources at scrape time.
type Collector struct {
	o     Options
	d     *descs
	modes []offload.Mode
}

var _ prometheus.Collector = (*Collector)(nil)

// NewCollector returns a collector for opts without registering it.
func NewCollector(opts Options) (*Collector, error) {
	if len(opts.Datapaths) == 0 && opts.Controller == nil {
		return nil, ErrNoSources
	}
	c := &Collector{o: opts, d: newDescs()}
	for m := range opts.Datapaths {
		c.modes = append(c.modes, m)
	}
	sort.Slice(c.modes, func(i, j int) bool { return c.modes[i] < c.modes[j] })
	return c, nil
}

// New returns a collector for opts registered on reg.
func New(reg prometheus.Registerer, opts Options) (*Collector, error) {
	c, err := NewCollector(opts)
	if err != nil {
		return nil, err
	}
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("register metrics collector: %w", err)
	}
	return c, nil
}

// Describe sends every descriptor the collector can emit.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range c.d.all() {
		ch <- d
	}
}

// Collect reads every source once and sends its metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.o.Version != "" {
		ch <- prometheus.MustNewConstMetric(c.d.buildInfo, prometheus.GaugeValue, 1, c.o.Version)
	}
	for _, m := range c.modes {
		source := "datapath_" + string(m)
		st, err := c.o.Datapaths[m].DatapathStats()
		if err != nil {
			if c.o.OnError != nil {
				c.o.OnError(source, err)
			}
			ch <- prometheus.MustNewConstMetric(c.d.sourceUp, prometheus.GaugeValue, 0, source)
			continue
		}
		ch <- prometheus.MustNewConstMetric(c.d.sourceUp, prometheus.GaugeValue, 1, source)
		c.collectDatapath(ch, string(m), st)
	}
	if c.o.Controller != nil {
		c.collectController(ch, c.o.Controller.ControllerStats())
	}
}

// sampleKey identifies a series; samples with the same key are summed (a source may report
// one counter in parts, e.g. per worker).
type sampleKey struct {
	c                                   Counter
	port, peer, path, direction, reason string
}

func (c *Collector) collectDatapath(ch chan<- prometheus.Metric, mode string, st DatapathStats) {
	sums := make(map[sampleKey]uint64, len(st.Samples))
	var order []sampleKey
	for _, s := range st.Samples {
		if s.Counter >= numCounters {
			continue
		}
		k := sampleKey{c: s.Counter, port: s.Port, peer: s.Peer, path: s.Path, direction: s.Direction, reason: s.Reason}
		if _, ok := sums[k]; !ok {
			order = append(order, k)
		}
		sums[k] += s.Value
	}
	for _, k := range order {
		var lv []string
		switch k.c {
		case RxFrames, RxFrameBytes:
			lv = []string{mode, k.port, k.peer, k.path}
		case Exceptions:
			lv = []string{mode, k.reason}
		case Drops:
			lv = []string{mode, k.port, k.peer, k.direction, k.reason}
		default:
			lv = []string{mode, k.port, k.peer}
		}
		ch <- prometheus.MustNewConstMetric(c.d.counters[k.c], prometheus.CounterValue, float64(sums[k]), lv...)
	}
	if r := st.Reassembly; r != nil {
		cnt := func(d *prometheus.Desc, v uint64) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), mode)
		}
		cnt(c.d.reasmCompleted, r.Completed)
		cnt(c.d.reasmCompletedBytes, r.CompletedBytes)
		cnt(c.d.reasmTimedOut, r.TimedOut)
		cnt(c.d.reasmEvicted, r.Evicted)
		ch <- prometheus.MustNewConstMetric(c.d.reasmBufferedBytes, prometheus.GaugeValue, float64(r.BufferedBytes), mode)
		ch <- prometheus.MustNewConstMetric(c.d.reasmBufferedMessages, prometheus.GaugeValue, float64(r.BufferedMessages), mode)
	}
}

func (c *Collector) collectController(ch chan<- prometheus.Metric, st ControllerStats) {
	g := func(d *prometheus.Desc, v float64) { ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v) }
	g(c.d.portsDesired, float64(st.PortsDesired))
	g(c.d.portsReady, float64(st.PortsReady))
	g(c.d.ovsdbConnected, boolValue(st.OVSDBConnected))
	g(c.d.openflowConnected, boolValue(st.OpenFlowConnected))
	rs := st.Reconcile
	ch <- prometheus.MustNewConstMetric(c.d.reconcilePasses, prometheus.CounterValue, float64(rs.Passes))
	if rs.Buckets != nil { // errors and durations are known only with a recorder
		ch <- prometheus.MustNewConstMetric(c.d.reconcileErrors, prometheus.CounterValue, float64(rs.Errors))
		ch <- prometheus.MustNewConstHistogram(c.d.reconcileDur, rs.Count, rs.Sum, rs.Buckets)
	}
}

func boolValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
