package main

import (
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
)

// Sample is one iperf3 run of one model at one point.
type Sample struct {
	Model string
	Point Point
	// Gbps is the receiver's goodput; LossPct the UDP loss iperf3 reports (0 for TCP).
	Gbps, LossPct float64
	// WirePkts counts frames received on the receiving host's underlay; DeliveredPkts frames
	// received by the receiving VM's device.
	WirePkts, DeliveredPkts uint64
	// WireBytes counts the bytes of those wire frames (their average size proves the wire
	// carried real MTU-sized frames).
	WireBytes uint64
	// CPUCores is the CPU attributable to the model, in cores: both iperf3 processes, the
	// harness process (the in-process SCLP datapaths), the model's daemons (ovs-vswitchd)
	// and the ksoftirqd threads. MachineCores is the machine's busy cores (/proc/stat, all
	// processes, including other work on the box). DatapathCores is the harness process's
	// own CPU; RxIperfCPU the iperf3 server's CPU in percent of one core.
	CPUCores, MachineCores, DatapathCores, RxIperfCPU float64
	// Err is set when the run failed.
	Err error
}

// Row is the median over the runs of one model at one point: one line of results.csv.
type Row struct {
	Model string
	Point Point
	// Runs counts the successful runs the medians are taken over; Failed the failed ones.
	Runs, Failed                                      int
	Gbps, GbpsMin, GbpsMax, LossPct                   float64
	WirePkts, DeliveredPkts                           float64
	CPUCores, MachineCores, DatapathCores, RxIperfCPU float64
	// WireFrameBytes is the median average size of a wire frame (rx_bytes / rx_packets of
	// the receiving underlay: the IP packet, without the Ethernet header).
	WireFrameBytes float64
	// Error is the last failure's message (empty when every run succeeded).
	Error string
}

// OK reports whether at least one run succeeded.
func (r Row) OK() bool { return r.Runs > 0 }

// MergeRatio is wire frames per delivered frame (0 when unknown).
func (r Row) MergeRatio() float64 {
	if r.DeliveredPkts <= 0 {
		return 0
	}
	return r.WirePkts / r.DeliveredPkts
}

// CoresPerGbps is the machine's busy cores per Gbit/s of goodput (0 when unknown).
func (r Row) CoresPerGbps() float64 {
	if r.Gbps <= 0 {
		return 0
	}
	return r.CPUCores / r.Gbps
}

// Median returns the median of xs (the mean of the middle two for an even count) and NaN
// for none. xs is not modified.
func Median(xs []float64) float64 {
	if len(xs) == 0 {
		return math.NaN()
	}
	s := slices.Clone(xs)
	slices.Sort(s)
	n := len(s)
	if n%2 == 1 {
		return s[n/2]
	}
	return (s[n/2-1] + s[n/2]) / 2
}

// Aggregate groups samples by (model, point) and takes medians over the successful runs.
// Rows come out in the order of models, then points; a (model, point) with no sample gives
// no row.
func Aggregate(samples []Sample, models []string, points []Point) []Row {
	type key struct {
		m string
		p Point
	}
	by := map[key][]Sample{}
	for _, s := range samples {
		k := key{s.Model, s.Point}
		by[k] = append(by[k], s)
	}
	var rows []Row
	for _, m := range models {
		for _, p := range points {
			ss, ok := by[key{m, p}]
			if !ok {
				continue
			}
			rows = append(rows, aggregateOne(m, p, ss))
		}
	}
	return rows
}

func aggregateOne(m string, p Point, ss []Sample) Row {
	r := Row{Model: m, Point: p}
	var g, l, w, d, c, mc, dc, rc, wf []float64
	for _, s := range ss {
		if s.Err != nil {
			r.Failed++
			r.Error = s.Err.Error()
			continue
		}
		r.Runs++
		g = append(g, s.Gbps)
		l = append(l, s.LossPct)
		w = append(w, float64(s.WirePkts))
		d = append(d, float64(s.DeliveredPkts))
		c = append(c, s.CPUCores)
		mc = append(mc, s.MachineCores)
		if s.WirePkts > 0 {
			wf = append(wf, float64(s.WireBytes)/float64(s.WirePkts))
		}
		dc = append(dc, s.DatapathCores)
		rc = append(rc, s.RxIperfCPU)
	}
	if r.Runs == 0 {
		return r
	}
	r.Gbps, r.LossPct = Median(g), Median(l)
	r.GbpsMin, r.GbpsMax = slices.Min(g), slices.Max(g)
	r.WirePkts, r.DeliveredPkts = Median(w), Median(d)
	r.CPUCores, r.MachineCores = Median(c), Median(mc)
	r.DatapathCores, r.RxIperfCPU = Median(dc), Median(rc)
	if len(wf) > 0 {
		r.WireFrameBytes = Median(wf)
	}
	return r
}

