package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MicroPackages are the packages whose Go benchmarks the harness runs (the BPF ones through
// prog.Run). Netns throughput benchmarks (BenchmarkThroughput) are skipped: the harness
// measures throughput itself.
var MicroPackages = []string{"./offload/sclp", "./offload/bpf", "./offload/fallback", "./offload/udp"}

// microSkip is go test's -skip for the microbenchmarks.
const microSkip = "^BenchmarkThroughput"

// MicroResult is one benchmark line (or a package that failed).
type MicroResult struct {
	Package    string
	Name       string
	Iterations int64
	// Metrics maps unit to value: "ns/op", "MB/s", "B/op", "allocs/op" and custom units.
	Metrics map[string]float64
	Units   []string // in output order
	// Err is set for a package whose benchmarks failed to run.
	Err string
}

// ParseBenchOutput extracts benchmark lines from go test -bench output.
func ParseBenchOutput(pkg string, out []byte) []MicroResult {
	var res []MicroResult
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) < 4 || !strings.HasPrefix(f[0], "Benchmark") {
			continue
		}
		n, err := strconv.ParseInt(f[1], 10, 64)
		if err != nil {
			continue
		}
		r := MicroResult{Package: pkg, Name: f[0], Iterations: n, Metrics: map[string]float64{}}
		for i := 2; i+1 < len(f); i += 2 {
			v, err := strconv.ParseFloat(f[i], 64)
			if err != nil {
				break
			}
			r.Metrics[f[i+1]] = v
			r.Units = append(r.Units, f[i+1])
		}
		res = append(res, r)
	}
	return res
}

// RunMicro runs go test -bench for each package with benchtime (each package within limit)
// and returns every result; a package that fails (or has no benchmark) gives a result with
// Err.
func RunMicro(ctx context.Context, goBin, benchtime string, limit time.Duration, ui UI) []MicroResult {
	var all []MicroResult
	bar := ui.bar(len(MicroPackages), "microbenchmarks")
	for _, pkg := range MicroPackages {
		if ctx.Err() != nil {
			all = append(all, MicroResult{Package: pkg, Err: "interrupted"})
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, limit+30*time.Second)
		cmd := exec.CommandContext(cctx, goBin, "test", "-run", "^$", "-bench", ".", "-benchmem", "-count", "1",
			"-benchtime", benchtime, "-skip", microSkip, "-timeout", limit.String(), pkg)
		// go test runs the test binary as its child: on timeout or Ctrl-C kill the whole
		// process group we created, not just go.
		cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
		cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
		cmd.WaitDelay = 5 * time.Second
		out, err := cmd.CombinedOutput()
		cancel()
		res := ParseBenchOutput(pkg, out)
		ui.Log("micro %s: %d results, err %v", pkg, len(res), err)
		if err != nil {
			res = append(res, MicroResult{Package: pkg, Err: fmt.Sprintf("%v: %s", err, lastLines(out, 5))})
		} else if len(res) == 0 {
			res = append(res, MicroResult{Package: pkg, Err: "no benchmarks"})
		}
		all = append(all, res...)
		_ = bar.Add(1)
	}
	_ = bar.Finish()
	return all
}

func lastLines(b []byte, n int) string {
	l := strings.Split(strings.TrimSpace(string(b)), "\n")
	if len(l) > n {
		l = l[len(l)-n:]
	}
	return strings.Join(l, " | ")
}

// WriteMicroCSV writes micro.csv: package,name,iterations,ns_per_op,mb_per_s,b_per_op,
// allocs_per_op,other,error.
func WriteMicroCSV(w io.Writer, res []MicroResult) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"package", "name", "iterations", "ns_per_op", "mb_per_s", "b_per_op", "allocs_per_op", "other", "error"})
	for _, r := range res {
		get := func(u string) string {
			if v, ok := r.Metrics[u]; ok {
				return strconv.FormatFloat(v, 'g', 6, 64)
			}
			return ""
		}
		var other []string
		for _, u := range r.Units {
			switch u {
			case "ns/op", "MB/s", "B/op", "allocs/op":
			default:
				other = append(other, strconv.FormatFloat(r.Metrics[u], 'g', 6, 64)+" "+u)
			}
		}
		it := ""
		if r.Iterations > 0 {
			it = strconv.FormatInt(r.Iterations, 10)
		}
		_ = cw.Write([]string{r.Package, r.Name, it, get("ns/op"), get("MB/s"), get("B/op"), get("allocs/op"),
			strings.Join(other, "; "), r.Err})
	}
	cw.Flush()
	return cw.Error()
}
