package main

import (
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"syscall"
)

func main() {
	os.Exit(run())
}

func run() int {
	cfg, err := ConfigFromEnv(os.Getenv)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 2
	}
	if os.Getenv("BENCH_REPLOT") != "" {
		return replot(cfg.OutDir)
	}
	if os.Geteuid() != 0 {
		fmt.Fprintln(os.Stderr, "bench: needs root (network namespaces, BPF, OVS)")
		return 2
	}
	for _, bin := range []string{"iperf3", "ip", "ethtool"} {
		if _, err := exec.LookPath(bin); err != nil {
			fmt.Fprintf(os.Stderr, "bench: %s not found: run `make deps`\n", bin)
			return 2
		}
	}
	if err := os.MkdirAll(cfg.OutDir, 0o755); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	logPath := filepath.Join(cfg.OutDir, "bench.log")
	lf, err := os.Create(logPath)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer lf.Close()
	lg := log.New(lf, "", log.LstdFlags|log.Lmicroseconds)
	ui := UI{Progress: os.Stderr, Log: lg.Printf}

	// The first SIGINT/SIGTERM stops the run after the current iperf3 (which it kills) and
	// still tears everything down; results measured so far are written.
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()

	fmt.Fprintf(os.Stderr, "bench: %d models × %d points × %d run(s) of %v, sustained-rate searches up to %v; log in %s\n",
		len(cfg.Models), len(cfg.Points), cfg.Runs, cfg.Duration, searchDuration(cfg), logPath)
	rep := Measure(ctx, cfg, ui)
	for _, m := range rep.Models {
		if err := rep.BuildErrs[m.Name]; err != nil {
			fmt.Fprintf(os.Stderr, "bench: model %s failed: %v\n", m.Name, err)
		}
	}
	// Results so far, before the microbenchmarks (so an interrupt there keeps them).
	if _, err := WriteOutputs(rep); err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
	}
	if cfg.MicroBenchtime != "" && ctx.Err() == nil {
		goBin := os.Getenv("GO")
		if goBin == "" {
			goBin = "go"
		}
		rep.Micro = RunMicro(ctx, goBin, cfg.MicroBenchtime, cfg.MicroLimit, ui)
	}
	paths, err := WriteOutputs(rep)
	for _, p := range paths {
		fmt.Fprintln(os.Stderr, "bench: wrote", p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	if rep.Interrupted {
		fmt.Fprintln(os.Stderr, "bench: interrupted; partial results written, testbed removed")
		return 130
	}
	return 0
}

// replot redraws the PNGs from OutDir/results.csv (BENCH_REPLOT=1), without measuring.
func replot(dir string) int {
	f, err := os.Open(filepath.Join(dir, "results.csv"))
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	defer f.Close()
	rows, err := ReadCSV(f)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	paths, err := WritePlots(dir, rows)
	for _, p := range paths {
		fmt.Fprintln(os.Stderr, "bench: wrote", p)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		return 1
	}
	return 0
}
