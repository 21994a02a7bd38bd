package bpf

import (
	"encoding/binary"
	"errors"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

func TestRxFastPath(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	r := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{34, 60, 200, 1000, 1460} {
		frame := innerFrame(r, max(n, 42))[:n]
		segs := segments(t, peerA, localB, 1000, message(testVNI, frame), 1468)
		if len(segs) != 1 {
			t.Fatalf("%d segments", len(segs))
		}
		before := stats(t, o)
		ret, out := run(t, o.SclpRx, segs[0])
		if ret != actRedirect {
			t.Fatalf("frame %d: verdict %d, want redirect; stats %+v", n, ret, stats(t, o).Sub(before))
		}
		equalBytes(t, "decapsulated frame", out, frame)
		onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
			"rx_segments": 1, "rx_bytes": uint64(len(segs[0])), "rx_fast": 1, "rx_fast_bytes": uint64(n),
		})
	}
}

// readRecords reads n records from the ring (each copied).
func readRecords(t *testing.T, rd *ringbuf.Reader, n int) []Record {
	t.Helper()
	var recs []Record
	for len(recs) < n {
		rd.SetDeadline(time.Now().Add(2 * time.Second))
		raw, err := rd.Read()
		if errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("ring: %d of %d records", len(recs), n)
		}
		if err != nil {
			t.Fatal(err)
		}
		rec, err := ParseRecord(raw.RawSample)
		if err != nil {
			t.Fatal(err)
		}
		rec.Packet = append([]byte(nil), rec.Packet...)
		recs = append(recs, rec)
	}
	return recs
}

// TestRxIPOptions: an outer IPv4 header with options (valid checksum) is not dropped: the
// rx program strips the options and delivers the frame (fast path), or hands the packet to
// userspace without them, as the Go parser would take it.
func TestRxIPOptions(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	r := rand.New(rand.NewPCG(3, 4))
	frame := innerFrame(r, 700)
	seg := segments(t, peerA, localB, 5, message(testVNI, frame), 1468)[0]
	for _, opts := range [][]byte{{0x94, 4, 0, 0}, make([]byte, 40)} {
		p := withOptions(seg, opts)
		before := stats(t, o)
		ret, out := run(t, o.SclpRx, p)
		if ret != actRedirect {
			t.Fatalf("%d bytes of options: verdict %d, %+v", len(opts), ret, stats(t, o).Sub(before))
		}
		equalBytes(t, "frame behind IPv4 options", out, frame)
		onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
			"rx_segments": 1, "rx_bytes": uint64(len(p)), "rx_fast": 1, "rx_fast_bytes": uint64(len(frame)),
		})
		// The Go parser takes the same packet.
		if _, _, _, payload, err := sclp.ParseIPv4(p[14:], true); err != nil || len(payload) != len(frame)+8 {
			t.Fatalf("Go parser: %v (%d payload bytes)", err, len(payload))
		}
	}
	// A multi-segment message's segment goes to the ring without its options.
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	big := innerFrame(r, 3000)
	seg = segments(t, peerA, localB, 6, message(testVNI, big), 1468)[1]
	if ret, _ := run(t, o.SclpRx, withOptions(seg, []byte{1, 1, 1, 1, 1, 1, 1, 1})); ret != actShot {
		t.Fatalf("verdict %d", ret)
	}
	recs := readRecords(t, rd, 1)
	if recs[0].Reason != ReasonMultiSegment {
		t.Fatalf("record %+v", recs[0])
	}
	equalBytes(t, "ring packet without options", recs[0].Packet, seg[14:])
}

