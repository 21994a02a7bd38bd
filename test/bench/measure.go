package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// iperfPort is iperf3's default port.
const iperfPort = 5201

// softirqPIDs are the ksoftirqd threads, found once.
var softirqPIDs = softirqThreads()

// startServer starts a persistent iperf3 server in VM2 and waits until it listens.
func (e *Env) startServer(tb testbed.TB) error {
	if e.server != nil {
		e.server.Stop(2 * time.Second)
	}
	e.server = e.VMs[1].StartProc(tb, "iperf3", "-s", "-B", e.ServerIP.String())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := listening(e.VMs[1].NS, iperfPort)
		if err != nil {
			return err
		}
		if ok {
			return nil
		}
		select {
		case <-e.server.Done():
			return fmt.Errorf("iperf3 server in %s exited: %v: %s", e.VMs[1].Name, e.server.Err(), e.server.Output())
		case <-time.After(50 * time.Millisecond):
		}
	}
	return fmt.Errorf("iperf3 server in %s does not listen after 5 s", e.VMs[1].Name)
}

// listening reports whether a TCP socket listens on port inside ns (/proc/thread-self/net/tcp
// read from a thread inside the namespace).
func listening(ns *testbed.NS, port int) (bool, error) {
	var found bool
	err := ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/tcp")
		if err != nil {
			return err
		}
		found = tcpListens(string(b), port)
		return nil
	})
	return found, err
}

// tcpListens scans /proc/net/tcp text for a socket in LISTEN state (0A) on port.
func tcpListens(procNetTCP string, port int) bool {
	want := fmt.Sprintf(":%04X", port)
	for _, l := range strings.Split(procNetTCP, "\n")[1:] {
		f := strings.Fields(l)
		if len(f) > 3 && strings.HasSuffix(f[1], want) && f[3] == "0A" {
			return true
		}
	}
	return false
}

// Measure runs one iperf3 client in VM1 toward VM2 at point p and reads the counters around
// it. A failure is returned in Sample.Err; the server is restarted after one.
func (e *Env) Measure(ctx context.Context, tb testbed.TB, p Point, d time.Duration) Sample {
	s := Sample{Model: e.Model.Name, Point: p}
	s.Err = e.measure(ctx, p, d, &s)
	if s.Err != nil && ctx.Err() == nil {
		if err := e.startServer(tb); err != nil {
			s.Err = fmt.Errorf("%w; restarting the server: %v", s.Err, err)
		}
	}
	return s
}

func (e *Env) measure(ctx context.Context, p Point, d time.Duration, s *Sample) error {
	w0, err := e.Wire.Read()
	if err != nil {
		return err
	}
	d0, err := e.Deliver.Read()
	if err != nil {
		return err
	}
	c0 := TakeCPU()
	extra := append(slices.Clone(e.pids), softirqPIDs...)
	t0 := procTicks(extra)
	cctx, cancel := context.WithTimeout(ctx, d+20*time.Second)
	defer cancel()
	cmd := e.VMs[0].CommandContext(cctx, IperfArgs(e.ServerIP.String(), p, d.Seconds())...)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, runErr := cmd.Output()
	c1 := TakeCPU()
	t1 := procTicks(extra)
	w1, err := e.Wire.Read()
	if err != nil {
		return err
	}
	d1, err := e.Deliver.Read()
	if err != nil {
		return err
	}
	r, perr := ParseIperf(out, p.Proto)
	if perr != nil {
		if runErr != nil {
			return fmt.Errorf("iperf3: %w (%v) %s", perr, runErr, strings.TrimSpace(stderr.String()))
		}
		return perr
	}
	s.Gbps, s.LossPct, s.RxIperfCPU = r.Gbps, r.LossPct, r.RemoteCPU
	s.WirePkts, s.DeliveredPkts = w1.Rx-w0.Rx, d1.Rx-d0.Rx
	s.MachineCores, s.DatapathCores = c1.CoresSince(c0)
	el := c1.at.Sub(c0.at).Seconds()
	s.CPUCores = (r.LocalCPU+r.RemoteCPU)/100 + s.DatapathCores + float64(t1-t0)/clkTck/max(el, 1e-3)
	return nil
}
