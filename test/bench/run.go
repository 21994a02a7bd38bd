package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/schollz/progressbar/v3"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// Report is everything one harness run produced.
type Report struct {
	Config  Config
	Started time.Time
	Elapsed time.Duration
	// Models in order, with the build error of those that could not be built.
	Models    []Model
	BuildErrs map[string]error
	Samples   []Sample
	Rows      []Row
	Micro     []MicroResult
	// Sustained holds the sustained-rate searches of the UDP points (Config.SearchRuns).
	Sustained []Sustained
	// Interrupted is set when a signal cut the run short.
	Interrupted bool
}

// UI receives progress. A nil Progress writer disables the bars.
type UI struct {
	Progress io.Writer
	Log      func(format string, args ...any)
}

func (u UI) bar(total int, desc string) *progressbar.ProgressBar {
	w := u.Progress
	if w == nil {
		w = io.Discard
	}
	return progressbar.NewOptions(total, progressbar.OptionSetWriter(w), progressbar.OptionSetDescription(desc),
		progressbar.OptionShowCount(), progressbar.OptionSetPredictTime(true), progressbar.OptionSetWidth(30),
		progressbar.OptionOnCompletion(func() { fmt.Fprintln(w) }))
}

// Measure builds every model, measures every point at every model for cfg.Runs interleaved
// rounds, and tears the testbed down. A model that fails to build yields failed rows.
func Measure(ctx context.Context, cfg Config, ui UI) *Report {
	rep := &Report{Config: cfg, Started: time.Now(), BuildErrs: map[string]error{}}
	r := testbed.NewRunner(ui.Log)
	defer r.Close()
	var envs []*Env
	bar := ui.bar(len(cfg.Models), "build testbed")
	for _, name := range cfg.Models {
		m, _ := ModelByName(name)
		rep.Models = append(rep.Models, m)
		if ctx.Err() != nil {
			rep.BuildErrs[name] = ctx.Err()
			continue
		}
		var env *Env
		err := r.Run(func() (err error) { env, err = Build(r, m); return err })
		if err != nil {
			ui.Log("model %s: %v", name, err)
			rep.BuildErrs[name] = err
		} else {
			envs = append(envs, env)
		}
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	bar = ui.bar(cfg.Runs*len(cfg.Points)*len(envs), "measure")
	for run := 0; run < cfg.Runs && ctx.Err() == nil; run++ {
		for pi, p := range cfg.Points {
			for k := range envs {
				if ctx.Err() != nil {
					break
				}
				e := envs[(k+run+pi)%len(envs)] // rotate the order: drift hits every model alike
				var s Sample
				if err := r.Run(func() error { s = e.Measure(ctx, r, p, cfg.Duration); return nil }); err != nil {
					s = Sample{Model: e.Model.Name, Point: p, Err: err}
				}
				if s.Err != nil {
					ui.Log("%s %s run %d: %v", e.Model.Name, p, run+1, s.Err)
				} else {
					ui.Log("%s %s run %d: %.3f Gbit/s loss %.2f%% wire %d delivered %d cores %.2f", e.Model.Name, p,
						run+1, s.Gbps, s.LossPct, s.WirePkts, s.DeliveredPkts, s.CPUCores)
				}
				rep.Samples = append(rep.Samples, s)
				_ = bar.Add(1)
			}
		}
	}
	_ = bar.Finish()
	rep.Rows = Aggregate(rep.Samples, cfg.Models, cfg.Points)
	if cfg.SearchRuns > 0 && ctx.Err() == nil {
		rep.Sustained = searchSustained(ctx, r, cfg, envs, rep.Rows, ui)
	}
	rep.Interrupted = ctx.Err() != nil
	for name, err := range rep.BuildErrs {
		for _, p := range cfg.Points {
			rep.Samples = append(rep.Samples, Sample{Model: name, Point: p, Err: err})
		}
	}
	rep.Rows = Aggregate(rep.Samples, cfg.Models, cfg.Points)
	rep.Elapsed = time.Since(rep.Started)
	return rep
}

// WriteOutputs writes results.csv, micro.csv, summary.md and the plots into cfg.OutDir and
// returns the paths written.
func WriteOutputs(rep *Report) ([]string, error) {
	dir := rep.Config.OutDir
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	var paths []string
	var errs []error
	write := func(name string, fn func(io.Writer) error) {
		p := filepath.Join(dir, name)
		f, err := os.Create(p)
		if err != nil {
			errs = append(errs, err)
			return
		}
		if err := fn(f); err != nil {
			errs = append(errs, fmt.Errorf("write %s: %w", p, err))
		}
		if err := f.Close(); err != nil {
			errs = append(errs, err)
		}
		paths = append(paths, p)
	}
	write("results.csv", func(w io.Writer) error { return WriteCSV(w, rep.Rows) })
	if len(rep.Sustained) > 0 {
		write("sustained.csv", func(w io.Writer) error { return WriteSustainedCSV(w, rep.Sustained) })
	}
	write("micro.csv", func(w io.Writer) error { return WriteMicroCSV(w, rep.Micro) })
	write("summary.md", func(w io.Writer) error { return WriteSummary(w, rep) })
	pp, err := WritePlots(dir, rep.Rows)
	paths = append(paths, pp...)
	if err != nil {
		errs = append(errs, err)
	}
	return paths, errors.Join(errs...)
}
