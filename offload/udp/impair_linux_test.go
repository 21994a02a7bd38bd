//go:build linux

package udp

import (
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// impairedHosts builds host1 -- [mid] -- host2 with the shared deterministic impairer
// (testbed.NewImpairedHosts) relaying between them: tunnel datagrams (UDP to
// offload.DefaultUDPPort, counted per direction from 1) are dropped, duplicated or held back
// behind the next one every dropEvery, dupEvery and reorderEvery datagrams.
func impairedHosts(t testing.TB, dropEvery, dupEvery, reorderEvery int) ([]*testbed.Host, *testbed.Impairer) {
	return testbed.NewImpairedHosts(t, testbed.HostsOptions{}, testbed.ImpairConfig{
		Match: testbed.MatchUDPDstPort(offload.DefaultUDPPort),
		Drop:  testbed.Every(dropEvery), Duplicate: testbed.Every(dupEvery), Reorder: testbed.Every(reorderEvery),
	})
}

// TestImpairedTCP: reordered, duplicated and dropped segments; 16 MB over TCP arrive
// byte-identical (lost messages are retransmitted by TCP, never delivered corrupted).
func TestImpairedTCP(t *testing.T) {
	var im *testbed.Impairer
	p := newPair(t, pairOptions{between: func(t testing.TB) []*testbed.Host {
		var hosts []*testbed.Host
		hosts, im = impairedHosts(t, 211, 13, 7)
		return hosts
	}})
	p.ping(t)
	gbps := p.tcpTransfer(t, 16<<20, 64<<10)
	st := p.dps[1].Stats().Reassembly
	c := im.Total()
	t.Logf("16 MB intact at %.2f Gbit/s; impairer: %d tunnel datagrams, %d dropped, %d duplicated, %d reordered; receiver drops %v",
		gbps, c.Matched, c.Dropped, c.Duplicated, c.Reordered, st.Reassembly.Drops)
	if c.Dropped == 0 || c.Duplicated == 0 || c.Reordered == 0 {
		t.Fatal("the impairer did not impair")
	}
}

// TestImpairedUDPAccounting: 60,000-byte datagrams (42-segment messages) through the impairer:
// none arrives corrupted, and every message that did not arrive is counted by the receiver as
// a partial message that expired (timeout or orphan) or was evicted.
func TestImpairedUDPAccounting(t *testing.T) {
	var im *testbed.Impairer
	p := newPair(t, pairOptions{innerMTU: 65000, between: func(t testing.TB) []*testbed.Host {
		var hosts []*testbed.Host
		hosts, im = impairedHosts(t, 499, 37, 11)
		return hosts
	}})
	p.ping(t)
	const sent = 400
	ok, bad, _ := p.udpTransfer(t, sent, 60000, 2*time.Millisecond)
	time.Sleep(1500 * time.Millisecond) // past the 1 s reassembly timeout
	st := p.dps[1].Stats().Reassembly
	lost := sent - ok
	c := im.Total()
	t.Logf("%d of %d intact, %d corrupt, %d lost; impairer: %d datagrams, %d dropped, %d duplicated, %d reordered; receiver: timed out %d, evicted %d, drops %v",
		ok, sent, bad, lost, c.Matched, c.Dropped, c.Duplicated, c.Reordered,
		st.TimedOut(), st.Evicted(), st.Reassembly.Drops)
	if bad != 0 {
		t.Fatalf("%d corrupted datagrams delivered", bad)
	}
	if c.Dropped == 0 || c.Duplicated == 0 || c.Reordered == 0 {
		t.Fatal("the impairer did not impair")
	}
	// A lost message is a partial message that expires: "timeout" when its first segment
	// arrived, "orphan" when the first was the one dropped. Orphans also count duplicates
	// that arrive after their message completed (they cannot be told apart from an early
	// non-first segment), so: timeouts + evicted <= lost <= timeouts + orphans + evicted.
	lo := st.Reassembly.Drops[sclp.DropTimeout] + st.Evicted()
	if uint64(lost) < lo || uint64(lost) > st.TimedOut()+st.Evicted() {
		t.Errorf("%d messages lost, but counted %d timeouts, %d orphans, %d evicted", lost,
			st.Reassembly.Drops[sclp.DropTimeout], st.Reassembly.Drops[sclp.DropOrphan], st.Evicted())
	}
	if d := st.Reassembly.Drops; d[sclp.DropDuplicate] == 0 {
		t.Errorf("no duplicate counted: %v", d)
	}
	if st.Reassembly.BufferedEntries != 0 {
		t.Errorf("%d partial messages still held after the timeout", st.Reassembly.BufferedEntries)
	}
}
