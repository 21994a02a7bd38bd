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

// rxVerdict is what the rx program does with one packet.
type rxVerdict struct {
	act     uint32
	counter string // the one counter besides rx_segments/rx_bytes (or rx_passed)
	out     []byte // fast path: the inner frame
	reason  Reason // ring: the record reason
	ip      []byte // ring: the IPv4 packet in the record
}

// refRx is the Go model of sclp_rx, written from the rules (docs/datapath.md) with the
// offload/sclp codec: the differential test checks that BPF agrees on every packet. Peers
// in throttled have a running throttled-map entry: their first segments of multi-segment
// messages are dropped where they would go to the ring, after every check. The merge slot
// (ports with RXF_MERGE, where a throttled peer's in-order messages are still merged) is not
// modelled here (merge_test.go and throttle_test.go cover it).
func refRx(pkt []byte, peers, throttled map[netip.Addr]bool, ports map[[2]uint32]uint32) rxVerdict {
	pass := rxVerdict{act: actOK, counter: "rx_passed"}
	drop := func(c string) rxVerdict { return rxVerdict{act: actShot, counter: c} }
	ring := func(r Reason) rxVerdict {
		c := "rx_exc_multi"
		if r == ReasonTooLarge {
			c = "rx_exc_large"
		}
		return rxVerdict{act: actShot, counter: c, reason: r, ip: pkt[14 : 14+int(binary.BigEndian.Uint16(pkt[16:]))]}
	}
	if len(pkt) < 34 || binary.BigEndian.Uint16(pkt[12:]) != 0x0800 || pkt[23] != sclp.IPProtocol {
		return pass
	}
	ip := pkt[14:]
	if ihl := int(ip[0]&0x0f) * 4; ip[0]>>4 == 4 && ihl > 20 {
		// Options: header validated, options removed, then as any packet.
		tot := int(binary.BigEndian.Uint16(ip[2:]))
		switch {
		case len(ip) < ihl:
			return drop("rx_drop_short")
		case sclp.Fold(sclp.Sum(ip[:ihl], 0)) != 0xffff || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0:
			return drop("rx_drop_bad_ip")
		case tot < ihl || tot+14 > len(pkt):
			return drop("rx_drop_short")
		}
		return refRx(stripOptions(pkt), peers, throttled, ports)
	}
	if ip[0] != 0x45 || binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 || sclp.Fold(sclp.Sum(ip[:20], 0)) != 0xffff {
		return drop("rx_drop_bad_ip")
	}
	tot := int(binary.BigEndian.Uint16(ip[2:]))
	switch {
	case tot < 32 || tot+14 > len(pkt):
		return drop("rx_drop_short")
	case tot == 32:
		return drop("rx_drop_empty")
	}
	src := netip.AddrFrom4([4]byte(ip[12:16]))
	if !peers[src] {
		return drop("rx_drop_unknown_peer")
	}
	if tot > MaxRxPacket {
		return drop("rx_drop_too_big")
	}
	var h sclp.Header
	_ = h.UnmarshalBinary(ip[20:])
	payload := ip[32:tot]
	switch {
	case h.DstPort != sclp.VXLANPort:
		return drop("rx_drop_bad_port")
	case len(payload)+int(h.Remaining) > sclp.MaxMessageLen:
		return drop("rx_drop_bad_remaining")
	case !sclp.VerifySegment(h, payload):
		return drop("rx_drop_bad_checksum")
	case !h.First:
		return ring(ReasonMultiSegment)
	case len(payload) < sclp.VXLANHeaderLen:
		return drop("rx_drop_short")
	}
	vni, inner, err := sclp.ParseVXLAN(payload)
	if err != nil {
		return drop("rx_drop_bad_vxlan")
	}
	mtu, ok := ports[[2]uint32{be32(src), vni}]
	switch {
	case !ok:
		return drop("rx_drop_unknown_vni")
	case h.Remaining != 0 && throttled[src]:
		return drop("rx_throttled") // only where it would go to the ring (no merge here)
	case h.Remaining != 0:
		return ring(ReasonMultiSegment)
	case len(inner) < 14:
		return drop("rx_drop_short")
	case len(inner) < 34 || len(inner) > int(mtu)+18:
		return ring(ReasonTooLarge)
	}
	return rxVerdict{act: actRedirect, counter: "rx_fast", out: inner}
}

// stripOptions returns an Ethernet/IPv4 frame with the IPv4 options removed (header rewritten
// as 20 bytes, total length and checksum fixed), as the rx program does.
func stripOptions(pkt []byte) []byte {
	ihl := int(pkt[14]&0x0f) * 4
	out := append(append([]byte(nil), pkt[:34]...), pkt[14+ihl:]...)
	ip := out[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])-uint16(ihl-20))
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^sclp.Fold(sclp.Sum(ip[:20], 0)))
	return out
}

// withOptions returns p with n bytes (a multiple of 4, up to 40) of IPv4 options inserted
// after the header, total length and checksum fixed.
func withOptions(p []byte, opts []byte) []byte {
	out := append(append(append([]byte(nil), p[:34]...), opts...), p[34:]...)
	ip := out[14:]
	ip[0] = 0x45 + byte(len(opts)/4)
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+uint16(len(opts)))
	binary.BigEndian.PutUint16(ip[10:], 0)
	binary.BigEndian.PutUint16(ip[10:], ^sclp.Fold(sclp.Sum(ip[:20+len(opts)], 0)))
	return out
}

