package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// iperfPort is iperf3's default port.
const iperfPort = 5201

// softirqPIDs are the ksoftirqd threads, found once.
var softirqPIDs = softirqThreads()

// ErrImplausible is returned (wrapped) when iperf3 claims more bytes received than the
// receiving VM's device saw: the run is reported as failed rather than trusted.
var ErrImplausible = errors.New("iperf3 result contradicts the device counters")

// startServer starts a one-off iperf3 server (-1 -J) in VM2 and waits until it listens.
func (e *Env) startServer(tb testbed.TB) (*testbed.Proc, error) {
	srv := e.VMs[1].StartProc(tb, "iperf3", "-s", "-1", "-J", "-i", "0", "-B", e.ServerIP.String())
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		ok, err := listening(e.VMs[1].NS, iperfPort)
		if err != nil {
			srv.Stop(time.Second)
			return nil, err
		}
		if ok {
			return srv, nil
		}
		select {
		case <-srv.Done():
			return nil, fmt.Errorf("iperf3 server in %s exited: %v: %s", e.VMs[1].Name, srv.Err(), srv.Output())
		case <-time.After(20 * time.Millisecond):
		}
	}
	srv.Stop(time.Second)
	return nil, fmt.Errorf("iperf3 server in %s does not listen after 5 s", e.VMs[1].Name)
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

// Measure runs one iperf3 client in VM1 toward a one-off server in VM2 at point p and reads
// the counters around it. A failure is returned in Sample.Err.
func (e *Env) Measure(ctx context.Context, tb testbed.TB, p Point, d time.Duration) Sample {
	return e.MeasureAt(ctx, tb, p, d, 0)
}

// MeasureAt is Measure with a UDP point offered at mbps Mbit/s (0: unthrottled).
func (e *Env) MeasureAt(ctx context.Context, tb testbed.TB, p Point, d time.Duration, mbps float64) Sample {
	s := Sample{Model: e.Model.Name, Point: p}
	s.Err = e.measure(ctx, tb, p, d, mbps, &s)
	return s
}

func (e *Env) measure(ctx context.Context, tb testbed.TB, p Point, d time.Duration, mbps float64, s *Sample) error {
	if p.Proto == UDP {
		if err := e.waitFragsExpired(); err != nil {
			return err
		}
		if err := e.waitQuiet(); err != nil {
			return err
		}
	}
	srv, err := e.startServer(tb)
	if err != nil {
		return err
	}
	defer srv.Stop(time.Second)
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
	cmd := e.VMs[0].CommandContext(cctx, IperfArgsAt(e.ServerIP.String(), p, d.Seconds(), mbps)...)
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
	select { // the one-off server prints its JSON and exits once the client is done
	case <-srv.Done():
	case <-time.After(5 * time.Second):
		return fmt.Errorf("%w: server did not finish 5 s after the client", ErrIperf)
	}
	sr, err := ParseIperfServer([]byte(srv.Output()))
	if err != nil {
		return err
	}
	s.Gbps, s.RxIperfCPU = sr.Gbps(), sr.CPU
	if p.Proto == UDP {
		s.LossPct = r.LossPct
		if r.SentBytes > 0 {
			s.LossPct = max(0, 100*(1-sr.Bytes/r.SentBytes))
		}
	}
	s.WirePkts, s.DeliveredPkts, s.WireBytes = w1.Rx-w0.Rx, d1.Rx-d0.Rx, w1.RxBytes-w0.RxBytes
	if dev := float64(d1.RxBytes - d0.RxBytes); sr.Bytes > dev*1.01+1e5 {
		return fmt.Errorf("%w: server counted %.0f bytes, the VM's device received %.0f", ErrImplausible, sr.Bytes, dev)
	}
	s.MachineCores, s.DatapathCores = c1.CoresSince(c0)
	el := c1.at.Sub(c0.at).Seconds()
	s.CPUCores = (r.LocalCPU+sr.CPU)/100 + s.DatapathCores + float64(t1-t0)/clkTck/max(el, 1e-3)
	return nil
}

// waitFragsExpired waits (at most fragTimeout plus a second) until the receiving VM holds no
// IPv4 reassembly queue: leftovers of an earlier run would take the fragment memory (see
// Build).
func (e *Env) waitFragsExpired() error {
	deadline := time.Now().Add(fragTimeout + time.Second)
	for {
		var mem int
		err := e.VMs[1].NS.Do(func() error {
			b, err := os.ReadFile("/proc/thread-self/net/sockstat")
			mem = fragMemory(string(b))
			return err
		})
		if err != nil || mem == 0 || time.Now().After(deadline) {
			return err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// fragMemory reads the "FRAG: inuse N memory M" line of /proc/net/sockstat (0 if absent).
func fragMemory(sockstat string) int {
	for _, l := range strings.Split(sockstat, "\n") {
		f := strings.Fields(l)
		if len(f) == 5 && f[0] == "FRAG:" && f[3] == "memory" {
			n, _ := strconv.Atoi(f[4])
			return n
		}
	}
	return 0
}

// waitQuiet waits (at most 3 s) until the receiving VM has received no IP packet for 200 ms.
// Datagrams of an overloaded UDP run still queued in a tunnel (userspace datapaths have deep
// socket buffers) would otherwise reach the next run's iperf3 server first, and an iperf3 UDP
// server connects its socket to the source of the first datagram it gets: the new client's
// datagrams would all be refused (a run measuring 0 Gbit/s right after a flood).
func (e *Env) waitQuiet() error {
	last := int64(-1)
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); time.Sleep(200 * time.Millisecond) {
		var n int64
		err := e.VMs[1].NS.Do(func() error {
			b, err := os.ReadFile("/proc/thread-self/net/snmp")
			n = ipInReceives(string(b))
			return err
		})
		if err != nil || n == last {
			return err
		}
		last = n
	}
	return nil
}

// ipInReceives reads Ip: InReceives from /proc/net/snmp text (-1 if absent).
func ipInReceives(snmp string) int64 {
	lines := strings.Split(snmp, "\n")
	for i := 0; i+1 < len(lines); i++ {
		h, v := strings.Fields(lines[i]), strings.Fields(lines[i+1])
		if len(h) == len(v) && len(h) > 0 && h[0] == "Ip:" {
			for j := range h {
				if h[j] == "InReceives" {
					n, err := strconv.ParseInt(v[j], 10, 64)
					if err == nil {
						return n
					}
				}
			}
		}
	}
	return -1
}
