package dissect

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp/pcapfile"
)

var (
	hostA = netip.MustParseAddr("10.9.0.1")
	hostB = netip.MustParseAddr("10.9.0.2")
	t0    = time.Unix(1700000000, 0).UTC()
)

// capture builds a pcap file frame by frame.
type capture struct {
	tb     testing.TB
	buf    bytes.Buffer
	w      *pcapfile.Writer
	frames int
	now    time.Time
}

func newCapture(tb testing.TB) *capture {
	c := &capture{tb: tb, now: t0}
	w, err := pcapfile.NewWriter(&c.buf, pcapfile.LinkEthernet, 0)
	if err != nil {
		tb.Fatal(err)
	}
	c.w = w
	return c
}

// add writes one frame dt after the previous one and returns its 1-based number.
func (c *capture) add(dt time.Duration, frame []byte) int {
	c.now = c.now.Add(dt)
	if err := c.w.WritePacket(c.now, frame); err != nil {
		c.tb.Fatal(err)
	}
	c.frames++
	return c.frames
}

// vxlanMessage returns a VXLAN header for vni followed by an inner frame of n bytes.
func vxlanMessage(vni uint32, n int) []byte {
	m := make([]byte, sclp.VXLANHeaderLen+n)
	sclp.PutVXLAN(m, vni)
	for i := range m[sclp.VXLANHeaderLen:] {
		m[sclp.VXLANHeaderLen+i] = byte(i * 13)
	}
	return m
}

// segments returns the packets (Ethernet frames) of msg, native or in UDP to udpPort.
func segments(tb testing.TB, msg []byte, id uint32, udpPort uint16) [][]byte {
	tb.Helper()
	mss := 1500 - sclp.IPv4Overhead
	if udpPort != 0 {
		mss = 1500 - sclp.UDPOverhead
	}
	var s sclp.Segmenter
	if err := s.Reset(msg, mss, sclp.Header{SrcPort: 50001, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	o := sclp.PacketOptions{Src: hostA, Dst: hostB, UDPDstPort: udpPort}
	var out [][]byte
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return out
		}
		pkt, err := sclp.AppendPacket(nil, o, h, chunk)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, pkt)
	}
}

