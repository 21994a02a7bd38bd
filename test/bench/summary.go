package main

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"time"
)

// sclpModels are the rows whose ratios the summary reports.
var sclpModels = []string{"sclp", "sclp-udp", "sclp-nomerge", "sclp-jumbo", "sclp-udp-jumbo"}

// rowIndex finds rows by model and point.
type rowIndex map[string]map[Point]Row

func indexRows(rows []Row) rowIndex {
	ix := rowIndex{}
	for _, r := range rows {
		if ix[r.Model] == nil {
			ix[r.Model] = map[Point]Row{}
		}
		ix[r.Model][r.Point] = r
	}
	return ix
}

func (ix rowIndex) get(model string, p Point) (Row, bool) {
	r, ok := ix[model][p]
	return r, ok && r.OK()
}

// ratio formats a/b of the models' throughput at p ("–" when either is missing).
func (ix rowIndex) ratio(a, b string, p Point) string {
	ra, ok1 := ix.get(a, p)
	rb, ok2 := ix.get(b, p)
	if !ok1 || !ok2 || rb.Gbps <= 0 {
		return "–"
	}
	return fmt.Sprintf("%.2fx", ra.Gbps/rb.Gbps)
}

// WriteSummary writes summary.md: the setup, the throughput tables, the ratios of each SCLP
// mode to vxlan and noencap, merge ratios, CPU, failures and the microbenchmarks.
func WriteSummary(w io.Writer, rep *Report) error {
	var b strings.Builder
	cfg := rep.Config
	mode := "full"
	if cfg.Quick {
		mode = "quick (BENCH_QUICK=1)"
	}
	fmt.Fprintf(&b, "# sclp-ovs benchmark results\n\n")
	fmt.Fprintf(&b, "- date: %s (%s)\n", rep.Started.UTC().Format(time.RFC3339), rep.Elapsed.Round(time.Second))
	fmt.Fprintf(&b, "- mode: %s; %d run(s) per point of %v each, models interleaved, median reported\n", mode, cfg.Runs, cfg.Duration)
	fmt.Fprintf(&b, "- machine: %d CPUs, kernel %s (shared with other work: expect noise; compare ratios within this run)\n",
		runtime.NumCPU(), kernelRelease())
	fmt.Fprintf(&b, "- wire: veth underlay, MTU 1500, sender tso/gso/tx-udp-segmentation off (real 1500-byte frames)\n")
	if rep.Interrupted {
		fmt.Fprintf(&b, "- **interrupted**: the run was cut short by a signal; rows may be missing\n")
	}
	b.WriteString("\n## Models\n\n| model | VM MTU | what | status |\n|---|---|---|---|\n")
	for _, m := range rep.Models {
		st := "built"
		if err := rep.BuildErrs[m.Name]; err != nil {
			st = "**failed**: " + oneLine(err.Error())
		}
		fmt.Fprintf(&b, "| %s | %d | %s | %s |\n", m.Name, m.VMMTU, m.Note, st)
	}
	b.WriteString("| ovs-stt, nvgre | – | not measurable here: no STT implementation anywhere on this platform (OVS 3.1 userspace has none, the kernel module is absent); OVS has no NVGRE | not run |\n")
	ix := indexRows(rep.Rows)
	writeThroughput(&b, rep, ix)
	writeSustained(&b, rep)
	writeRatios(&b, rep, ix)
	writeMergeCPU(&b, rep, ix)
	writeFailures(&b, rep)
	writeMicro(&b, rep.Micro)
	_, err := io.WriteString(w, b.String())
	return err
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func oneLine(s string) string {
	s = strings.ReplaceAll(s, "\n", " ")
	s = strings.ReplaceAll(s, "|", "/")
	if len(s) > 300 {
		s = s[:300] + "…"
	}
	return s
}

// pointsOf returns the configured points with the given protocol and flows (any flows if 0).
func pointsOf(cfg Config, proto Proto, flows int) []Point {
	var ps []Point
	for _, p := range cfg.Points {
		if p.Proto == proto && (flows == 0 || p.Flows == flows) {
			ps = append(ps, p)
		}
	}
	return ps
}

func writeThroughput(b *strings.Builder, rep *Report, ix rowIndex) {
	models := rep.Config.Models
	header := func(first string) {
		fmt.Fprintf(b, "| %s | %s |\n|---|%s\n", first, strings.Join(models, " | "), strings.Repeat("---|", len(models)))
	}
	cell := func(m string, p Point, udp bool) string {
		r, ok := ix.get(m, p)
		if !ok {
			if rr, exists := ix[m][p]; exists && rr.Failed > 0 {
				return "failed"
			}
			return "–"
		}
		if udp {
			return fmt.Sprintf("%.2f (%.1f%%)", r.Gbps, r.LossPct)
		}
		return fmt.Sprintf("%.2f", r.Gbps)
	}
	b.WriteString("\n## TCP throughput by write size, 1 flow (Gbit/s, median; Fig. 8)\n\n")
	header("write")
	for _, p := range pointsOf(rep.Config, TCP, 1) {
		fmt.Fprintf(b, "| %s |", sizeLabel(p.WriteBytes))
		for _, m := range models {
			fmt.Fprintf(b, " %s |", cell(m, p, false))
		}
		b.WriteString("\n")
	}
	var multi []Point
	for _, p := range pointsOf(rep.Config, TCP, 0) {
		if p.Flows > 1 {
			multi = append(multi, p)
		}
	}
	if len(multi) > 0 {
		b.WriteString("\n## TCP with parallel flows (Gbit/s, sum of flows; Figs. 10-11)\n\n")
		header("flows × write")
		for _, p := range multi {
			fmt.Fprintf(b, "| %d × %s |", p.Flows, sizeLabel(p.WriteBytes))
			for _, m := range models {
				fmt.Fprintf(b, " %s |", cell(m, p, false))
			}
			b.WriteString("\n")
		}
	}
	if ps := pointsOf(rep.Config, UDP, 0); len(ps) > 0 {
		b.WriteString("\n## UDP at the highest rate (iperf3 -b 0): goodput Gbit/s (loss %); Figs. 12-13\n\n")
		header("datagram")
		for _, p := range ps {
			fmt.Fprintf(b, "| %s |", sizeLabel(p.WriteBytes))
			for _, m := range models {
				fmt.Fprintf(b, " %s |", cell(m, p, true))
			}
			b.WriteString("\n")
		}
	}
}

func writeRatios(b *strings.Builder, rep *Report, ix rowIndex) {
	var present []string
	for _, m := range sclpModels {
		if slices.Contains(rep.Config.Models, m) {
			present = append(present, m)
		}
	}
	if len(present) == 0 {
		return
	}
	b.WriteString("\n## Ratios of each SCLP mode to vxlan and to noencap (same run, same point)\n\n")
	b.WriteString("| point |")
	for _, m := range present {
		fmt.Fprintf(b, " %s / vxlan | %s / noencap |", m, m)
	}
	b.WriteString("\n|---|" + strings.Repeat("---|---|", len(present)) + "\n")
	for _, p := range rep.Config.Points {
		fmt.Fprintf(b, "| %s %d×%s |", p.Proto, p.Flows, sizeLabel(p.WriteBytes))
		for _, m := range present {
			fmt.Fprintf(b, " %s | %s |", ix.ratio(m, "vxlan", p), ix.ratio(m, "noencap", p))
		}
		b.WriteString("\n")
	}
}

func writeMergeCPU(b *strings.Builder, rep *Report, ix rowIndex) {
	b.WriteString("\n## Frames on the wire, frames delivered, CPU\n\n")
	b.WriteString("wire = frames received on the receiving host's underlay, delivered = frames received by the receiving VM, ")
	b.WriteString("merge = wire / delivered; cores = CPU attributable to the model (both iperf3 processes, the harness ")
	b.WriteString("process that runs the userspace SCLP datapaths of both hosts, ovs-vswitchd for OVS rows, and the ksoftirqd ")
	b.WriteString("threads), cores/Gbit = cores / goodput (sender and receiver together: both ends share this box); datapath = ")
	b.WriteString("the harness process alone; rx iperf3 = the receiving iperf3's CPU; machine = every busy CPU on the box ")
	b.WriteString("(/proc/stat, including other work: 2.00 means saturated).\n\n")
	b.WriteString("| point | model | Gbit/s | wire | wire avg bytes | delivered | merge | cores | cores/Gbit | datapath cores | rx iperf3 % | machine cores |\n")
	b.WriteString("|---|---|---|---|---|---|---|---|---|---|---|---|\n")
	for _, p := range rep.Config.Points {
		if !(p.Flows == 1 && (p.WriteBytes == 65536 || p.WriteBytes == 60000)) {
			continue
		}
		for _, m := range rep.Config.Models {
			r, ok := ix.get(m, p)
			if !ok {
				continue
			}
			fmt.Fprintf(b, "| %s %s | %s | %.2f | %.0f | %.0f | %.0f | %.1f | %.2f | %.3f | %.2f | %.0f | %.2f |\n", p.Proto,
				sizeLabel(p.WriteBytes), m, r.Gbps, r.WirePkts, r.WireFrameBytes, r.DeliveredPkts, r.MergeRatio(), r.CPUCores,
				r.CoresPerGbps(), r.DatapathCores, r.RxIperfCPU, r.MachineCores)
		}
	}
}

func writeFailures(b *strings.Builder, rep *Report) {
	var lines []string
	for _, r := range rep.Rows {
		if r.Failed > 0 {
			lines = append(lines, fmt.Sprintf("| %s | %s | %d of %d | %s |", r.Model, r.Point, r.Failed, r.Failed+r.Runs, oneLine(r.Error)))
		}
	}
	if len(lines) == 0 {
		return
	}
	b.WriteString("\n## Failed runs\n\n| model | point | failed | last error |\n|---|---|---|---|\n")
	b.WriteString(strings.Join(lines, "\n") + "\n")
}

func writeMicro(b *strings.Builder, res []MicroResult) {
	if len(res) == 0 {
		return
	}
	b.WriteString("\n## Microbenchmarks (go test -bench, same run)\n\n| package | benchmark | ns/op | MB/s | allocs/op | other |\n|---|---|---|---|---|---|\n")
	for _, r := range res {
		if r.Err != "" {
			fmt.Fprintf(b, "| %s | – | – | – | – | %s |\n", r.Package, oneLine(r.Err))
			continue
		}
		num := func(u string) string {
			if v, ok := r.Metrics[u]; ok {
				return fmt.Sprintf("%.4g", v)
			}
			return "–"
		}
		var other []string
		for _, u := range r.Units {
			switch u {
			case "ns/op", "MB/s", "B/op", "allocs/op":
			default:
				other = append(other, fmt.Sprintf("%.4g %s", r.Metrics[u], u))
			}
		}
		fmt.Fprintf(b, "| %s | %s | %s | %s | %s | %s |\n", r.Package, r.Name, num("ns/op"), num("MB/s"),
			num("allocs/op"), strings.Join(other, ", "))
	}
}

// sizeLabel formats a byte count like the paper's axes: 64, 1K, 64K.
func sizeLabel(n int) string {
	if n >= 1024 && n%1024 == 0 {
		return fmt.Sprintf("%dK", n/1024)
	}
	return fmt.Sprintf("%d", n)
}
