package cli

import (
	"testing"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
)

// TestHostCounters gives every BPF counter a distinct bit and checks that each drop and
// exception counter lands in its sum exactly once (the rx drop sum used to miss too_big and
// error, the exception sum the out-of-order, busy and merged-run records, and the messages
// the rx program merged itself were not shown at all).
func TestHostCounters(t *testing.T) {
	var s bpf.Stats
	next := uint64(1)
	set := func(ps ...*uint64) (sum uint64) {
		for _, p := range ps {
			*p = next
			sum |= next
			next <<= 1
		}
		return sum
	}
	txDrops := set(&s.TxDropNoPort, &s.TxDropTooBig, &s.TxDropBadConfig, &s.TxDropNoNeigh, &s.TxDropCsum, &s.TxDropError)
	rxDrops := set(&s.RxDropShort, &s.RxDropEmpty, &s.RxDropBadIP, &s.RxDropBadPort, &s.RxDropUnknownPeer,
		&s.RxDropBadRemaining, &s.RxDropBadChecksum, &s.RxDropBadVXLAN, &s.RxDropUnknownVNI, &s.RxDropTooBig, &s.RxDropError)
	exc := set(&s.RxExcMulti, &s.RxExcLarge, &s.RxExcOutOfOrder, &s.RxExcBusy, &s.RxExcMergedRun)
	fast, merged, ringFull := set(&s.RxFast), set(&s.RxMerged), set(&s.RxRingFull)
	if n := len(s.Counters()); n != bpf.NumCounters {
		t.Fatalf("%d counters", n)
	}
	got := hostCounters(s, fallback.Stats{InjectedFrames: 5, InjectErrors: 6})
	for k, v := range map[string]uint64{
		"host_tx_drops": txDrops, "host_rx_drops": rxDrops, "host_rx_exceptions": exc,
		"host_rx_fast": fast, "host_rx_merged": merged, "host_rx_ring_full": ringFull,
		"host_fallback_injected_frames": 5, "host_fallback_inject_errors": 6,
	} {
		if got[k] != v {
			t.Errorf("%s = %#x, want %#x", k, got[k], v)
		}
	}
	// Every drop counter of the BPF map is in one of the two drop sums.
	var drops uint64
	for i, name := range bpf.CounterNames {
		if len(name) > 8 && (name[:8] == "tx_drop_" || name[:8] == "rx_drop_") {
			drops |= s.Counters()[i]
		}
	}
	if drops != txDrops|rxDrops {
		t.Errorf("BPF drop counters %#x, summed %#x", drops, txDrops|rxDrops)
	}
}

// TestPortCounters: the per-port counters that show and stats print, every tx drop reason
// in the drop sum once.
func TestPortCounters(t *testing.T) {
	var c bpf.PortCounters
	c.TxMessages, c.TxSegments, c.TxBytes, c.RxFrames, c.RxFrameBytes, c.RxMerged = 1, 2, 3, 4, 5, 6
	var want uint64
	for i := range c.TxDrops {
		c.TxDrops[i] = 1 << (8 + i)
		want |= c.TxDrops[i]
	}
	got := portCounters(c, bpf.PeerCounters{RxSegments: 7, RxBytes: 8})
	for k, v := range map[string]uint64{"tx_messages": 1, "tx_segments": 2, "tx_bytes": 3, "tx_drops": want,
		"rx_frames_bpf": 4, "rx_frame_bytes_bpf": 5, "rx_merged_bpf": 6, "peer_rx_segments": 7, "peer_rx_bytes": 8} {
		if got[k] != v {
			t.Errorf("%s = %#x, want %#x", k, got[k], v)
		}
	}
}
