//go:build linux

package dissect

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestTcpdumpCapture sends real SCLP traffic between two namespaces (native segments from a
// raw IP socket, SCLP-in-UDP segments from a UDP socket, reordered, with one corrupted
// segment), captures it with tcpdump on the receiver, and dissects the file.
func TestTcpdumpCapture(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{Prefix: "sclpcap"})
	a, b := hosts[0], hosts[1]
	// A static neighbour entry, so that no segment waits for ARP.
	mac := strings.TrimSpace(b.MustRun(t, "cat", "/sys/class/net/"+b.Underlay+"/address"))
	a.MustRun(t, "ip", "neigh", "replace", b.IP.String(), "lladdr", mac, "dev", a.Underlay, "nud", "permanent")
	capture := b.StartCapture(t, b.Underlay, testbed.CaptureOptions{Filter: "ip proto 234 or udp port 4795", Direction: "in"})

	native, udp := vxlanMessage(100, 5000), vxlanMessage(200, 4000)
	nsegs := sclpSegments(t, native, 1500-sclp.IPv4Overhead, 0x2000, false)
	usegs := sclpSegments(t, udp, 1500-sclp.UDPOverhead, 0x2002, true)
	bad := append([]byte(nil), nsegs[1]...)
	bad[len(bad)-1] ^= 0x55
	err := a.Do(func() error {
		raw, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, sclp.IPProtocol)
		if err != nil {
			return fmt.Errorf("raw socket: %w", err)
		}
		defer syscall.Close(raw)
		to := &syscall.SockaddrInet4{Addr: b.IP.As4()}
		for _, seg := range [][]byte{nsegs[3], bad, nsegs[0], nsegs[1], nsegs[2]} {
			if err := syscall.Sendto(raw, seg, 0, to); err != nil {
				return fmt.Errorf("sendto: %w", err)
			}
		}
		// Unconnected, so the receiver's port-unreachable replies do not fail the writes.
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a.IP.AsSlice(), Port: 50123})
		if err != nil {
			return err
		}
		defer conn.Close()
		for _, i := range []int{2, 0, 1} {
			if _, err := conn.WriteToUDP(usegs[i], &net.UDPAddr{IP: b.IP.AsSlice(), Port: 4795}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// tcpdump reads the packet ring when a block times out (1 s without --immediate-mode).
	time.Sleep(1500 * time.Millisecond)
	f, err := os.Open(capture.Stop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []*Message
	sum, err := Run(f, Options{UDPPort: 4795}, func(e Event) {
		if m, ok := e.(*Message); ok {
			msgs = append(msgs, m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if sum.Frames != 8 || sum.Segments != 8 || sum.Messages != 2 || sum.Drops["bad_checksum"] != 1 || len(sum.Drops) != 1 {
		t.Fatalf("summary %+v (tcpdump: %s)", sum, capture.Output())
	}
	if msgs[0].SHA256 != hash(native) || *msgs[0].VNI != 100 || msgs[1].SHA256 != hash(udp) || *msgs[1].VNI != 200 {
		t.Fatalf("messages %+v %+v", msgs[0], msgs[1])
	}
}

// TestTcpdumpUDPGSO sends a message as one UDP GSO datagram (UDP_SEGMENT) over an underlay
// whose offloads are on, so the capture on the receiver holds one large frame with every
// segment back to back; the dissector must split it and reassemble the message.
func TestTcpdumpUDPGSO(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{Prefix: "sclpgso", KeepOffloads: true})
	a, b := hosts[0], hosts[1]
	mac := strings.TrimSpace(b.MustRun(t, "cat", "/sys/class/net/"+b.Underlay+"/address"))
	a.MustRun(t, "ip", "neigh", "replace", b.IP.String(), "lladdr", mac, "dev", a.Underlay, "nud", "permanent")
	capture := b.StartCapture(t, b.Underlay, testbed.CaptureOptions{Filter: "udp port 4795", Direction: "in"})

	const mss = 1500 - sclp.UDPOverhead
	msg := vxlanMessage(300, 20000)
	segs := sclpSegments(t, msg, mss, 0x3000, true)
	err := a.Do(func() error {
		conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: a.IP.AsSlice(), Port: 50123})
		if err != nil {
			return err
		}
		defer conn.Close()
		raw, err := conn.SyscallConn()
		if err != nil {
			return err
		}
		var serr error
		if err := raw.Control(func(fd uintptr) {
			serr = syscall.SetsockoptInt(int(fd), syscall.IPPROTO_UDP, 103 /* UDP_SEGMENT */, sclp.HeaderLen+mss)
		}); err != nil || serr != nil {
			return fmt.Errorf("UDP_SEGMENT: %v %v", err, serr)
		}
		_, err = conn.WriteToUDP(bytes.Join(segs, nil), &net.UDPAddr{IP: b.IP.AsSlice(), Port: 4795})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(1500 * time.Millisecond)
	f, err := os.Open(capture.Stop())
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var msgs []*Message
	sum, err := Run(f, Options{UDPPort: 4795}, func(e Event) {
		if m, ok := e.(*Message); ok {
			msgs = append(msgs, m)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("%d frames carried %d segments", sum.Frames, sum.Segments)
	if sum.Segments != len(segs) || sum.Messages != 1 || len(sum.Drops) != 0 || msgs[0].SHA256 != hash(msg) {
		t.Fatalf("summary %+v (tcpdump: %s)", sum, capture.Output())
	}
}
