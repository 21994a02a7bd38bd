package main

import (
	"bytes"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestMedian(t *testing.T) {
	for _, c := range []struct {
		in   []float64
		want float64
	}{
		{[]float64{3}, 3},
		{[]float64{5, 1, 3}, 3},
		{[]float64{4, 1, 3, 2}, 2.5},
		{[]float64{2, 2, 9}, 2},
	} {
		in := append([]float64(nil), c.in...)
		if got := Median(c.in); got != c.want {
			t.Errorf("Median(%v) = %v, want %v", c.in, got, c.want)
		}
		if !equal(in, c.in) {
			t.Errorf("Median modified its input: %v -> %v", in, c.in)
		}
	}
	if !math.IsNaN(Median(nil)) {
		t.Error("Median(nil) is not NaN")
	}
}

func equal(a, b []float64) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

var (
	p64k = Point{TCP, 1, 65536}
	p1k  = Point{UDP, 1, 1024}
)

func sampleSet() []Sample {
	return []Sample{
		{Model: "vxlan", Point: p64k, Gbps: 4, WirePkts: 1000, DeliveredPkts: 100, CPUCores: 1},
		{Model: "vxlan", Point: p64k, Gbps: 6, WirePkts: 3000, DeliveredPkts: 300, CPUCores: 1},
		{Model: "vxlan", Point: p64k, Gbps: 5, WirePkts: 2000, DeliveredPkts: 200, CPUCores: 1},
		{Model: "sclp-udp", Point: p64k, Gbps: 5.5, WirePkts: 2200, DeliveredPkts: 50, CPUCores: 1.1},
		{Model: "sclp-udp", Point: p64k, Err: errors.New("iperf3 failed: boom")},
		{Model: "sclp", Point: p64k, Err: errors.New("datapath not available")},
		{Model: "vxlan", Point: p1k, Gbps: 1, LossPct: 2},
	}
}

func TestAggregate(t *testing.T) {
	rows := Aggregate(sampleSet(), []string{"vxlan", "sclp", "sclp-udp"}, []Point{p64k, p1k})
	if len(rows) != 4 {
		t.Fatalf("got %d rows, want 4 (vxlan×2, sclp, sclp-udp): %+v", len(rows), rows)
	}
	vx := rows[0]
	if vx.Model != "vxlan" || vx.Point != p64k || vx.Runs != 3 || vx.Gbps != 5 || vx.GbpsMin != 4 || vx.GbpsMax != 6 {
		t.Errorf("vxlan row %+v", vx)
	}
	if vx.WirePkts != 2000 || vx.DeliveredPkts != 200 || vx.MergeRatio() != 10 || vx.CoresPerGbps() != 0.2 {
		t.Errorf("vxlan counters %+v merge %v cores/Gbit %v", vx, vx.MergeRatio(), vx.CoresPerGbps())
	}
	if rows[1].Model != "vxlan" || rows[1].Point != p1k || rows[1].LossPct != 2 {
		t.Errorf("vxlan udp row %+v", rows[1])
	}
	if s := rows[2]; s.Model != "sclp" || s.OK() || s.Failed != 1 || !strings.Contains(s.Error, "not available") {
		t.Errorf("sclp row should be failed with the error: %+v", s)
	}
	if s := rows[3]; s.Model != "sclp-udp" || s.Runs != 1 || s.Failed != 1 || s.Gbps != 5.5 || s.Error == "" {
		t.Errorf("sclp-udp row: one good run, one failed: %+v", s)
	}
}

func TestCSVRoundTrip(t *testing.T) {
	rows := Aggregate(sampleSet(), []string{"vxlan", "sclp", "sclp-udp"}, []Point{p64k, p1k})
	var buf bytes.Buffer
	if err := WriteCSV(&buf, rows); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if !strings.HasPrefix(lines[0], "model,proto,flows,write_bytes,gbps,loss_pct,wire_pkts,delivered_pkts,runs,") {
		t.Errorf("header %q lacks the required leading columns", lines[0])
	}
	if want := "vxlan,tcp,1,65536,5.000,0.000,2000,200,3,10.000,"; !strings.HasPrefix(lines[1], want) {
		t.Errorf("line 1 %q, want prefix %q", lines[1], want)
	}
	if !strings.Contains(lines[3], ",failed,datapath not available") {
		t.Errorf("failed row %q", lines[3])
	}
	back, err := ReadCSV(&buf)
	if err != nil {
		t.Fatal(err)
	}
	if len(back) != len(rows) {
		t.Fatalf("read %d rows, wrote %d", len(back), len(rows))
	}
	for i := range rows {
		a, b := rows[i], back[i]
		if a.Model != b.Model || a.Point != b.Point || a.Runs != b.Runs || a.Failed != b.Failed ||
			math.Abs(a.Gbps-b.Gbps) > 1e-3 || a.WirePkts != b.WirePkts || a.Error != b.Error {
			t.Errorf("row %d: wrote %+v read %+v", i, a, b)
		}
	}
	if _, err := ReadCSV(strings.NewReader("a,b\n")); err == nil {
		t.Error("ReadCSV accepted a wrong header")
	}
}

const tcpJSON = `{"start":{},"intervals":[],"end":{"streams":[],
 "sum_sent":{"bits_per_second":5.1e9,"retransmits":3},
 "sum_received":{"bits_per_second":5.0e9},
 "cpu_utilization_percent":{"host_total":80.5,"remote_total":40.25}}}`

const udpJSON = `warning: UDP block size 60000 exceeds TCP MSS 1448, may result in fragmentation / drops
{"start":{},"end":{"sum":{"bits_per_second":2531008448.6,"lost_percent":7.44,"packets":5280,"lost_packets":393},
 "sum_sent":{"bytes":316800000,"bits_per_second":2531008448.6},"sum_received":{"bytes":293220000,"bits_per_second":2341741571.4,"lost_percent":7.44},
 "cpu_utilization_percent":{"host_total":30.6,"remote_total":7.7}}}`

const udpOldJSON = `{"end":{"sum":{"bits_per_second":2e9,"lost_percent":25},"cpu_utilization_percent":{}}}`

func TestParseIperf(t *testing.T) {
	r, err := ParseIperf([]byte(tcpJSON), TCP)
	if err != nil || r.Gbps != 5 || r.LossPct != 0 || r.LocalCPU != 80.5 || r.RemoteCPU != 40.25 {
		t.Errorf("tcp: %+v %v", r, err)
	}
	r, err = ParseIperf([]byte(udpJSON), UDP)
	if err != nil || math.Abs(r.Gbps-2.3417) > 1e-3 || math.Abs(r.LossPct-7.443) > 1e-3 {
		t.Errorf("udp: %+v %v", r, err)
	}
	// Almost nothing arrived: the byte counts say so even when lost_percent does not.
	r, err = ParseIperf([]byte(`{"end":{"sum":{"bits_per_second":1e9,"lost_percent":2.6},"sum_sent":{"bytes":1e9},
		"sum_received":{"bytes":2e7,"bits_per_second":0.16e9}}}`), UDP)
	if err != nil || math.Abs(r.LossPct-98) > 1e-9 || r.Gbps != 0.16 {
		t.Errorf("udp, lost_percent under-reported: %+v %v", r, err)
	}
	r, err = ParseIperf([]byte(udpOldJSON), UDP)
	if err != nil || r.Gbps != 1.5 || r.LossPct != 25 {
		t.Errorf("udp without sum_received: %+v %v", r, err)
	}
	if _, err := ParseIperf([]byte(`{"start":{},"end":{},"error":"unable to connect to server: Connection refused"}`), TCP); !errors.Is(err, ErrIperf) ||
		!strings.Contains(err.Error(), "Connection refused") {
		t.Errorf("error JSON: %v", err)
	}
	if _, err := ParseIperf([]byte(`{"end":{}}`), TCP); !errors.Is(err, ErrIperf) {
		t.Errorf("empty end: %v", err)
	}
	if _, err := ParseIperf([]byte("iperf3: error - not json"), TCP); err == nil {
		t.Error("garbage accepted")
	}
}

func TestIperfArgs(t *testing.T) {
	got := strings.Join(IperfArgs("192.168.100.11", Point{UDP, 4, 8192}, 3), " ")
	want := "iperf3 -c 192.168.100.11 -J -i 0 -t 3 -l 8192 -P 4 --connect-timeout 3000 -u -b 0 -w 4M"
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := IperfArgs("x", Point{TCP, 1, 64}, 0.2); got[7] != "1" {
		t.Errorf("duration below 1 s gave -t %s", got[7])
	}
}

func TestParseProcStat(t *testing.T) {
	busy, err := parseProcStat("cpu  100 5 50 1000 20 3 7 2 9 1\ncpu0 1 2 3 4 5 6 7 8 9 10\n")
	if err != nil || busy != 100+5+50+3+7+2 {
		t.Errorf("busy %d, %v", busy, err)
	}
	if _, err := parseProcStat("intr 1 2 3"); err == nil {
		t.Error("bad line accepted")
	}
}

func TestStatTicks(t *testing.T) {
	line := "1234 (ovs vswitchd) S 1 1234 1234 0 -1 4194560 100 0 0 0 250 75 0 0 20 0 3 0 100 0 0"
	if got := statTicks(line); got != 325 {
		t.Errorf("statTicks = %d, want 325", got)
	}
	if statTicks("garbage") != 0 {
		t.Error("garbage parsed")
	}
}

func TestTCPListens(t *testing.T) {
	tab := `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0B64A8C0:1451 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1 1 0 100 0 0 10 0
   1: 0B64A8C0:1452 0C64A8C0:C350 01 00000000:00000000 00:00000000 00000000     0        0 2 1 0 100 0 0 10 0
`
	if !tcpListens(tab, 5201) {
		t.Error("listener on 5201 not found")
	}
	if tcpListens(tab, 5202) {
		t.Error("established socket on 5202 taken for a listener")
	}
}

func TestParseBenchOutput(t *testing.T) {
	out := `goos: linux
goarch: amd64
pkg: github.com/sclp-ovs/sclp-ovs/offload/sclp
BenchmarkCopy64K-2        	   56186	     21034 ns/op	3115.75 MB/s	       0 B/op	       0 allocs/op
BenchmarkRx-2   	 1000000	       812.5 ns/op	        45.00 segments/msg	       0 B/op	       0 allocs/op
PASS
ok  	github.com/sclp-ovs/sclp-ovs/offload/sclp	3.1s
`
	res := ParseBenchOutput("./offload/sclp", []byte(out))
	if len(res) != 2 {
		t.Fatalf("got %d results: %+v", len(res), res)
	}
	if r := res[0]; r.Name != "BenchmarkCopy64K-2" || r.Iterations != 56186 || r.Metrics["ns/op"] != 21034 ||
		r.Metrics["MB/s"] != 3115.75 || r.Metrics["allocs/op"] != 0 {
		t.Errorf("first: %+v", r)
	}
	if r := res[1]; r.Metrics["segments/msg"] != 45 || r.Metrics["ns/op"] != 812.5 {
		t.Errorf("custom metric: %+v", r)
	}
	var buf bytes.Buffer
	if err := WriteMicroCSV(&buf, append(res, MicroResult{Package: "./offload/bpf", Err: "exit status 1"})); err != nil {
		t.Fatal(err)
	}
	if s := buf.String(); !strings.Contains(s, "45 segments/msg") || !strings.Contains(s, "./offload/bpf,,,,,,,,exit status 1") {
		t.Errorf("micro.csv:\n%s", s)
	}
}

func TestConfigFromEnv(t *testing.T) {
	env := func(kv map[string]string) func(string) string { return func(k string) string { return kv[k] } }
	full, err := ConfigFromEnv(env(nil))
	if err != nil || full.Quick || full.Runs < 3 || len(full.Models) != len(AllModels()) {
		t.Errorf("full: %+v %v", full, err)
	}
	var sizes []int
	for _, p := range full.Points {
		if p.Proto == TCP && p.Flows == 1 {
			sizes = append(sizes, p.WriteBytes)
		}
	}
	if sizes[0] != 64 || sizes[len(sizes)-1] != 65536 {
		t.Errorf("full TCP sizes %v do not span 64 B to 64 KB", sizes)
	}
	q, err := ConfigFromEnv(env(map[string]string{"BENCH_QUICK": "1", "BENCH_MODELS": "vxlan, sclp-udp",
		"BENCH_SECS": "2", "BENCH_RUNS": "2", "BENCH_MICRO": "off", "BENCH_OUT": "/x", "BENCH_SEARCH": "3"}))
	if err != nil || !q.Quick || len(q.Models) != 2 || q.Models[1] != "sclp-udp" || q.Duration != 2*time.Second ||
		q.Runs != 2 || q.MicroBenchtime != "" || q.OutDir != "/x" || q.SearchRuns != 3 {
		t.Errorf("quick: %+v %v", q, err)
	}
	for _, bad := range []map[string]string{{"BENCH_MODELS": "stt"}, {"BENCH_SECS": "0.5"}, {"BENCH_RUNS": "0"}, {"BENCH_SEARCH": "-1"}} {
		if _, err := ConfigFromEnv(env(bad)); err == nil {
			t.Errorf("%v accepted", bad)
		}
	}
}

func TestModelsWellFormed(t *testing.T) {
	seen := map[string]bool{}
	for _, m := range models() {
		if seen[m.Short] || len(m.Short) > 6 || !strings.HasPrefix(m.Short, "b") {
			t.Errorf("model %s: short name %q duplicate or too long", m.Name, m.Short)
		}
		seen[m.Short] = true
		if m.VMMTU < 1280 || m.VMMTU > 65000 || m.build == nil || m.Note == "" {
			t.Errorf("model %s incomplete: %+v", m.Name, m)
		}
	}
	for _, name := range []string{"noencap", "vxlan", "sclp", "sclp-udp", "sclp-nomerge", "sclp-jumbo",
		"sclp-udp-jumbo", "ovs-vxlan", "ovs-geneve", "ovs-gre"} {
		if _, ok := ModelByName(name); !ok {
			t.Errorf("model %s missing", name)
		}
	}
}

func fakeReport(t *testing.T) *Report {
	var samples []Sample
	models := []string{"noencap", "vxlan", "sclp", "sclp-udp", "sclp-nomerge"}
	var points []Point
	for _, s := range []int{64, 1024, 65536} {
		points = append(points, Point{TCP, 1, s})
	}
	points = append(points, Point{TCP, 2, 65536}, Point{TCP, 4, 65536}, Point{UDP, 1, 1024}, Point{UDP, 1, 60000})
	for mi, m := range models {
		for _, p := range points {
			s := Sample{Model: m, Point: p, Gbps: float64(mi+1) * math.Log2(float64(p.WriteBytes)) / 4 * float64(p.Flows),
				WirePkts: 1000, DeliveredPkts: uint64(10 * (mi + 1)), CPUCores: 0.5}
			if p.Proto == UDP {
				s.LossPct = float64(mi)
			}
			if m == "sclp" {
				s = Sample{Model: m, Point: p, Err: errors.New("datapath not available")}
			}
			samples = append(samples, s)
		}
	}
	cfg := Config{Models: models, Points: points, Runs: 1, Duration: time.Second, OutDir: t.TempDir()}
	rep := &Report{Config: cfg, Started: time.Now(), Samples: samples, BuildErrs: map[string]error{}}
	for _, n := range models {
		m, _ := ModelByName(n)
		rep.Models = append(rep.Models, m)
	}
	rep.BuildErrs["sclp"] = errors.New("datapath not available")
	rep.Rows = Aggregate(samples, models, points)
	rep.Micro = []MicroResult{{Package: "./offload/sclp", Name: "BenchmarkX-2", Iterations: 10,
		Metrics: map[string]float64{"ns/op": 12}, Units: []string{"ns/op"}}}
	return rep
}

func TestSummary(t *testing.T) {
	rep := fakeReport(t)
	var buf bytes.Buffer
	if err := WriteSummary(&buf, rep); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{
		"| sclp-udp / vxlan | sclp-udp / noencap |",
		"| tcp 1×64K |",     // a ratio row
		"| 2.00x | 4.00x |", // sclp-udp (4) / vxlan (2), / noencap (1) at every point
		"**failed**: datapath not available",
		"| 64K | 4.00 | 8.00 | failed | 16.00 | 20.00 |", // a failed model's cells say so (sclp column)
		"BenchmarkX-2",
		"not measurable here: no STT",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
}

func TestOutputs(t *testing.T) {
	rep := fakeReport(t)
	paths, err := WriteOutputs(rep)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{"results.csv", "micro.csv", "summary.md"}, PlotFiles...)
	if len(paths) != len(want) {
		t.Fatalf("wrote %v, want %v", paths, want)
	}
	for _, name := range want {
		b, err := os.ReadFile(filepath.Join(rep.Config.OutDir, name))
		if err != nil {
			t.Fatal(err)
		}
		if strings.HasSuffix(name, ".png") && (len(b) < 2000 || !bytes.HasPrefix(b, []byte("\x89PNG\r\n\x1a\n"))) {
			t.Errorf("%s: %d bytes, not a PNG with content", name, len(b))
		}
	}
}

func TestParseIperfServer(t *testing.T) {
	out := `{"start":{},"end":{"sum":{"bytes":0},"sum_received":{"bytes":343952000,"seconds":1.002703,"lost_percent":1.98},
	"cpu_utilization_percent":{"host_total":31.5}}}`
	r, err := ParseIperfServer([]byte(out))
	if err != nil || r.Bytes != 343952000 || r.CPU != 31.5 || math.Abs(r.Gbps()-2.7442) > 1e-3 {
		t.Errorf("%+v %v (%.4f Gbit/s)", r, err, r.Gbps())
	}
	if _, err := ParseIperfServer([]byte(`{"end":{}}`)); !errors.Is(err, ErrIperf) {
		t.Errorf("no sum_received: %v", err)
	}
	if _, err := ParseIperfServer([]byte(`{"error":"the client has unexpectedly closed the connection"}`)); !errors.Is(err, ErrIperf) {
		t.Errorf("server error: %v", err)
	}
	if (ServerResult{Bytes: 1}).Gbps() != 0 {
		t.Error("zero seconds gave a rate")
	}
}

// pathModel is a UDP path that carries up to capacity Mbit/s and loses what is offered beyond
// it, behind a sender that cannot offer more than sender Mbit/s.
func pathModel(capacity, sender float64) func(float64) Sample {
	return func(mbps float64) Sample {
		sent := min(mbps, sender)
		got := min(sent, capacity)
		return Sample{Gbps: got / 1000, LossPct: 100 * (1 - got/sent)}
	}
}

func TestRateSearch(t *testing.T) {
	for _, tc := range []struct {
		name                    string
		start, capacity, sender float64
		runs                    int
		up                      float64
		wantMin, wantMax        float64 // Gbit/s of the result
		wantOK, wantBracketed   bool
	}{
		{"below capacity: steps up, then bisects", 5000, 6000, 1e9, 5, 0, 5.7, 6.0, true, true},
		{"above capacity: steps down", 8000, 6000, 1e9, 5, 0, 5.2, 6.0, true, true},
		{"sender-bound: no loss at any rate", 1500, 1e9, 1650, 5, 0, 1.65, 1.65, true, true},
		{"never passes: the lowest offered run", 8000, 100, 1e9, 4, 0, 0.1, 0.1, false, false},
		{"two runs: a lower bound", 5000, 6000, 1e9, 2, 0, 5.75, 5.75, true, false},
		{"collapsed start climbs x2", 30, 500, 1e9, 5, 2, 0.48, 0.48, true, false},
		{"collapsed start, bracketed", 30, 200, 1e9, 5, 2, 0.12, 0.2, true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := &RateSearch{StartMbps: tc.start, Runs: tc.runs, Up: tc.up}
			run := pathModel(tc.capacity, tc.sender)
			n := 0
			for {
				mbps, ok := s.Next()
				if !ok {
					break
				}
				if n++; n > tc.runs {
					t.Fatalf("more than %d runs", tc.runs)
				}
				s.Record(mbps, run(mbps))
			}
			best, ok := s.Result()
			if ok != tc.wantOK || best.Sample.Gbps < tc.wantMin || best.Sample.Gbps > tc.wantMax {
				t.Fatalf("best %.3f Gbit/s at %.0f ok %v, want %.2f-%.2f ok %v (trace %+v)", best.Sample.Gbps,
					best.OfferedMbps, ok, tc.wantMin, tc.wantMax, tc.wantOK, s.trace)
			}
			if ok && best.Sample.LossPct > MaxSustainedLossPct {
				t.Fatalf("best run lost %.2f%%", best.Sample.LossPct)
			}
			if s.Bracketed() != tc.wantBracketed {
				t.Fatalf("bracketed %v, want %v (trace %+v)", s.Bracketed(), tc.wantBracketed, s.trace)
			}
		})
	}
	t.Run("a failed run ends the search", func(t *testing.T) {
		s := &RateSearch{StartMbps: 1000, Runs: 5}
		mbps, _ := s.Next()
		s.Record(mbps, Sample{Err: errors.New("iperf3 failed")})
		if _, ok := s.Next(); ok {
			t.Fatal("search went on after a failed run")
		}
		if best, ok := s.Result(); ok || best.OfferedMbps != 0 {
			t.Fatalf("result %+v ok %v from a failed run", best, ok)
		}
	})
}

