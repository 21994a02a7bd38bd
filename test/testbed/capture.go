package testbed

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// CaptureOptions configures StartCapture.
type CaptureOptions struct {
	// Filter is a tcpdump (pcap) filter expression, e.g. "ip proto 234" or "udp port 4795".
	Filter string
	// Direction is "in", "out" or "" (both), tcpdump's -Q.
	Direction string
	// SnapLen bytes are kept per packet (default 262144: whole 64 KB frames).
	SnapLen int
	// Count stops the capture after this many packets (0: until Stop).
	Count int
}

// Capture is a running tcpdump in a namespace writing a pcap file.
type Capture struct {
	// Path is the pcap file; complete after Stop.
	Path string
	proc *Proc
}

// StartCapture starts tcpdump on dev inside the namespace and waits until it listens. The
// file lives in a directory that tb.Cleanup removes; tb.Cleanup also stops tcpdump.
func (n *NS) StartCapture(tb TB, dev string, opts CaptureOptions) *Capture {
	tb.Helper()
	dir, err := os.MkdirTemp("", "cap-"+n.Name+"-")
	if err != nil {
		tb.Fatalf("testbed: capture dir: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	if opts.SnapLen == 0 {
		opts.SnapLen = 262144
	}
	path := filepath.Join(dir, dev+".pcap")
	// -U: write each packet at once, so the file is complete when tcpdump exits on SIGTERM.
	// -B 32768: a 32 MiB kernel buffer (default 2 MiB), so a tcpdump that gets no CPU for a
	// while on a loaded machine does not drop what the test then looks for.
	args := []string{"tcpdump", "-n", "-U", "-B", "32768", "-i", dev, "-s", strconv.Itoa(opts.SnapLen), "-w", path}
	if opts.Direction != "" {
		args = append(args, "-Q", opts.Direction)
	}
	if opts.Count > 0 {
		args = append(args, "-c", strconv.Itoa(opts.Count))
	}
	if opts.Filter != "" {
		args = append(args, opts.Filter)
	}
	c := &Capture{Path: path, proc: n.StartProc(tb, args...)}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(c.proc.Output(), "listening on") {
		select {
		case <-c.proc.Done():
			tb.Fatalf("testbed: tcpdump exited: %v: %s", c.proc.Err(), c.proc.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testbed: tcpdump not listening after 5 s: %s", c.proc.Output())
		}
		time.Sleep(10 * time.Millisecond)
	}
	return c
}

// Stop stops tcpdump and returns the path of the complete pcap file.
func (c *Capture) Stop() string {
	c.proc.Stop(3 * time.Second)
	return c.Path
}

// Output returns tcpdump's messages (e.g. "N packets captured").
func (c *Capture) Output() string { return c.proc.Output() }
