package e2e

import (
	"bufio"
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// site is one simulated KVM host: a namespace with an underlay, a private OVS with br-int,
// VMs plugged into br-int and (once started) an sclp-ovs agent.
type site struct {
	*testbed.Host
	ovs   *testbed.OVS
	vms   []*testbed.VM
	agent *testbed.Proc
	modes string
	pins  string
}

// vmMTU is the VMs' MTU: the default tunnel MTU on a 1500-byte underlay in mode=udp (1500 -
// 62), as an operator would hand it out by DHCP.
const vmMTU = 1438

// newSites builds n hosts, each with OVS, br-int and vmsPer VMs on 192.168.100.0/24 (host i,
// VM j gets 192.168.100.(10*(i+1)+j)).
func newSites(t *testing.T, n, vmsPer int) []*site {
	t.Helper()
	return newSitesMTU(t, n, vmsPer, vmMTU)
}

// newSitesMTU is newSites with VMs of the given MTU (both ends of their veth pairs).
func newSitesMTU(t *testing.T, n, vmsPer, mtu int) []*site {
	t.Helper()
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: n})
	sites := make([]*site, n)
	for i, h := range hosts {
		s := &site{Host: h, ovs: testbed.StartOVS(t, h.NS), modes: "udp,ip"}
		s.ovs.AddBridge(t, "br-int")
		for j := 0; j < vmsPer; j++ {
			addr := netip.PrefixFrom(netip.AddrFrom4([4]byte{192, 168, 100, byte(10*(i+1) + j)}), 24)
			vm := testbed.NewVM(t, h.NS, testbed.VMOptions{Addr: addr, MTU: mtu})
			s.ovs.AddPort(t, "br-int", vm.HostDev)
			s.vms = append(s.vms, vm)
		}
		sites[i] = s
	}
	return sites
}

// sclp runs the binary in the host namespace against the host's OVS.
func (s *site) sclp(args ...string) (stdout, stderr string, code int) {
	cmd := s.ovs.Command(append([]string{binary, "--db", s.ovs.DBEndpoint()}, args...)...)
	var o, e bytes.Buffer
	cmd.Stdout, cmd.Stderr = &o, &e
	err := cmd.Run()
	var ee *exec.ExitError
	switch {
	case errors.As(err, &ee):
		code = ee.ExitCode()
	case err != nil:
		code = -1
		e.WriteString(err.Error())
	}
	return o.String(), e.String(), code
}

// mustSclp runs the binary and fails the test unless it exits 0.
func (s *site) mustSclp(t *testing.T, args ...string) string {
	t.Helper()
	out, errOut, code := s.sclp(args...)
	if code != 0 {
		t.Fatalf("%s: sclp-ovs %s: exit %d\nstdout: %s\nstderr: %s\nagent log:\n%s", s.Name, strings.Join(args, " "), code, out, errOut, s.agentLog())
	}
	return out
}

func (s *site) agentLog() string {
	if s.agent == nil {
		return "(no agent)"
	}
	out := s.agent.Output()
	if len(out) > 4000 {
		out = "..." + out[len(out)-4000:]
	}
	return out
}

