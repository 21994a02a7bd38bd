package main

import (
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/plotutil"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
)

// PlotFiles are the PNGs WritePlots produces (when the rows have the data), after the
// paper's figures.
var PlotFiles = []string{"fig8-tcp-write-size.png", "fig9-merge.png", "fig10-11-flows.png",
	"fig12-udp-throughput.png", "fig13-udp-loss.png"}

// sizeTicks labels a log2 byte axis as 64, 256, 1K...
type sizeTicks struct{}

func (sizeTicks) Ticks(min, max float64) []plot.Tick {
	var ts []plot.Tick
	for v := 16.0; v <= 1<<17; v *= 2 {
		if v < min || v > max {
			continue
		}
		t := plot.Tick{Value: v}
		if int(v)&(int(v)-1) == 0 && (int(v) == 64 || int(v)%4 == 0) {
			t.Label = sizeLabel(int(v))
		}
		ts = append(ts, t)
	}
	return ts
}

// series returns (write size, value) points of model at proto/flows, sorted by size.
func series(rows []Row, model string, proto Proto, flows int, val func(Row) float64) plotter.XYs {
	var xys plotter.XYs
	for _, r := range rows {
		if r.Model == model && r.Point.Proto == proto && r.Point.Flows == flows && r.OK() {
			xys = append(xys, plotter.XY{X: float64(r.Point.WriteBytes), Y: val(r)})
		}
	}
	slices.SortFunc(xys, func(a, b plotter.XY) int {
		switch {
		case a.X < b.X:
			return -1
		case a.X > b.X:
			return 1
		}
		return 0
	})
	return xys
}

func modelsIn(rows []Row) []string {
	var ms []string
	for _, r := range rows {
		if r.OK() && !slices.Contains(ms, r.Model) {
			ms = append(ms, r.Model)
		}
	}
	return ms
}

// linePlot draws one line per model of val against the write size, on a log2 x axis.
func linePlot(rows []Row, models []string, proto Proto, title, ylabel string, val func(Row) float64) (*plot.Plot, bool) {
	p := plot.New()
	p.Title.Text = title
	p.X.Label.Text = "write size (bytes, iperf3 -l)"
	p.Y.Label.Text = ylabel
	p.X.Scale = plot.LogScale{}
	p.X.Tick.Marker = sizeTicks{}
	p.Y.Min = 0
	p.Legend.Top = true
	p.Legend.Left = true
	p.Add(plotter.NewGrid())
	any := false
	top := 0.0
	for i, m := range models {
		xys := series(rows, m, proto, 1, val)
		if len(xys) == 0 {
			continue
		}
		for _, xy := range xys {
			top = max(top, xy.Y)
		}
		l, s, err := plotter.NewLinePoints(xys)
		if err != nil {
			continue
		}
		l.Color, s.Color = plotutil.Color(i), plotutil.Color(i)
		l.Dashes = plotutil.Dashes(i % 3)
		s.Shape = plotutil.Shape(i)
		p.Add(l, s)
		p.Legend.Add(m, l, s)
		any = true
	}
	// Headroom for the legend (top left), one line per model.
	p.Y.Max = top * (1.15 + 0.06*float64(len(models)))
	return p, any
}

// WritePlots writes the PNGs into dir and returns their paths. A figure with no data is not
// written.
func WritePlots(dir string, rows []Row) ([]string, error) {
	var paths []string
	var errs []error
	save := func(p *plot.Plot, ok bool, name string) {
		if !ok {
			return
		}
		path := filepath.Join(dir, name)
		if err := p.Save(8*vg.Inch, 5*vg.Inch, path); err != nil {
			errs = append(errs, fmt.Errorf("save %s: %w", path, err))
			return
		}
		paths = append(paths, path)
	}
	all := modelsIn(rows)
	gbps := func(r Row) float64 { return r.Gbps }
	p, ok := linePlot(rows, all, TCP, "TCP throughput vs write size, 1 flow (cf. Fig. 8)", "Gbit/s", gbps)
	save(p, ok, PlotFiles[0])
	var abl []string
	for _, m := range []string{"noencap", "vxlan", "sclp", "sclp-udp", "sclp-nomerge"} {
		if slices.Contains(all, m) {
			abl = append(abl, m)
		}
	}
	p, ok = linePlot(rows, abl, TCP, "Receive-side merge on/off (cf. Fig. 9)", "Gbit/s", gbps)
	save(p, ok && slices.Contains(abl, "sclp-nomerge"), PlotFiles[1])
	p, ok = flowsPlot(rows, all)
	save(p, ok, PlotFiles[2])
	p, ok = linePlot(rows, all, UDP, "UDP goodput at the highest rate (cf. Fig. 12)", "Gbit/s", gbps)
	save(p, ok, PlotFiles[3])
	p, ok = linePlot(rows, all, UDP, "UDP loss at the highest rate (cf. Fig. 13)", "loss %", func(r Row) float64 { return r.LossPct })
	save(p, ok, PlotFiles[4])
	return paths, errors.Join(errs...)
}

// flowsPlot draws grouped bars: for each model, 1, 2 and 4 TCP flows at the largest write
// size measured with several flows.
func flowsPlot(rows []Row, models []string) (*plot.Plot, bool) {
	size := 0
	for _, r := range rows {
		if r.Point.Proto == TCP && r.Point.Flows > 1 && r.OK() {
			size = max(size, r.Point.WriteBytes)
		}
	}
	if size == 0 {
		return nil, false
	}
	var flows []int
	top := 0.0
	for _, f := range []int{1, 2, 4} {
		for _, r := range rows {
			if r.Point == (Point{TCP, f, size}) && r.OK() {
				flows = append(flows, f)
				break
			}
		}
	}
	p := plot.New()
	p.Title.Text = fmt.Sprintf("TCP with %s flows, %s writes (cf. Figs. 10-11)", strings.Trim(fmt.Sprint(flows), "[]"), sizeLabel(size))
	p.Y.Label.Text = "Gbit/s (sum of flows)"
	p.Legend.Top = true
	p.Add(plotter.NewGrid())
	w := vg.Points(10)
	for i, f := range flows {
		vals := make(plotter.Values, len(models))
		for j, m := range models {
			for _, r := range rows {
				if r.Model == m && r.Point == (Point{TCP, f, size}) && r.OK() {
					vals[j] = r.Gbps
					top = max(top, r.Gbps)
				}
			}
		}
		bc, err := plotter.NewBarChart(vals, w)
		if err != nil {
			return nil, false
		}
		bc.Color = plotutil.Color(i)
		bc.LineStyle.Width = 0
		bc.Offset = w * (vg.Length(i) - vg.Length(len(flows)-1)/2)
		p.Add(bc)
		p.Legend.Add(fmt.Sprintf("%d flow(s)", f), bc)
	}
	p.NominalX(models...)
	p.X.Tick.Label.Rotation = 0.4
	p.X.Tick.Label.XAlign = draw.XRight // rotated labels end under their group
	p.X.Tick.Label.YAlign = draw.YCenter
	p.Y.Min, p.Y.Max = 0, top*1.3
	return p, true
}