func TestRxMultiSegmentToRing(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rand.New(rand.NewPCG(3, 4))
	frame := innerFrame(r, 4000)
	msg := message(testVNI, frame)
	segs := segments(t, peerA, localB, 2000, msg, 1468)
	before := stats(t, o)
	for i, s := range segs {
		if ret, _ := run(t, o.SclpRx, s); ret != actShot {
			t.Fatalf("segment %d: verdict %d, want shot (consumed)", i, ret)
		}
	}
	onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{
		"rx_segments": 3, "rx_bytes": uint64(len(segs[0]) + len(segs[1]) + len(segs[2])), "rx_exc_multi": 3,
	})
	ra, err := sclp.NewReassembler(sclp.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var got []byte
	for i, rec := range readRecords(t, rd, len(segs)) {
		if rec.Reason != ReasonMultiSegment || !rec.ChecksumVerified() || rec.Ifindex == 0 {
			t.Fatalf("record %d: %+v", i, rec)
		}
		equalBytes(t, "record packet", rec.Packet, segs[i][14:])
		p, err := sclp.ParsePacket(rec.Packet, sclp.ParseOptions{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		m, res := ra.Add(time.Now(), p.Piece())
		if res.Status == sclp.Completed {
			got = append([]byte(nil), m.Payload...)
			ra.Release(m)
		}
	}
	equalBytes(t, "reassembled message", got, msg)
}

func TestRxMalformed(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	r := rand.New(rand.NewPCG(5, 6))
	frame := innerFrame(r, 300)
	good := func() []byte { return segments(t, peerA, localB, 10, message(testVNI, frame), 1468)[0] }
	hdr := sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: 12, First: true}
	fixIP := func(p []byte) {
		binary.BigEndian.PutUint16(p[24:], 0)
		binary.BigEndian.PutUint16(p[24:], ^sclp.Fold(sclp.Sum(p[14:34], 0)))
	}
	cases := []struct {
		name    string
		pkt     func() []byte
		counter string
	}{
		{"short_total_length", func() []byte { return good()[:200] }, "rx_drop_short"},
		{"short_below_header", func() []byte {
			p := good()
			binary.BigEndian.PutUint16(p[16:], 20+8)
			fixIP(p)
			return p
		}, "rx_drop_short"},
		{"zero_length", func() []byte { return packet(t, peerA, hdr, nil) }, "rx_drop_empty"},
		{"bad_checksum", func() []byte { p := good(); p[100] ^= 0x40; return p }, "rx_drop_bad_checksum"},
		{"bad_sclp_checksum_field", func() []byte { p := good(); p[44] ^= 1; return p }, "rx_drop_bad_checksum"},
		{"bad_vxlan_flags", func() []byte {
			m := message(testVNI, frame)
			m[3] = 1
			return packet(t, peerA, hdr, m)
		}, "rx_drop_bad_vxlan"},
		{"bad_vxlan_i_bit", func() []byte {
			m := message(testVNI, frame)
			m[0] = 0
			return packet(t, peerA, hdr, m)
		}, "rx_drop_bad_vxlan"},
		{"bad_vxlan_reserved", func() []byte {
			m := message(testVNI, frame)
			m[7] = 9
			return packet(t, peerA, hdr, m)
		}, "rx_drop_bad_vxlan"},
		{"first_shorter_than_vxlan", func() []byte { return packet(t, peerA, hdr, []byte{8, 0, 0, 0}) }, "rx_drop_short"},
		{"remaining_overflow", func() []byte {
			h := hdr
			h.Remaining = 65535
			return packet(t, peerA, h, message(testVNI, frame))
		}, "rx_drop_bad_remaining"},
		{"unknown_peer", func() []byte {
			return segments(t, netip.MustParseAddr("10.9.9.9"), localB, 10, message(testVNI, frame), 1468)[0]
		}, "rx_drop_unknown_peer"},
		{"wrong_vni", func() []byte {
			return segments(t, peerA, localB, 10, message(testVNI+1, frame), 1468)[0]
		}, "rx_drop_unknown_vni"},
		{"bad_ip_checksum", func() []byte { p := good(); p[24] ^= 0xff; return p }, "rx_drop_bad_ip"},
		{"ip_fragment", func() []byte {
			p := good()
			binary.BigEndian.PutUint16(p[20:], 0x2000)
			fixIP(p)
			return p
		}, "rx_drop_bad_ip"},
		{"ip_options_bad_checksum", func() []byte {
			p := withOptions(good(), []byte{1, 1, 1, 1})
			p[34] = 0 // an option byte changed after the checksum
			return p
		}, "rx_drop_bad_ip"},
		{"ip_options_cut", func() []byte { return withOptions(good(), make([]byte, 8))[:40] }, "rx_drop_short"},
		{"ip_header_below_20", func() []byte { p := good(); p[14] = 0x44; fixIP(p); return p }, "rx_drop_bad_ip"},
		{"bad_port", func() []byte {
			h := hdr
			h.DstPort = 4790
			return packet(t, peerA, h, message(testVNI, frame))
		}, "rx_drop_bad_port"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := tc.pkt()
			before := stats(t, o)
			ret, _ := run(t, o.SclpRx, p)
			d := stats(t, o).Sub(before)
			if ret != actShot {
				t.Fatalf("verdict %d, want shot; delta %+v", ret, d)
			}
			onlyCounter(t, d, map[string]uint64{"rx_segments": 1, "rx_bytes": uint64(len(p)), tc.counter: 1})
		})
	}
}

func TestRxPassesOtherTraffic(t *testing.T) {
	o := loadObjects(t)
	r := rand.New(rand.NewPCG(7, 8))
	udp := innerFrame(r, 200)
	arp := make([]byte, 60)
	binary.BigEndian.PutUint16(arp[12:], 0x0806)
	for _, p := range [][]byte{udp, arp} {
		in := append([]byte(nil), p...)
		before := stats(t, o)
		ret, out := run(t, o.SclpRx, in)
		if ret != actOK {
			t.Fatalf("verdict %d, want ok", ret)
		}
		equalBytes(t, "passed packet", out, p)
		onlyCounter(t, stats(t, o).Sub(before), map[string]uint64{"rx_passed": 1})
	}
}