// startAgent starts `sclp-ovs agent` in the host namespace and waits for its heartbeat.
func (s *site) startAgent(t *testing.T) {
	t.Helper()
	s.agent = testbed.StartCmd(t, s.ovs.Command(binary, "--db", s.ovs.DBEndpoint(), "agent", "--modes", s.modes, "--pin-path", s.pinPath(t)))
	name := t.Name()
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("%s agent log (%s):\n%s", s.Name, name, s.agentLog())
		}
	})
	deadline := time.Now().Add(10 * time.Second)
	for {
		out, _ := s.ovs.Vsctl("get", "Open_vSwitch", ".", "external_ids")
		if strings.Contains(out, "sclp-ovs:agent-heartbeat") {
			return
		}
		select {
		case <-s.agent.Done():
			t.Fatalf("%s: agent exited: %v\n%s", s.Name, s.agent.Err(), s.agent.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: agent wrote no heartbeat in 10 s:\n%s", s.Name, s.agent.Output())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// pinPath is the host's own directory on the tests' bpffs for mode=ip; it is removed when the
// test ends, which unpins (and so detaches) the programs.
func (s *site) pinPath(t *testing.T) string {
	if s.pins == "" {
		s.pins = filepath.Join(bpffs, s.Name)
		t.Cleanup(func() { os.RemoveAll(s.pins) })
	}
	return s.pins
}

// stopAgent sends SIGTERM and waits.
func (s *site) stopAgent(t *testing.T) {
	t.Helper()
	s.agent.Stop(5 * time.Second)
	if err := s.agent.Err(); err != nil {
		t.Errorf("%s: agent exit after SIGTERM: %v\n%s", s.Name, err, s.agent.Output())
	}
}

// ovsdbState is what must not change when a command fails: bridges, ports, interfaces.
func (s *site) ovsdbState(t *testing.T) string {
	t.Helper()
	show := s.ovs.MustVsctl(t, "show")
	ifaces := s.ovs.MustVsctl(t, "--columns=name,external_ids", "list", "Interface")
	ports := s.ovs.MustVsctl(t, "--columns=name,protected", "list", "Port")
	return show + ifaces + ports
}

// httpGet fetches path from the agent's metrics endpoint (127.0.0.1:9310 in the host
// namespace). The connection is opened on a thread inside the namespace.
func (s *site) httpGet(t *testing.T, path string) (int, string) {
	t.Helper()
	var conn net.Conn
	if err := s.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", "127.0.0.1:9310", 2*time.Second)
		return err
	}); err != nil {
		t.Fatalf("%s: metrics endpoint: %v", s.Name, err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(5 * time.Second))
	fmt.Fprintf(conn, "GET %s HTTP/1.0\r\nHost: agent\r\n\r\n", path)
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("%s: GET %s: %v", s.Name, path, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// linkUp reports whether a device exists in the host namespace.
func (s *site) hasLink(name string) bool {
	_, err := s.Run("ip", "link", "show", name)
	return err == nil
}

// waitFor polls cond every 50 ms until it holds or timeout passes.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// transfer sends size random bytes over TCP from vm a to vm b and checks that b received
// exactly them (length and SHA-256).
func transfer(t *testing.T, a, b *testbed.VM, size int) {
	t.Helper()
	var ln net.Listener
	if err := b.Do(func() (err error) {
		ln, err = net.Listen("tcp4", netip.AddrPortFrom(b.IP, 5001).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum [32]byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(30 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		var r result
		r.n, r.err = n, err
		copy(r.sum[:], h.Sum(nil))
		got <- r
	}()
	payload := make([]byte, size)
	rand.Read(payload)
	want := sha256.Sum256(payload)
	var conn net.Conn
	if err := a.Do(func() (err error) {
		conn, err = net.DialTimeout("tcp4", netip.AddrPortFrom(b.IP, 5001).String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatalf("connect %v -> %v: %v", a.IP, b.IP, err)
	}
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	start := time.Now()
	if _, err := conn.Write(payload); err != nil {
		t.Fatalf("send: %v", err)
	}
	conn.Close()
	r := <-got
	if r.err != nil {
		t.Fatalf("receive: %v", r.err)
	}
	if r.n != int64(size) || r.sum != want {
		t.Fatalf("TCP payload differs: got %d bytes sha256 %x, sent %d bytes sha256 %x", r.n, r.sum, size, want)
	}
	el := time.Since(start)
	t.Logf("TCP %v -> %v: %d bytes byte-identical in %v (%.2f Gbit/s)", a.IP, b.IP, size, el.Round(time.Millisecond), float64(size)*8/el.Seconds()/1e9)
}

func mustPing(t *testing.T, from *testbed.VM, to netip.Addr) {
	t.Helper()
	st, err := from.PingWith(to, testbed.PingOptions{Count: 3, Interval: 100 * time.Millisecond, Timeout: time.Second})
	if err != nil {
		t.Fatalf("ping %v -> %v: %v (%v)", from.IP, to, err, st)
	}
}

// reach pings until one reply arrives (at most 5 s): the first packets toward a VM resolve
// ARP and teach the bridges where its MAC lives.
func reach(t *testing.T, from *testbed.VM, to netip.Addr) {
	t.Helper()
	for i := 0; i < 10; i++ {
		if st, _ := from.PingWith(to, testbed.PingOptions{Count: 1, Timeout: 500 * time.Millisecond}); st.Received == 1 {
			return
		}
	}
	t.Fatalf("%v never reached %v in 10 tries", from.IP, to)
}

func fmtCode(code int) string { return fmt.Sprintf("exit %d", code) }
