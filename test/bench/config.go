package main

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Proto is the transport iperf3 measures.
type Proto string

// Protocols measured.
const (
	TCP Proto = "tcp"
	UDP Proto = "udp"
)

// Point is one measurement configuration: a protocol, a number of parallel flows and a write
// (iperf3 -l) size.
type Point struct {
	Proto      Proto
	Flows      int
	WriteBytes int
}

// String names the point, e.g. "tcp/1/65536".
func (p Point) String() string { return fmt.Sprintf("%s/%d/%d", p.Proto, p.Flows, p.WriteBytes) }

// Config is what one harness run measures.
type Config struct {
	// Models to measure, in order (names from AllModels).
	Models []string
	// Points to measure at every model.
	Points []Point
	// Runs per point; the median is reported.
	Runs int
	// Duration of each iperf3 run.
	Duration time.Duration
	// OutDir receives results.csv, micro.csv, summary.md, the plots and bench.log.
	OutDir string
	// MicroBenchtime is go test's -benchtime for the microbenchmarks ("" skips them).
	MicroBenchtime string
	// MicroLimit bounds each package's microbenchmarks (go test -timeout).
	MicroLimit time.Duration
	// Quick is true for BENCH_QUICK=1.
	Quick bool
	// SearchRuns bounds the runs of the sustained-rate search (RateSearch) of every model at
	// each UDP point whose datagram size is in SearchSizes (0: no search).
	SearchRuns  int
	SearchSizes []int
}

// TCP write sizes of the full sweep (the paper's Fig. 8 axis: 64 B to 64 KB).
var fullSizes = []int{64, 256, 1024, 4096, 16384, 65536}

// UDP datagram sizes: 60000 is the largest that fits a 65000-byte inner MTU in one frame.
var fullUDPSizes = []int{1024, 8192, 60000}

// FullConfig is the default run (about 20 minutes).
func FullConfig() Config {
	c := Config{Models: AllModels(), Runs: 3, Duration: 3 * time.Second, OutDir: "bench-results",
		MicroBenchtime: "1s", MicroLimit: 4 * time.Minute, SearchRuns: 4, SearchSizes: fullUDPSizes}
	for _, s := range fullSizes {
		c.Points = append(c.Points, Point{TCP, 1, s})
	}
	for _, f := range []int{2, 4} {
		c.Points = append(c.Points, Point{TCP, f, 65536})
	}
	for _, s := range fullUDPSizes {
		c.Points = append(c.Points, Point{UDP, 1, s})
	}
	return c
}

// QuickConfig is BENCH_QUICK=1: a few points, one run of 3 s.
func QuickConfig() Config {
	c := Config{Models: AllModels(), Runs: 1, Duration: 3 * time.Second, OutDir: "bench-results",
		MicroBenchtime: "200ms", MicroLimit: 2 * time.Minute, Quick: true, SearchRuns: 2, SearchSizes: []int{60000}}
	c.Points = []Point{{TCP, 1, 1024}, {TCP, 1, 65536}, {TCP, 4, 65536}, {UDP, 1, 1024}, {UDP, 1, 60000}}
	return c
}

// ConfigFromEnv builds the configuration from BENCH_QUICK, BENCH_MODELS, BENCH_RUNS,
// BENCH_SECS, BENCH_OUT, BENCH_MICRO (a -benchtime, or "off") and BENCH_SEARCH (runs of each
// sustained-rate search, 0 for none).
func ConfigFromEnv(getenv func(string) string) (Config, error) {
	c := FullConfig()
	if v := getenv("BENCH_QUICK"); v != "" && v != "0" {
		c = QuickConfig()
	}
	if v := getenv("BENCH_MODELS"); v != "" {
		known := map[string]bool{}
		for _, m := range AllModels() {
			known[m] = true
		}
		c.Models = nil
		for _, m := range strings.Split(v, ",") {
			m = strings.TrimSpace(m)
			if !known[m] {
				return c, fmt.Errorf("BENCH_MODELS: unknown model %q (known: %s)", m, strings.Join(AllModels(), ","))
			}
			c.Models = append(c.Models, m)
		}
	}
	if v := getenv("BENCH_RUNS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("BENCH_RUNS: %q is not a positive integer", v)
		}
		c.Runs = n
	}
	if v := getenv("BENCH_SECS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 {
			return c, fmt.Errorf("BENCH_SECS: %q is not a whole number of seconds >= 1 (iperf3 -t)", v)
		}
		c.Duration = time.Duration(n) * time.Second
	}
	if v := getenv("BENCH_SEARCH"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 0 {
			return c, fmt.Errorf("BENCH_SEARCH: %q is not a number of runs >= 0", v)
		}
		c.SearchRuns = n
	}
	if v := getenv("BENCH_OUT"); v != "" {
		c.OutDir = v
	}
	if v := getenv("BENCH_MICRO"); v != "" {
		c.MicroBenchtime = v
		if v == "off" {
			c.MicroBenchtime = ""
		}
	}
	return c, nil
}
