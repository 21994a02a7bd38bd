package offload

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestNativePortPeerStats: the per-port and per-peer counters of mode=ip count the traffic of
// the port and its peer, account for everything the host counters saw (nothing in the
// unattributed buckets), survive a manager restart, and leave with the port.
func TestNativePortPeerStats(t *testing.T) {
	b := newNativeBed(t, bedOptions{})
	const n = 10
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: n, Interval: 10 * time.Millisecond, Size: 1000}); err != nil {
		t.Fatalf("ping: %v (%v)", err, st)
	}
	for i := range b.hosts {
		m, spec := b.manager(i), b.specs[i]
		host := b.stats(i)
		pp, err := m.PortPeerStats()
		if err != nil {
			t.Fatal(err)
		}
		port, peer := pp.Ports[spec.Name], pp.Peers[spec.Peer]
		t.Logf("host %d: port %+v, peer %+v, unattributed %+v / %+v", i, port, peer, pp.UnattributedPort, pp.UnattributedPeer)
		if pp.PortPeer[spec.Name] != spec.Peer {
			t.Errorf("host %d: port %s has peer %v, want %v", i, spec.Name, pp.PortPeer[spec.Name], spec.Peer)
		}
		if port.TxMessages < n || port.TxMessages != host.TxMessages || port.TxSegments != host.TxSegments || port.TxBytes != host.TxBytes {
			t.Errorf("host %d: port tx %d/%d/%d, host %d/%d/%d (want all of it, at least %d messages)", i,
				port.TxMessages, port.TxSegments, port.TxBytes, host.TxMessages, host.TxSegments, host.TxBytes, n)
		}
		if port.RxFrames < n || port.RxFrames != host.RxFast+host.RxMerged || port.RxFrameBytes != host.RxFastBytes+host.RxMergedBytes {
			t.Errorf("host %d: port rx %d frames %d bytes, host delivered %d / %d", i, port.RxFrames, port.RxFrameBytes,
				host.RxFast+host.RxMerged, host.RxFastBytes+host.RxMergedBytes)
		}
		if peer.RxSegments < n || peer.RxSegments != host.RxSegments || peer.RxBytes != host.RxBytes {
			t.Errorf("host %d: peer rx %d segments %d bytes, host %d / %d", i, peer.RxSegments, peer.RxBytes, host.RxSegments, host.RxBytes)
		}
	}
	// A restarted manager adopts the counters with the ports.
	before, err := b.manager(0).PortPeerStats()
	if err != nil {
		t.Fatal(err)
	}
	if err := b.manager(0).Close(); err != nil {
		t.Fatal(err)
	}
	m, err := NewManager(b.opts[0])
	if err != nil {
		t.Fatal(err)
	}
	b.mu.Lock()
	b.mgrs[0] = m
	b.mu.Unlock()
	after, err := m.PortPeerStats()
	if err != nil {
		t.Fatal(err)
	}
	name, peer := b.specs[0].Name, b.specs[0].Peer
	if after.Ports[name].TxMessages < before.Ports[name].TxMessages || after.Peers[peer].RxSegments < before.Peers[peer].RxSegments {
		t.Fatalf("counters lost across a restart: before %+v, after %+v", before, after)
	}
	if err := m.RemovePort(context.Background(), name); err != nil {
		t.Fatal(err)
	}
	gone, err := m.PortPeerStats()
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := gone.Ports[name]; ok || len(gone.Peers) != 0 {
		t.Fatalf("counters left after RemovePort: %+v", gone)
	}
	if err := m.EnsurePort(context.Background(), b.specs[0]); err != nil {
		t.Fatal(err)
	}
	again, err := m.PortPeerStats()
	if err != nil {
		t.Fatal(err)
	}
	if c := again.Ports[name]; c.TxMessages > n/2 {
		t.Fatalf("a re-added port starts with the old counters: %+v", c)
	}
}

// TestNativeAdoptWithoutCounterMaps: a manager adopting the pinned state of a version
// without the counter maps (removed here) creates them with entries for every port and peer
// before its programs run (the rx program takes a source without an entry for no peer), so
// traffic goes on and is counted per port and peer.
func TestNativeAdoptWithoutCounterMaps(t *testing.T) {
	b := newNativeBed(t, bedOptions{})
	for i := range b.hosts {
		if err := b.manager(i).Close(); err != nil {
			t.Fatal(err)
		}
		for _, name := range []string{bpf.MapPortStats, bpf.MapPeerStats} {
			if err := os.Remove(filepath.Join(b.opts[i].PinRoot, "maps", name)); err != nil {
				t.Fatal(err)
			}
		}
		m, err := NewManager(b.opts[i])
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		b.mgrs[i] = m
		b.mu.Unlock()
	}
	const n = 5
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: n, Interval: 10 * time.Millisecond}); err != nil {
		t.Fatalf("ping after adoption: %v (%v)", err, st)
	}
	pp, err := b.manager(1).PortPeerStats()
	if err != nil {
		t.Fatal(err)
	}
	if c := pp.Peers[b.specs[1].Peer]; c.RxSegments < n || pp.UnattributedPeer.RxSegments != 0 {
		t.Fatalf("peer counters after adoption: %+v, unattributed %+v", c, pp.UnattributedPeer)
	}
	if c := pp.Ports[b.specs[1].Name]; c.RxFrames < n || c.TxMessages < n {
		t.Fatalf("port counters after adoption: %+v", c)
	}
}