func TestIperfArgsAt(t *testing.T) {
	got := strings.Join(IperfArgsAt("10.0.0.2", Point{UDP, 1, 60000}, 3, 5432.4), " ")
	if !strings.HasSuffix(got, "-u -b 5432M -w 4M") {
		t.Errorf("got %s", got)
	}
	if got := strings.Join(IperfArgsAt("x", Point{TCP, 1, 65536}, 3, 1000), " "); strings.Contains(got, "-b") {
		t.Errorf("TCP got a rate: %s", got)
	}
}

func TestSustainedSummaryAndCSV(t *testing.T) {
	rep := fakeReport(t)
	p := Point{UDP, 1, 60000}
	mk := func(m string, gbps, loss float64, ok bool) Sustained {
		tr := Trial{OfferedMbps: gbps * 1100, Sample: Sample{Model: m, Point: p, Gbps: gbps, LossPct: loss, CPUCores: 1}}
		return Sustained{Model: m, Point: p, Best: tr, OK: ok, Trace: []Trial{tr}}
	}
	rep.Config.SearchRuns = 4
	lower := mk("sclp", 0.5, 0, true)
	lower.LowerBound = true
	rep.Sustained = []Sustained{mk("noencap", 2, 0, true), mk("vxlan", 1.5, 0.2, true), lower, mk("sclp-udp", 6, 0.5, true),
		mk("sclp-nomerge", 1, 30, false)}
	var buf bytes.Buffer
	if err := WriteSummary(&buf, rep); err != nil {
		t.Fatal(err)
	}
	s := buf.String()
	for _, want := range []string{
		"## UDP at the rate the path sustains",
		"| 60000 | 2.00 (0.0%) at 2.20G | 1.50 (0.2%) at 1.65G | >= 0.50 (0.0%) at 0.55G, no failure above | 6.00 (0.5%) at 6.60G | none <= 1% (30.0% at 1.10G) |",
		// sclp: a lower bound, no ratio; sclp-udp / vxlan, / noencap; sclp-nomerge never passed
		"| udp 1×60000 sustained | – | – | 4.00x | 3.00x | – | – |",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q:\n%s", want, s)
		}
	}
	buf.Reset()
	if err := WriteSustainedCSV(&buf, rep.Sustained); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), "sclp-udp,udp,1,60000,yes,6600,6.000,0.500,1.000,0.167,1,6600:6.000:0.50,") {
		t.Errorf("sustained.csv:\n%s", buf.String())
	}
}

