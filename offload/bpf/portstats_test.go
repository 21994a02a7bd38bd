package bpf

import (
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// checkBreakdown fails the test unless the entries of port_stats and peer_stats add up to
// the host counters they break down (every BPF test checks it at its end).
func checkBreakdown(tb testing.TB, o *SclpObjects) {
	tb.Helper()
	host := stats(tb, o)
	ports, err := ReadPortCounters(o.PortStats)
	if err != nil {
		tb.Fatal(err)
	}
	peers, err := ReadPeerCounters(o.PeerStats)
	if err != nil {
		tb.Fatal(err)
	}
	var p PortCounters
	for _, c := range ports {
		p.TxMessages += c.TxMessages
		p.TxSegments += c.TxSegments
		p.TxBytes += c.TxBytes
		for i, v := range c.TxDrops {
			p.TxDrops[i] += v
		}
		p.RxFrames += c.RxFrames
		p.RxFrameBytes += c.RxFrameBytes
		p.RxMerged += c.RxMerged
	}
	var q PeerCounters
	for _, c := range peers {
		q.RxSegments += c.RxSegments
		q.RxBytes += c.RxBytes
	}
	m := host.Map()
	want := PortCounters{TxMessages: host.TxMessages, TxSegments: host.TxSegments, TxBytes: host.TxBytes,
		RxFrames: host.RxFast + host.RxMerged, RxFrameBytes: host.RxFastBytes + host.RxMergedBytes, RxMerged: host.RxMerged}
	for i, name := range TxDropNames {
		if i > 0 { // no_port is host-only
			want.TxDrops[i] = m["tx_drop_"+name]
		}
	}
	if p != want {
		tb.Errorf("port counters add up to %+v, host counters say %+v", p, want)
	}
	if wq := (PeerCounters{RxSegments: host.RxSegments, RxBytes: host.RxBytes}); q != wq {
		tb.Errorf("peer counters add up to %+v, host counters say %+v", q, wq)
	}
}

// TestPortAndPeerCounters: the rx program counts segments per peer (unknown sources in the
// unattributed bucket) and delivered frames per tunnel port; the tx program counts messages,
// segments, bytes and drops per port.
func TestPortAndPeerCounters(t *testing.T) {
	o := loadObjects(t)
	addRxPort(t, o, peerA, testVNI, 77, 1500)
	addCounters(t, o.PortStats, 78) // another port: stays zero
	r := rand.New(rand.NewPCG(5, 6))
	frame := innerFrame(r, 1000)
	seg := segments(t, peerA, localB, 1, message(testVNI, frame), 1468)[0]
	for range 3 {
		if ret, _ := run(t, o.SclpRx, seg); ret != actRedirect {
			t.Fatalf("verdict %d", ret)
		}
	}
	stranger := netip.MustParseAddr("10.9.9.9")
	odd := segments(t, stranger, localB, 2, message(testVNI, frame[:100]), 1468)[0]
	if ret, _ := run(t, o.SclpRx, odd); ret != actShot {
		t.Fatalf("segment of an unknown peer: verdict %d", ret)
	}
	// 0.0.0.0 is the key of the unattributed bucket, never a peer.
	zero := segments(t, netip.IPv4Unspecified(), localB, 3, message(testVNI, frame[:100]), 1468)[0]
	before := stats(t, o)
	if ret, _ := run(t, o.SclpRx, zero); ret != actShot || stats(t, o).Sub(before).RxDropUnknownPeer != 1 {
		t.Fatalf("segment from 0.0.0.0: verdict %d, %+v", ret, stats(t, o).Sub(before))
	}
	ports, err := ReadPortCounters(o.PortStats)
	if err != nil {
		t.Fatal(err)
	}
	peers, err := ReadPeerCounters(o.PeerStats)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := ports[77], (PortCounters{RxFrames: 3, RxFrameBytes: 3000}); got != want {
		t.Errorf("port 77: %+v, want %+v", got, want)
	}
	if got := ports[78]; got != (PortCounters{}) {
		t.Errorf("port 78 counted traffic of port 77: %+v", got)
	}
	if got, want := peers[be32(peerA)], (PeerCounters{RxSegments: 3, RxBytes: 3 * uint64(len(seg))}); got != want {
		t.Errorf("peer %v: %+v, want %+v", peerA, got, want)
	}
	if got, want := peers[UnattributedKey], (PeerCounters{RxSegments: 2, RxBytes: uint64(len(odd) + len(zero))}); got != want {
		t.Errorf("unattributed bucket: %+v, want %+v (the unknown peers' segments)", got, want)
	}
	if _, ok := peers[be32(stranger)]; ok {
		t.Error("the rx program created an entry for an unknown peer")
	}
}

func TestPortCountersTx(t *testing.T) {
	b := newTxBed(t, 1468)
	r := rand.New(rand.NewPCG(7, 8))
	frame := innerFrame(r, 3000)
	ret, segs := b.send(t, frame)
	if ret != actRedirect {
		t.Fatalf("verdict %d", ret)
	}
	// A port whose MSS is invalid drops as bad_config, counted against the port.
	var p SclpTxPort
	if err := b.o.TxPorts.Lookup(uint32(1), &p); err != nil {
		t.Fatal(err)
	}
	p.Mss = 100
	if err := b.o.TxPorts.Put(uint32(1), p); err != nil {
		t.Fatal(err)
	}
	if ret, _ := b.send(t, frame); ret != actShot {
		t.Fatalf("bad config: verdict %d", ret)
	}
	ports, err := ReadPortCounters(b.o.PortStats)
	if err != nil {
		t.Fatal(err)
	}
	want := PortCounters{TxMessages: 1, TxSegments: uint64(sclp.SegmentCount(3008, 1468)), TxBytes: 3000}
	want.TxDrops[2] = 1 // bad_config
	if got := ports[1]; got != want || len(segs) != int(want.TxSegments) {
		t.Errorf("port 1: %+v, want %+v (%d segments captured)", got, want, len(segs))
	}
}

// TestTxDropNamesFollowEnum: TxDropNames[i] is the host counter ST_TX_DROP_NO_PORT + i.
func TestTxDropNamesFollowEnum(t *testing.T) {
	first := -1
	for i, n := range CounterNames {
		if n == "tx_drop_no_port" {
			first = i
		}
	}
	for i, n := range TxDropNames {
		if first < 0 || CounterNames[first+i] != "tx_drop_"+n {
			t.Fatalf("TxDropNames[%d] = %q, counter %d is %q", i, n, first+i, CounterNames[max(first+i, 0)])
		}
	}
}