// mutate damages (or not) a packet in one of the ways the wire can.
func mutate(r *rand.Rand, p []byte) []byte {
	refixIP := func() {
		binary.BigEndian.PutUint16(p[24:], 0)
		binary.BigEndian.PutUint16(p[24:], ^sclp.Fold(sclp.Sum(p[14:34], 0)))
	}
	refixSCLP := func() {
		tot := int(binary.BigEndian.Uint16(p[16:]))
		if tot < 32 || 14+tot > len(p) {
			return
		}
		binary.BigEndian.PutUint16(p[44:], 0)
		binary.BigEndian.PutUint16(p[44:], ^sclp.Fold(sclp.Sum(p[34:14+tot], 0)))
	}
	switch r.IntN(13) {
	case 0, 1, 2: // intact
	case 3: // flip a byte anywhere
		p[r.IntN(len(p))] ^= byte(1 + r.IntN(255))
	case 4: // flip a header byte, fix checksums (reaches the deeper checks)
		p[14+r.IntN(min(len(p)-14, 60))] ^= byte(1 + r.IntN(255))
		refixIP()
		refixSCLP()
	case 5: // truncate
		p = p[:r.IntN(len(p))+1]
	case 6: // total length
		binary.BigEndian.PutUint16(p[16:], uint16([]int{r.IntN(len(p) + 40), 32, 31}[r.IntN(3)]))
		refixIP()
		refixSCLP()
	case 7: // remaining
		binary.BigEndian.PutUint16(p[42:], uint16(65535-r.IntN(3000)*r.IntN(2)))
		refixSCLP()
	case 8: // unknown source
		p[26+r.IntN(4)] ^= 0x80
		refixIP()
	case 9: // VNI or VXLAN flags (first segments)
		if len(p) >= 54 {
			p[46+r.IntN(8)] ^= byte(1 + r.IntN(255))
			refixSCLP()
		}
	case 10: // F bit
		p[41] ^= 1
		refixSCLP()
	case 11: // another protocol
		p[23] = []byte{17, 6, 1}[r.IntN(3)]
	case 12: // IPv4 options (NOPs, a router alert), sometimes damaged afterwards
		opts := make([]byte, 4*(1+r.IntN(10)))
		for i := range opts {
			opts[i] = 1 // NOP
		}
		if r.IntN(2) == 0 {
			copy(opts, []byte{0x94, 4, 0, 0}) // router alert
		}
		p = withOptions(p, opts)
		switch r.IntN(4) {
		case 0:
			p[14+20+r.IntN(len(opts))] ^= 0x10 // option byte: header checksum now wrong
		case 1:
			p = p[:14+20+r.IntN(len(opts))] // cut inside the options
		}
	}
	return p
}

func TestRxDifferential(t *testing.T) {
	o := loadObjects(t)
	peerC, peerD := netip.MustParseAddr("10.0.0.3"), netip.MustParseAddr("10.0.0.4")
	peers := map[netip.Addr]bool{peerA: true, peerC: true, peerD: true}
	throttled := map[netip.Addr]bool{peerD: true}
	ports := map[[2]uint32]uint32{{be32(peerA), testVNI}: 1500, {be32(peerC), 7}: 600, {be32(peerD), 9}: 1500}
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	addRxPort(t, o, peerC, 7, 78, 600)
	addRxPort(t, o, peerD, 9, 79, 1500)
	now, err := MonotonicNow()
	if err != nil {
		t.Fatal(err)
	}
	if err := Throttle(o.Throttled, peerD, now+time.Hour); err != nil {
		t.Fatal(err)
	}
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		t.Fatal(err)
	}
	defer rd.Close()
	r := rand.New(rand.NewPCG(14, 15))
	srcs := []netip.Addr{peerA, peerC, peerD}
	vnis := []uint32{testVNI, 7, 9}
	counts := map[string]int{}
	for i := 0; i < 3000; i++ {
		k := r.IntN(3)
		frame := innerFrame(r, 2600)[:14+r.IntN(2500)]
		mss := []int{1468, 512, 1000}[r.IntN(3)]
		segs := segments(t, srcs[k], localB, uint32(i)*2, message(vnis[k], frame), mss)
		p := mutate(r, append([]byte(nil), segs[r.IntN(len(segs))]...))
		if len(p) < 34 {
			continue // BPF_PROG_TEST_RUN refuses IPv4 frames shorter than the IPv4 header
		}
		want := refRx(p, peers, throttled, ports)
		counts[want.counter]++
		if p[14]>>4 == 4 && p[14]&0x0f > 5 {
			counts["(with ip options) "+want.counter]++
		}
		before := stats(t, o)
		ret, out := run(t, o.SclpRx, append([]byte(nil), p...))
		d := stats(t, o).Sub(before)
		if ret != want.act {
			t.Fatalf("packet %d (%x...): verdict %d, Go %d (%s); delta %+v", i, p[:min(60, len(p))], ret, want.act, want.counter, d)
		}
		exp := map[string]uint64{want.counter: 1}
		if want.counter != "rx_passed" {
			exp["rx_segments"], exp["rx_bytes"] = 1, uint64(len(p))
		}
		if want.counter == "rx_fast" {
			exp["rx_fast_bytes"] = uint64(len(want.out))
			equalBytes(t, "fast path frame", out, want.out)
		}
		onlyCounter(t, d, exp)
		if t.Failed() {
			t.Fatalf("packet %d: Go says %s", i, want.counter)
		}
		if want.reason != 0 {
			rd.SetDeadline(time.Now().Add(time.Second))
			rec, err := rd.Read()
			if errors.Is(err, os.ErrDeadlineExceeded) {
				t.Fatalf("packet %d: no ring record", i)
			}
			got, err := ParseRecord(rec.RawSample)
			if err != nil || got.Reason != want.reason {
				t.Fatalf("packet %d: record %+v %v, want reason %v", i, got, err, want.reason)
			}
			equalBytes(t, "ring packet", got.Packet, want.ip)
		}
	}
	t.Logf("verdicts: %v", counts)
}