func TestSearchStart(t *testing.T) {
	// Goodput above the wire rate: start from the goodput.
	if got := startMbps(Row{Gbps: 4, WirePkts: 100, WireFrameBytes: 1500}, 3*time.Second); math.Abs(got-3600) > 1e-6 {
		t.Errorf("start %.1f Mbit/s, want 3600", got)
	}
	// Fragmented datagrams, collapsed goodput: the wire carried 1.5 Gbit/s of fragments.
	if got := startMbps(Row{Gbps: 0.001, WirePkts: 375000, WireFrameBytes: 1500}, 3*time.Second); math.Abs(got-1350) > 1e-6 {
		t.Errorf("start %.1f Mbit/s, want 1350", got)
	}
}

func TestFragMemory(t *testing.T) {
	st := "sockets: used 5\nTCP: inuse 0 orphan 0 tw 0 alloc 0 mem 0\nUDP: inuse 1 mem 2\nFRAG: inuse 3 memory 196608\n"
	if got := fragMemory(st); got != 196608 {
		t.Errorf("fragMemory = %d, want 196608", got)
	}
	if got := fragMemory("FRAG: inuse 0 memory 0\n"); got != 0 {
		t.Errorf("fragMemory = %d, want 0", got)
	}
}

func TestIPInReceives(t *testing.T) {
	snmp := "Ip: Forwarding DefaultTTL InReceives InHdrErrors\nIp: 2 64 25468 0\nIcmp: InMsgs\nIcmp: 3\n"
	if got := ipInReceives(snmp); got != 25468 {
		t.Errorf("ipInReceives = %d, want 25468", got)
	}
	if got := ipInReceives("Udp: InDatagrams\nUdp: 5\n"); got != -1 {
		t.Errorf("ipInReceives without an Ip line = %d, want -1", got)
	}
}
