package main

import (
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"math"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// MaxSustainedLossPct is the highest UDP loss at which an offered rate still counts as
// sustained (issue 5: "no more than 1% at the rate the path sustains").
const MaxSustainedLossPct = 1.0

// searchStep is the factor by which a search raises the offered rate after a pass and lowers
// it after a failure, until it has seen both.
const searchStep = 1.15

// searchStartShare is where a search starts: this share of the median unthrottled goodput.
const searchStartShare = 0.9

// Trial is one run of a sustained-rate search: the rate offered (iperf3 -b) and the sample.
type Trial struct {
	OfferedMbps float64
	Sample      Sample
}

// RateSearch finds the highest offered UDP rate at which loss stays within
// MaxSustainedLossPct, in at most Runs runs: it starts at StartMbps, multiplies the rate by
// Up (default searchStep) after a pass and divides it by searchStep after a failure, and once
// it knows a passing and a failing rate it tries their geometric mean (it stops early when
// they are within 3%). A failed run (Sample.Err) ends the search. The zero value is not
// usable: set StartMbps and Runs. RateSearch is a state machine (Next, Record) so that the
// searches of several models can step in lockstep, interleaved like the rest of the harness.
type RateSearch struct {
	StartMbps float64
	Runs      int
	// Up is the factor after a pass while no failure is known (default searchStep). A start
	// taken from a collapsed unthrottled run (most datagrams lost, so the goodput says little
	// about the path) climbs faster with 2.
	Up float64

	trace      []Trial
	pass, fail float64 // highest passing, lowest failing offered rate (0: none yet)
	stopped    bool
}

// Next returns the rate to offer next, or false when the search is over.
func (s *RateSearch) Next() (float64, bool) {
	if s.stopped || len(s.trace) >= s.Runs {
		return 0, false
	}
	switch {
	case len(s.trace) == 0:
		return max(s.StartMbps, 1), true
	case s.pass > 0 && s.fail > 0:
		if s.fail/s.pass < 1.03 {
			return 0, false
		}
		return math.Sqrt(s.pass * s.fail), true
	case s.fail > 0:
		return s.fail / searchStep, true
	default:
		if s.Up > 1 {
			return s.pass * s.Up, true
		}
		return s.pass * searchStep, true
	}
}

// Bracketed reports whether the best passing rate is the sustained rate within the search's
// resolution rather than only a lower bound: some run above it failed, or some run showed the
// sender's own limit (goodput below 95% of the offered rate at <= 1% loss).
func (s *RateSearch) Bracketed() bool {
	best, ok := s.Result()
	if !ok {
		return false
	}
	for _, t := range s.trace {
		if t.Sample.Err != nil {
			continue
		}
		if t.Sample.LossPct > MaxSustainedLossPct && t.OfferedMbps > best.OfferedMbps {
			return true
		}
		if t.Sample.LossPct <= MaxSustainedLossPct && t.Sample.Gbps*1000 < 0.95*t.OfferedMbps {
			return true
		}
	}
	return false
}

// Record takes the outcome of a run at the rate Next returned.
func (s *RateSearch) Record(mbps float64, smp Sample) {
	s.trace = append(s.trace, Trial{mbps, smp})
	switch {
	case smp.Err != nil:
		s.stopped = true
	case smp.LossPct <= MaxSustainedLossPct:
		s.pass = max(s.pass, mbps)
	case s.fail == 0 || mbps < s.fail:
		s.fail = mbps
	}
}

// Result returns the passing run with the highest goodput (ok true), or, when no run passed,
// the successful run at the lowest offered rate (ok false; a zero Trial if every run failed).
func (s *RateSearch) Result() (best Trial, ok bool) {
	for _, t := range s.trace {
		if t.Sample.Err == nil && t.Sample.LossPct <= MaxSustainedLossPct && (!ok || t.Sample.Gbps > best.Sample.Gbps) {
			best, ok = t, true
		}
	}
	if ok {
		return best, true
	}
	for _, t := range s.trace {
		if t.Sample.Err == nil && (best.OfferedMbps == 0 || t.OfferedMbps < best.OfferedMbps) {
			best = t
		}
	}
	return best, false
}

// Sustained is the outcome of the search of one model at one UDP point.
type Sustained struct {
	Model string
	Point Point
	// Best is the passing run with the highest goodput; when OK is false no run passed and
	// Best is the run at the lowest offered rate. OfferedMbps 0 means the unthrottled runs
	// (their medians), which count when their median loss is within the limit.
	Best Trial
	OK   bool
	// LowerBound is set when no run above Best failed (and Best is not the unthrottled
	// median): the path may sustain more than the search reached.
	LowerBound bool
	// Trace is every run of the search in order.
	Trace []Trial
	// Err is the error that ended the search, if any.
	Err string
}

// searchSustained runs, for every UDP point of cfg.SearchSizes and every built model, a
// RateSearch starting at startMbps of the model's unthrottled median (rows).
// The models step in lockstep: every model's first trial, then every model's second, and so
// on.
func searchSustained(ctx context.Context, r *testbed.Runner, cfg Config, envs []*Env, rows []Row, ui UI) []Sustained {
	ix := indexRows(rows)
	var out []Sustained
	for _, p := range cfg.Points {
		if p.Proto != UDP || !slices.Contains(cfg.SearchSizes, p.WriteBytes) {
			continue
		}
		type job struct {
			env *Env
			s   *RateSearch
		}
		var jobs []job
		for _, e := range envs {
			if row, ok := ix.get(e.Model.Name, p); ok && row.Gbps > 0 {
				s := &RateSearch{StartMbps: startMbps(row, cfg.Duration), Runs: cfg.SearchRuns}
				if row.LossPct > 50 {
					s.Up = 2
				}
				jobs = append(jobs, job{e, s})
			}
		}
		bar := ui.bar(len(jobs)*cfg.SearchRuns, "search "+p.String())
		for round := 0; round < cfg.SearchRuns && ctx.Err() == nil; round++ {
			for _, j := range jobs {
				mbps, ok := j.s.Next()
				if !ok || ctx.Err() != nil {
					continue
				}
				var smp Sample
				if err := r.Run(func() error {
					smp = j.env.MeasureAt(ctx, r, p, cfg.Duration, mbps)
					return nil
				}); err != nil {
					smp = Sample{Model: j.env.Model.Name, Point: p, Err: err}
				}
				j.s.Record(mbps, smp)
				if smp.Err != nil {
					ui.Log("%s %s search at %.0f Mbit/s: %v", j.env.Model.Name, p, mbps, smp.Err)
				} else {
					ui.Log("%s %s search at %.0f Mbit/s: %.3f Gbit/s loss %.2f%% cores %.2f", j.env.Model.Name, p, mbps,
						smp.Gbps, smp.LossPct, smp.CPUCores)
				}
				_ = bar.Add(1)
			}
		}
		_ = bar.Finish()
		for _, j := range jobs {
			best, ok := j.s.Result()
			lower := ok && !j.s.Bracketed()
			// The unthrottled runs count too when their median loss is within the limit: the
			// sender is then slower than its path (as kernel VXLAN's IP fragmentation is), so
			// the result is determined, not a lower bound. Offered rate 0 stands for them.
			if row, _ := ix.get(j.env.Model.Name, p); row.LossPct <= MaxSustainedLossPct {
				lower = false
				if !ok || row.Gbps > best.Sample.Gbps {
					best, ok = Trial{Sample: Sample{Model: row.Model, Point: p, Gbps: row.Gbps, LossPct: row.LossPct, CPUCores: row.CPUCores}}, true
				}
			}
			su := Sustained{Model: j.env.Model.Name, Point: p, Best: best, OK: ok, LowerBound: lower, Trace: j.s.trace}
			if n := len(j.s.trace); n > 0 && j.s.trace[n-1].Sample.Err != nil {
				su.Err = j.s.trace[n-1].Sample.Err.Error()
			}
			out = append(out, su)
		}
	}
	return out
}

// startMbps is where the search of a model at a point starts: searchStartShare of what the
// unthrottled runs carried, that is of the goodput or, when more, of the underlay's bit rate
// (wire frames x their average size): when datagrams are IP-fragmented and a lost fragment
// kills its datagram, an overloaded path delivers almost no goodput while its wire still
// carries fragments at the rate it can sustain.
func startMbps(row Row, d time.Duration) float64 {
	wire := 0.0
	if d > 0 {
		wire = row.WirePkts * row.WireFrameBytes * 8 / d.Seconds() / 1e6
	}
	return max(row.Gbps*1000, wire) * searchStartShare
}

// sustainedCell formats a search result for the summary: goodput (loss) at the offered
// rate, or what the lowest offered rate lost when no rate passed.
func sustainedCell(s Sustained) string {
	switch {
	case s.OK && s.Best.OfferedMbps == 0:
		return fmt.Sprintf("%.2f (%.1f%%) unthrottled", s.Best.Sample.Gbps, s.Best.Sample.LossPct)
	case s.OK && s.LowerBound:
		return fmt.Sprintf(">= %.2f (%.1f%%) at %s, no failure above", s.Best.Sample.Gbps, s.Best.Sample.LossPct, mbpsLabel(s.Best.OfferedMbps))
	case s.OK:
		return fmt.Sprintf("%.2f (%.1f%%) at %s", s.Best.Sample.Gbps, s.Best.Sample.LossPct, mbpsLabel(s.Best.OfferedMbps))
	case s.Best.OfferedMbps > 0:
		return fmt.Sprintf("none <= 1%% (%.1f%% at %s)", s.Best.Sample.LossPct, mbpsLabel(s.Best.OfferedMbps))
	default:
		return "failed"
	}
}

func mbpsLabel(m float64) string { return fmt.Sprintf("%.2fG", m/1000) }

// searchDuration estimates the time the searches add (for the start-up message).
func searchDuration(cfg Config) time.Duration {
	n := 0
	for _, p := range cfg.Points {
		if p.Proto == UDP && slices.Contains(cfg.SearchSizes, p.WriteBytes) {
			n++
		}
	}
	return time.Duration(n*len(cfg.Models)*cfg.SearchRuns) * (cfg.Duration + time.Second)
}

// SustainedCSVHeader is the first line of sustained.csv.
var SustainedCSVHeader = []string{"model", "proto", "flows", "write_bytes", "sustained", "offered_mbps", "gbps",
	"loss_pct", "cpu_cores", "cores_per_gbps", "runs", "trace", "error"}

// WriteSustainedCSV writes the searches as sustained.csv: one line per model and point with
// the best passing run ("sustained" yes, or lower_bound when no run above it failed) or the
// lowest offered one ("no"), offered_mbps 0 for the unthrottled median, and the trace of every
// run as offered:goodput:loss triples.
func WriteSustainedCSV(w io.Writer, ss []Sustained) error {
	cw := csv.NewWriter(w)
	if err := cw.Write(SustainedCSVHeader); err != nil {
		return err
	}
	for _, s := range ss {
		var trace []string
		for _, t := range s.Trace {
			trace = append(trace, fmt.Sprintf("%.0f:%.3f:%.2f", t.OfferedMbps, t.Sample.Gbps, t.Sample.LossPct))
		}
		ok, b := "no", s.Best.Sample
		switch {
		case s.OK && s.LowerBound:
			ok = "lower_bound"
		case s.OK:
			ok = "yes"
		}
		cpg := ""
		if b.Gbps > 0 {
			cpg = f3(b.CPUCores / b.Gbps)
		}
		rec := []string{s.Model, string(s.Point.Proto), strconv.Itoa(s.Point.Flows), strconv.Itoa(s.Point.WriteBytes), ok,
			f0(s.Best.OfferedMbps), f3(b.Gbps), f3(b.LossPct), f3(b.CPUCores), cpg, strconv.Itoa(len(s.Trace)),
			strings.Join(trace, " "), s.Err}
		if err := cw.Write(rec); err != nil {
			return err
		}
	}
	cw.Flush()
	return cw.Error()
}

// writeSustained adds the sustained-rate table (next to the unthrottled UDP table) and each
// SCLP model's ratio to vxlan and noencap at the sustained rate.
func writeSustained(b *strings.Builder, rep *Report) {
	if len(rep.Sustained) == 0 {
		return
	}
	by := map[string]map[Point]Sustained{}
	var points []Point
	for _, s := range rep.Sustained {
		if by[s.Model] == nil {
			by[s.Model] = map[Point]Sustained{}
		}
		by[s.Model][s.Point] = s
		if !slices.Contains(points, s.Point) {
			points = append(points, s.Point)
		}
	}
	models := rep.Config.Models
	fmt.Fprintf(b, "\n## UDP at the rate the path sustains: goodput Gbit/s (loss %%) at the highest offered rate with <= %.0f%% loss\n\n", MaxSustainedLossPct)
	fmt.Fprintf(b, "Search per model: start at %.0f%% of what the unthrottled runs carried (goodput, or the wire bit rate when higher), x%.2f after a pass, /%.2f after a failure, "+
		"then bisect; at most %d runs of %v (same method for every model; the models step in lockstep). "+
		"The unthrottled median counts when its loss is within the limit (\"unthrottled\"); \">=\" marks a search that found no "+
		"failing rate above its best (a lower bound; it climbs x2 per pass when the unthrottled run collapsed, > 50%% lost). "+
		"Ratios only between determined rates.\n\n",
		searchStartShare*100, searchStep, searchStep, rep.Config.SearchRuns, rep.Config.Duration)
	fmt.Fprintf(b, "| datagram | %s |\n|---|%s\n", strings.Join(models, " | "), strings.Repeat("---|", len(models)))
	for _, p := range points {
		fmt.Fprintf(b, "| %s |", sizeLabel(p.WriteBytes))
		for _, m := range models {
			cell := "–"
			if s, ok := by[m][p]; ok {
				cell = sustainedCell(s)
			}
			fmt.Fprintf(b, " %s |", cell)
		}
		b.WriteString("\n")
	}
	ratio := func(a, c string, p Point) string {
		sa, ok1 := by[a][p]
		sc, ok2 := by[c][p]
		if !ok1 || !ok2 || !sa.OK || !sc.OK || sa.LowerBound || sc.LowerBound || sc.Best.Sample.Gbps <= 0 {
			return "–" // a lower bound makes no ratio
		}
		return fmt.Sprintf("%.2fx", sa.Best.Sample.Gbps/sc.Best.Sample.Gbps)
	}
	var present []string
	for _, m := range sclpModels {
		if _, ok := by[m]; ok {
			present = append(present, m)
		}
	}
	if len(present) == 0 {
		return
	}
	b.WriteString("\nSustained goodput of each SCLP mode over vxlan's and noencap's sustained goodput (same point):\n\n| point |")
	for _, m := range present {
		fmt.Fprintf(b, " %s / vxlan | %s / noencap |", m, m)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|---|", len(present)) + "\n")
	for _, p := range points {
		fmt.Fprintf(b, "| udp %d×%s sustained |", p.Flows, sizeLabel(p.WriteBytes))
		for _, m := range present {
			fmt.Fprintf(b, " %s | %s |", ratio(m, "vxlan", p), ratio(m, "noencap", p))
		}
		b.WriteString("\n")
	}
}
