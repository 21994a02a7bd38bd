package offload

import (
	"bufio"
	"os"
	"strconv"
	"strings"
	"testing"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp/dissect"
)

// ianaServices is Wireshark's local copy of the IANA Service Name and Transport Protocol
// Port Number Registry (package wireshark-common, which `make deps` installs for tshark).
const ianaServices = "/usr/share/wireshark/services"

// assignedUDP parses an IANA-style services file ("name  port/proto[/proto]  # comment") into
// the UDP port -> service name assignments it lists.
func assignedUDP(t *testing.T, path string) map[uint16]string {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Skipf("no local copy of the IANA port registry: %v", err)
	}
	defer f.Close()
	m := map[uint16]string{}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line, _, _ := strings.Cut(sc.Text(), "#")
		fs := strings.Fields(line)
		if len(fs) < 2 {
			continue
		}
		parts := strings.Split(fs[1], "/")
		port, err := strconv.ParseUint(parts[0], 10, 16)
		if err != nil {
			continue
		}
		for _, proto := range parts[1:] {
			if proto == "udp" {
				m[uint16(port)] = fs[0]
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestDefaultUDPPortUnassigned checks the default UDP port of mode=udp against the IANA
// registry: it must not be assigned to anything (least of all another tunnel), while the
// registry must list the tunnels it sits next to, which shows the file was read right.
func TestDefaultUDPPortUnassigned(t *testing.T) {
	m := assignedUDP(t, ianaServices)
	for port, name := range map[uint16]string{4789: "vxlan", 4790: "vxlan-gpe", 6081: "geneve"} {
		if m[port] != name {
			t.Fatalf("registry lists udp/%d as %q, want %q: parser or file wrong", port, m[port], name)
		}
	}
	if name, ok := m[DefaultUDPPort]; ok {
		t.Errorf("DefaultUDPPort %d is assigned to %q in the IANA registry", DefaultUDPPort, name)
	}
	if dissect.DefaultUDPPort != int(DefaultUDPPort) {
		t.Errorf("dissect.DefaultUDPPort %d != offload.DefaultUDPPort %d", dissect.DefaultUDPPort, DefaultUDPPort)
	}
}
