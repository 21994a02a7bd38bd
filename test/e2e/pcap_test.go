package e2e

import (
	"bufio"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestPcapOfRealTraffic captures the underlay with tcpdump during a TCP transfer through the
// tunnel, then dissects the capture with `sclp-ovs pcap`: every segment parses, every SCLP
// checksum verifies, and messages reassemble.
//
// Where to capture: mode=ip on the receiving host (on the sender the segments may still carry
// the inner frame's CHECKSUM_PARTIAL state when the tap sees them); mode=udp on the sending
// host, because the receiver's tap sees datagrams after UDP GRO has merged ~44 segments into
// one, which a capture cannot split again (it has no gso_size).
func TestPcapOfRealTraffic(t *testing.T) {
	for _, mode := range []string{"udp", "ip"} {
		t.Run(mode, func(t *testing.T) {
			sites := newSites(t, 2, 1)
			for _, s := range sites {
				s.modes = mode
			}
			connect(t, sites, "mode="+mode)
			a, b := sites[0], sites[1]
			reach(t, a.vms[0], b.vms[0].IP)
			file := filepath.Join(t.TempDir(), "ul0.pcap")
			filter := "ip proto 234"
			if mode == "udp" {
				filter = "udp port 4795"
			}
			capHost, dir := a, "in"
			if mode == "udp" {
				capHost, dir = b, "out"
			}
			td := capHost.StartProc(t, "tcpdump", "-i", "ul0", "-Q", dir, "-s", "0", "-U", "-w", file, filter)
			waitFor(t, 10*time.Second, "tcpdump to listen", func() bool { return strings.Contains(td.Output(), "listening on") })
			transfer(t, b.vms[0], a.vms[0], 1<<20)
			time.Sleep(200 * time.Millisecond)
			td.Stop(2 * time.Second)

			out, errOut, code := a.sclp("pcap", "--json", file)
			if code != 0 {
				t.Fatalf("sclp-ovs pcap: exit %d: %s", code, errOut)
			}
			var sum struct {
				Frames, Segments, Messages int
				Drops                      map[string]int
			}
			checksumOK, segments := 0, 0
			sc := bufio.NewScanner(strings.NewReader(out))
			sc.Buffer(make([]byte, 1<<20), 1<<20)
			for sc.Scan() {
				var ev map[string]any
				if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
					t.Fatalf("pcap line %q: %v", sc.Text(), err)
				}
				switch ev["event"] {
				case "segment":
					segments++
					if ev["checksum_ok"] == true {
						checksumOK++
					}
				case "summary":
					json.Unmarshal(sc.Bytes(), &sum)
				}
			}
			t.Logf("mode=%s capture: %d frames, %d segments (%d checksums ok), %d messages, drops %v", mode, sum.Frames, sum.Segments, checksumOK, sum.Messages, sum.Drops)
			if sum.Segments < 500 || segments != sum.Segments || sum.Messages == 0 {
				t.Errorf("capture of a 1 MB transfer: %+v", sum)
			}
			if checksumOK != segments || sum.Drops["bad_checksum"] != 0 {
				t.Errorf("%d of %d segments failed their SCLP checksum", segments-checksumOK, segments)
			}
		})
	}
}