func hash(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestRunCapture(t *testing.T) {
	c := newCapture(t)
	msgA, msgB, msgC, msgD := vxlanMessage(42, 2992), vxlanMessage(7, 92), vxlanMessage(42, 4992), vxlanMessage(9, 3992)
	a, b, cc, d := segments(t, msgA, 0x100, 0), segments(t, msgB, 0x102, 0), segments(t, msgC, 0x104, 0), segments(t, msgD, 0x106, 4795)
	arp := append(make([]byte, 12), 0x08, 0x06, 0, 1, 8, 0, 6, 4)
	tcp, _ := sclp.AppendPacket(nil, sclp.PacketOptions{Src: hostA, Dst: hostB}, sclp.Header{}, make([]byte, 20))
	tcp[14+9] = 6 // same bytes, protocol TCP: not SCLP
	bad := append([]byte(nil), cc[2]...)
	bad[len(bad)-1] ^= 0xFF

	c.add(0, arp) // 1 skipped
	a0 := c.add(time.Millisecond, a[0])
	c.add(time.Millisecond, a[2])
	c.add(time.Millisecond, a[0]) // 4 duplicate
	c.add(time.Millisecond, cc[0])
	c.add(time.Millisecond, cc[1])
	aDone := c.add(time.Millisecond, a[1]) // 7 completes A
	c.add(time.Millisecond, bad)           // 8 bad checksum
	cLast := c.add(time.Millisecond, cc[3])
	bDone := c.add(time.Millisecond, b[0]) // 10 unsegmented B
	c.add(time.Millisecond, tcp)           // 11 skipped
	c.add(2*time.Second, d[0])             // 12: C times out here
	c.add(time.Millisecond, d[1])
	late := c.add(time.Millisecond, d[2]) // 14: D completes

	var events []Event
	sum, err := Run(&c.buf, Options{UDPPort: 4795, Config: sclp.Config{Timeout: time.Second}}, func(e Event) { events = append(events, e) })
	if err != nil {
		t.Fatal(err)
	}
	want := Summary{Event: "summary", Frames: 14, Segments: 12, Messages: 3, Skipped: 2,
		Drops: map[string]uint64{"bad_checksum": 1, "duplicate": 1, "timeout": 1}}
	if gotJSON, wantJSON := mustJSON(t, sum), mustJSON(t, want); gotJSON != wantJSON {
		t.Fatalf("summary %s, want %s", gotJSON, wantJSON)
	}
	var msgs []*Message
	var drops []*Drop
	var segs []*Segment
	for _, e := range events {
		switch e := e.(type) {
		case *Message:
			msgs = append(msgs, e)
		case *Drop:
			drops = append(drops, e)
		case *Segment:
			segs = append(segs, e)
		}
	}
	if len(segs) != 12 || segs[0].Frame != a0 || !segs[0].First || segs[0].Remaining != 1532 || segs[0].Len != 1468 || segs[0].ID != 0x100 {
		t.Fatalf("first segment %+v", segs[0])
	}
	wantMsgs := []struct {
		frame int
		sum   string
		vni   uint32
		n     int
	}{{aDone, hash(msgA), 42, 3000}, {bDone, hash(msgB), 7, 100}, {late, hash(msgD), 9, 4000}}
	if len(msgs) != len(wantMsgs) {
		t.Fatalf("%d messages", len(msgs))
	}
	for i, w := range wantMsgs {
		m := msgs[i]
		if m.Frame != w.frame || m.SHA256 != w.sum || m.VNI == nil || *m.VNI != w.vni || m.Len != w.n || m.Src != "10.9.0.1" {
			t.Fatalf("message %d: %+v", i, m)
		}
	}
	wantDrops := []Drop{{Frame: 4, Reason: "duplicate"}, {Frame: 8, Reason: "bad_checksum"}, {Frame: cLast, Reason: "timeout"}}
	for i, w := range wantDrops {
		if drops[i].Frame != w.Frame || drops[i].Reason != w.Reason || drops[i].ID == 0 {
			t.Fatalf("drop %d: %+v, want %+v", i, drops[i], w)
		}
	}
	if drops[1].ID != 0x104 || drops[2].ID != 0x104 || segs[6].ChecksumOK {
		t.Fatalf("bad checksum / timeout of the wrong message: %+v %+v", drops[1], drops[2])
	}
	if segs[9].UDPDstPort != 4795 || segs[9].UDPSrcPort != 50001 {
		t.Fatalf("udp segment %+v", segs[9])
	}
}

func mustJSON(t *testing.T, v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestPrinterFormats(t *testing.T) {
	c := newCapture(t)
	for _, p := range segments(t, vxlanMessage(5, 10), 8, 0) {
		c.add(0, p)
	}
	file := c.buf.Bytes()
	var out bytes.Buffer
	p := NewPrinter(&out, true)
	if _, err := Run(bytes.NewReader(file), Options{}, p.Emit); err != nil || p.Flush() != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(out.String()), "\n")
	wantSeg := `{"event":"segment","frame":1,"src":"10.9.0.1","dst":"10.9.0.2","sport":50001,"dport":4789,"id":8,"first":true,"remaining":0,"len":18,"checksum_ok":true}`
	if len(lines) != 3 || lines[0] != wantSeg {
		t.Fatalf("json lines:\n%s\nwant first:\n%s", out.String(), wantSeg)
	}
	if !strings.HasPrefix(lines[1], `{"event":"message","src":"10.9.0.1","dst":"10.9.0.2","sport":50001,"dport":4789,"id":8,"len":18,"sha256":"`) ||
		!strings.Contains(lines[1], `"vni":5`) || lines[2] != `{"event":"summary","frames":1,"segments":1,"messages":1,"drops":{},"skipped":0}` {
		t.Fatalf("json lines:\n%s", out.String())
	}
	out.Reset()
	p = NewPrinter(&out, false)
	if _, err := Run(bytes.NewReader(file), Options{}, p.Emit); err != nil || p.Flush() != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out.String(), "MESSAGE") || !strings.Contains(out.String(), "1 frames: 1 SCLP segments, 1 messages") {
		t.Fatalf("table:\n%s", out.String())
	}
}

func TestRunErrors(t *testing.T) {
	if _, err := Run(strings.NewReader("definitely not a pcap file"), Options{}, func(Event) {}); !errors.Is(err, ErrOpen) {
		t.Fatalf("not pcap: %v", err)
	}
	c := newCapture(t)
	segs := segments(t, vxlanMessage(5, 3000), 8, 0)
	c.add(0, segs[0])
	c.add(0, segs[1][:40]) // cut inside the SCLP header: short
	c.add(0, segs[1])
	file := c.buf.Bytes()
	sum, err := Run(bytes.NewReader(file[:len(file)-7]), Options{}, func(Event) {})
	if err != nil || !sum.Truncated || sum.Drops["short"] != 1 || sum.Drops["timeout"] != 1 {
		t.Fatalf("truncated: %v %+v", err, sum)
	}
}

// sclpSegments returns the SCLP segments (header + chunk) of msg; in UDP mode the checksum
// field is zero.
func sclpSegments(tb testing.TB, msg []byte, mss int, id uint32, udp bool) [][]byte {
	tb.Helper()
	s := sclp.Segmenter{NoChecksum: udp}
	if err := s.Reset(msg, mss, sclp.Header{SrcPort: 50123, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	buf := make([]byte, sclp.HeaderLen+mss)
	for {
		n, err := s.NextInto(buf)
		if err != nil {
			return out
		}
		out = append(out, bytes.Clone(buf[:n]))
	}
}
