package main

import (
	"fmt"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// DevCounter reads a device's packet counters inside a network namespace through netlink,
// without forking.
type DevCounter struct {
	h   *netlink.Handle
	dev string
}

// NewDevCounter opens a netlink handle in namespace nsName for device dev.
func NewDevCounter(nsName, dev string) (*DevCounter, error) {
	ns, err := netns.GetFromName(nsName)
	if err != nil {
		return nil, fmt.Errorf("open netns %s: %w", nsName, err)
	}
	defer ns.Close()
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		return nil, fmt.Errorf("netlink handle in %s: %w", nsName, err)
	}
	c := &DevCounter{h: h, dev: dev}
	if _, err := c.Read(); err != nil {
		h.Close()
		return nil, err
	}
	return c, nil
}

// Packets are a device's rx and tx packet counters and its rx bytes.
type Packets struct{ Rx, Tx, RxBytes uint64 }

// Read returns the device's current counters.
func (c *DevCounter) Read() (Packets, error) {
	l, err := c.h.LinkByName(c.dev)
	if err != nil {
		return Packets{}, fmt.Errorf("link %s: %w", c.dev, err)
	}
	s := l.Attrs().Statistics
	if s == nil {
		return Packets{}, fmt.Errorf("link %s: no statistics", c.dev)
	}
	return Packets{Rx: s.RxPackets, Tx: s.TxPackets, RxBytes: s.RxBytes}, nil
}

// Close releases the netlink handle.
func (c *DevCounter) Close() { c.h.Close() }

// CPUSnapshot is the machine's and this process's CPU time at one instant.
type CPUSnapshot struct {
	at        time.Time
	busy      uint64 // jiffies, all CPUs, not idle or iowait
	self      time.Duration
	statErr   error
	rusageErr error
}

// TakeCPU reads /proc/stat and getrusage(RUSAGE_SELF).
func TakeCPU() CPUSnapshot {
	s := CPUSnapshot{at: time.Now()}
	b, err := os.ReadFile("/proc/stat")
	if err == nil {
		s.busy, err = parseProcStat(string(b))
	}
	s.statErr = err
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		s.rusageErr = err
	} else {
		s.self = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	}
	return s
}

// clkTck is USER_HZ, 100 on every Linux architecture we run on.
const clkTck = 100

// parseProcStat returns the busy jiffies (everything but idle and iowait) of the "cpu" line.
func parseProcStat(s string) (uint64, error) {
	line, _, _ := strings.Cut(s, "\n")
	f := strings.Fields(line)
	if len(f) < 5 || f[0] != "cpu" {
		return 0, fmt.Errorf("parse /proc/stat: unexpected first line %q", line)
	}
	var busy uint64
	for i, v := range f[1:] {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("parse /proc/stat field %d: %w", i+1, err)
		}
		if i == 3 || i == 4 || i >= 8 { // idle, iowait; guest and guest_nice are already in user
			continue
		}
		busy += n
	}
	return busy, nil
}

// CoresSince returns the machine's busy cores and this process's cores between s0 and s.
func (s CPUSnapshot) CoresSince(s0 CPUSnapshot) (machine, self float64) {
	el := s.at.Sub(s0.at).Seconds()
	if el <= 0 {
		return 0, 0
	}
	if s.statErr == nil && s0.statErr == nil {
		machine = float64(s.busy-s0.busy) / clkTck / el
	}
	if s.rusageErr == nil && s0.rusageErr == nil {
		self = (s.self - s0.self).Seconds() / el
	}
	return machine, self
}

// procTicks returns the user+system clock ticks of each process (0 for one that is gone).
func procTicks(pids []int) uint64 {
	var sum uint64
	for _, pid := range pids {
		b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
		if err != nil {
			continue
		}
		sum += statTicks(string(b))
	}
	return sum
}

// statTicks parses utime+stime from a /proc/PID/stat line (fields 14 and 15; the command
// name in parentheses may contain spaces).
func statTicks(s string) uint64 {
	i := strings.LastIndexByte(s, ')')
	if i < 0 {
		return 0
	}
	f := strings.Fields(s[i+1:])
	// f[0] is field 3 (state): utime is field 14, stime field 15.
	if len(f) < 13 {
		return 0
	}
	u, _ := strconv.ParseUint(f[11], 10, 64)
	st, _ := strconv.ParseUint(f[12], 10, 64)
	return u + st
}

// softirqThreads returns the PIDs of the ksoftirqd kernel threads: softirq work that is not
// done inline in a process's context lands there.
func softirqThreads() []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/comm")
		if err == nil && strings.HasPrefix(string(b), "ksoftirqd/") {
			pids = append(pids, pid)
		}
	}
	return pids
}
