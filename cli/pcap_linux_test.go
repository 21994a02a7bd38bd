//go:build linux

package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestPcapOfRealUDPDatapath runs TCP between two VM namespaces through the real udp-mode
// datapath, captures the underlay with tcpdump on the receiving host and checks that
// `sclp-ovs pcap --json` dissects it: segments, reassembled VXLAN messages of VNI 5001
// carrying at least the bytes sent, no checksum or VXLAN errors.
func TestPcapOfRealUDPDatapath(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{Prefix: "pcapdp"})
	var vms []*testbed.VM
	for i, h := range hosts {
		vm := testbed.NewVM(t, h.NS, testbed.VMOptions{Addr: netip.MustParsePrefix(fmt.Sprintf("192.168.79.%d/24", i+1))})
		vms = append(vms, vm)
		spec := offload.PortSpec{Name: fmt.Sprintf("sclp%d", i), PeerName: vm.HostDev, Peer: hosts[1-i].IP, Local: h.IP,
			Device: h.Underlay, VNI: 5001, Mode: offload.ModeUDP, DstPort: offload.DefaultUDPPort, MTU: 1500}
		var dp *udp.Datapath
		if err := h.Do(func() (err error) {
			if dp, err = udp.New(udp.Options{Workers: 1}); err != nil {
				return err
			}
			return dp.EnsurePort(context.Background(), spec)
		}); err != nil {
			t.Fatalf("datapath on %s: %v", h.Name, err)
		}
		t.Cleanup(func() { dp.Close() })
	}
	capture := hosts[1].StartCapture(t, hosts[1].Underlay, testbed.CaptureOptions{Filter: "udp port 4795", Direction: "in"})
	if out, err := vms[0].Ping(vms[1].IP, 3); err != nil {
		t.Fatalf("ping through the tunnel: %v\n%s", err, out)
	}
	const sent = 2 << 20
	tcpSend(t, vms[0], vms[1], sent)
	time.Sleep(1500 * time.Millisecond) // tcpdump drains its ring on a 1 s timeout
	path := capture.Stop()

	var out, errOut bytes.Buffer
	if code := Run(Deps{Stdout: &out, Stderr: &errOut}, []string{"sclp-ovs", "pcap", "--json", path}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	var summary struct {
		Frames, Segments, Messages int
		Drops                      map[string]int
	}
	total := 0
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev struct {
			Event string
			Len   int
			VNI   *uint32
		}
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			t.Fatalf("bad line %q: %v", line, err)
		}
		switch ev.Event {
		case "message":
			if ev.VNI == nil || *ev.VNI != 5001 {
				t.Fatalf("message without VNI 5001: %s", line)
			}
			total += ev.Len
		case "summary":
			_ = json.Unmarshal([]byte(line), &summary)
		}
	}
	t.Logf("capture: %d frames, %d segments, %d messages (%d bytes), drops %v", summary.Frames, summary.Segments, summary.Messages, total, summary.Drops)
	if summary.Messages == 0 || summary.Segments < summary.Messages || total < sent {
		t.Fatalf("summary %+v, %d message bytes for %d sent; tcpdump: %s", summary, total, sent, capture.Output())
	}
	for reason, n := range summary.Drops {
		if reason != "timeout" && reason != "orphan" || n > 2 {
			t.Errorf("drops %v: only a message cut by the end of the capture may be incomplete", summary.Drops)
		}
	}
}

// tcpSend sends n bytes over TCP from VM a to VM b and waits until b has read them all.
func tcpSend(t *testing.T, a, b *testbed.VM, n int) {
	t.Helper()
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp4", b.IP.String()+":7100")
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan int64, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- -1
			return
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		m, _ := io.Copy(io.Discard, c)
		got <- m
	}()
	if err := a.Do(func() error {
		c, err := net.DialTimeout("tcp4", b.IP.String()+":7100", 5*time.Second)
		if err != nil {
			return err
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(20 * time.Second))
		_, err = c.Write(make([]byte, n))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if m := <-got; m != int64(n) {
		t.Fatalf("receiver got %d of %d bytes", m, n)
	}
}
