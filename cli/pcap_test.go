package cli

import (
	"bytes"
	"encoding/json"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp/pcapfile"
)

// writeTestCapture writes a capture with a 3-segment VXLAN message sent out of order, a
// corrupted segment and an ARP frame, and returns its path.
func writeTestCapture(t *testing.T) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "sclp.pcap")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	w, _ := pcapfile.NewWriter(f, pcapfile.LinkEthernet, 0)
	msg := make([]byte, 3000)
	sclp.PutVXLAN(msg, 77)
	var s sclp.Segmenter
	_ = s.Reset(msg, 1468, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: 1000})
	o := sclp.PacketOptions{Src: netip.MustParseAddr("10.3.0.1"), Dst: netip.MustParseAddr("10.3.0.2")}
	var pkts [][]byte
	for {
		h, chunk, ok := s.Next()
		if !ok {
			break
		}
		p, _ := sclp.AppendPacket(nil, o, h, chunk)
		pkts = append(pkts, p)
	}
	bad := append([]byte(nil), pkts[1]...)
	bad[60] ^= 1
	t0 := time.Unix(1700000000, 0)
	for i, p := range [][]byte{pkts[2], bad, pkts[0], make([]byte, 60), pkts[1]} {
		_ = w.WritePacket(t0.Add(time.Duration(i)*time.Millisecond), p)
	}
	return path
}

func TestPcapCommand(t *testing.T) {
	path := writeTestCapture(t)
	var out, errOut bytes.Buffer
	if code := Run(Deps{Stdout: &out, Stderr: &errOut}, []string{"sclp-ovs", "pcap", "--json", path}); code != 0 {
		t.Fatalf("exit %d: %s", code, errOut.String())
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	var last map[string]any
	if err := json.Unmarshal([]byte(lines[len(lines)-1]), &last); err != nil {
		t.Fatal(err)
	}
	drops, _ := last["drops"].(map[string]any)
	if last["event"] != "summary" || last["frames"] != 5.0 || last["segments"] != 4.0 || last["messages"] != 1.0 ||
		last["skipped"] != 1.0 || drops["bad_checksum"] != 1.0 {
		t.Fatalf("summary %v\n%s", last, out.String())
	}
	if !strings.Contains(out.String(), `"event":"message"`) || !strings.Contains(out.String(), `"vni":77`) {
		t.Fatalf("no message:\n%s", out.String())
	}
	out.Reset()
	if code := Run(Deps{Stdout: &out, Stderr: &errOut}, []string{"sclp-ovs", "pcap", "--timeout", "10ms", path}); code != 0 || !strings.Contains(out.String(), "MESSAGE") {
		t.Fatalf("table: exit %d\n%s", code, out.String())
	}
}

func TestPcapCommandErrors(t *testing.T) {
	notPcap := filepath.Join(t.TempDir(), "x.txt")
	_ = os.WriteFile(notPcap, []byte("not a capture at all"), 0o644)
	for _, args := range [][]string{
		{"pcap", filepath.Join(t.TempDir(), "missing.pcap")},
		{"pcap", notPcap},
		{"pcap"},
		{"pcap", "--max-bytes", "-5", notPcap},
	} {
		var out, errOut bytes.Buffer
		code := Run(Deps{Stdout: &out, Stderr: &errOut}, append([]string{"sclp-ovs"}, args...))
		if code != 2 || strings.Count(strings.TrimSpace(errOut.String()), "\n") != 0 || errOut.Len() == 0 {
			t.Fatalf("%v: exit %d, stderr %q", args, code, errOut.String())
		}
	}
}