// CSVHeader is the first line of results.csv.
var CSVHeader = []string{"model", "proto", "flows", "write_bytes", "gbps", "loss_pct", "wire_pkts",
	"delivered_pkts", "runs", "merge_ratio", "cpu_cores", "cores_per_gbps", "datapath_cores",
	"rx_iperf_cpu_pct", "machine_cores", "gbps_min", "gbps_max", "failed_runs", "status", "error", "wire_avg_frame_bytes"}

// WriteCSV writes rows as results.csv. Failed rows have status "failed", empty numbers and
// the error.
func WriteCSV(w io.Writer, rows []Row) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	for _, r := range rows {
		rec := []string{r.Model, string(r.Point.Proto), strconv.Itoa(r.Point.Flows), strconv.Itoa(r.Point.WriteBytes)}
		if r.OK() {
			rec = append(rec, f3(r.Gbps), f3(r.LossPct), f0(r.WirePkts), f0(r.DeliveredPkts), strconv.Itoa(r.Runs),
				f3(r.MergeRatio()), f3(r.CPUCores), f3(r.CoresPerGbps()), f3(r.DatapathCores), f0(r.RxIperfCPU),
				f3(r.MachineCores), f3(r.GbpsMin), f3(r.GbpsMax), strconv.Itoa(r.Failed), "ok", r.Error, f0(r.WireFrameBytes))
		} else {
			rec = append(rec, "", "", "", "", "0", "", "", "", "", "", "", "", "", strconv.Itoa(r.Failed), "failed", r.Error, "")
		}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

func f3(v float64) string { return strconv.FormatFloat(v, 'f', 3, 64) }
func f0(v float64) string { return strconv.FormatFloat(v, 'f', 0, 64) }

// ReadCSV parses results.csv as WriteCSV wrote it (used by tests and to re-plot).
func ReadCSV(r io.Reader) ([]Row, error) {
	recs, err := csv.NewReader(r).ReadAll()
	if err != nil {
		return nil, err
	}
	if len(recs) == 0 || !slices.Equal(recs[0], CSVHeader) {
		return nil, fmt.Errorf("read csv: unexpected header")
	}
	var rows []Row
	for i, rec := range recs[1:] {
		row, err := parseRow(rec)
		if err != nil {
			return nil, fmt.Errorf("read csv line %d: %w", i+2, err)
		}
		rows = append(rows, row)
	}
	return rows, nil
}

func parseRow(rec []string) (Row, error) {
	var r Row
	if len(rec) != len(CSVHeader) {
		return r, fmt.Errorf("%d fields, want %d", len(rec), len(CSVHeader))
	}
	var err error
	num := func(s string) float64 {
		if s == "" || err != nil {
			return 0
		}
		var v float64
		v, err = strconv.ParseFloat(s, 64)
		return v
	}
	r.Model, r.Point.Proto = rec[0], Proto(rec[1])
	r.Point.Flows, r.Point.WriteBytes = int(num(rec[2])), int(num(rec[3]))
	r.Gbps, r.LossPct, r.WirePkts, r.DeliveredPkts = num(rec[4]), num(rec[5]), num(rec[6]), num(rec[7])
	r.Runs = int(num(rec[8]))
	r.CPUCores, r.DatapathCores, r.RxIperfCPU = num(rec[10]), num(rec[12]), num(rec[13])
	r.MachineCores, r.GbpsMin, r.GbpsMax, r.Failed = num(rec[14]), num(rec[15]), num(rec[16]), int(num(rec[17]))
	r.Error, r.WireFrameBytes = rec[19], num(rec[20])
	return r, err
}
