//go:build linux

package udp

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"
)

func threadTimes(pid int) map[string]uint64 {
	out := map[string]uint64{}
	tasks, _ := filepath.Glob(fmt.Sprintf("/proc/%d/task/*/stat", pid))
	for _, t := range tasks {
		b, _ := os.ReadFile(t)
		s := string(b)
		i := strings.LastIndex(s, ")")
		f := strings.Fields(s[i+2:])
		u, _ := strconv.ParseUint(f[11], 10, 64)
		k, _ := strconv.ParseUint(f[12], 10, 64)
		out[t] = u + k
	}
	return out
}

func TestDebugThreads(t *testing.T) {
	nice, _ := strconv.Atoi(os.Getenv("NICE"))
	p := newPair(t, pairOptions{opts: Options{WorkerNice: nice}})
	p.ping(t)
	srv := p.vms[1].StartProc(t, "iperf3", "-s", "-1")
	time.Sleep(300 * time.Millisecond)
	cli := p.vms[0].StartProc(t, "iperf3", "-c", p.vms[1].IP.String(), "-t", "6", "-l", "64K")
	time.Sleep(1500 * time.Millisecond)
	pids := map[string]int{"test": os.Getpid(), "cli": cli.Pid(), "srv": srv.Pid()}
	before := map[string]map[string]uint64{}
	for n, pid := range pids {
		before[n] = threadTimes(pid)
	}
	b0, t0 := cpuBusy()
	time.Sleep(3 * time.Second)
	b1, t1 := cpuBusy()
	for n, pid := range pids {
		after := threadTimes(pid)
		var xs []string
		for k, v := range after {
			if d := v - before[n][k]; d > 3 {
				xs = append(xs, fmt.Sprintf("%d%%", d/3))
			}
		}
		sort.Strings(xs)
		t.Logf("%s threads (>1%%): %v", n, xs)
	}
	t.Logf("machine busy %.0f%% of %d cpus", 100*float64(b1-b0)/float64(t1-t0), numCPU())
	<-cli.Done()
	t.Log(cli.Output()[len(cli.Output())-300:])
	b, _ := os.ReadFile("/proc/softirqs")
	_ = b
}
