package bpf

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
)

// Per-port and per-peer counter maps (struct port_counters and peer_counters in common.h).
const (
	// MapPortStats holds the counters of each tunnel port, keyed like tx_ports by the
	// ifindex of the port's datapath-side veth.
	MapPortStats = "port_stats"
	// MapPeerStats holds the receive counters of each peer, keyed like peers by the outer
	// source address (network-order bytes read in host order).
	MapPeerStats = "peer_stats"
	// UnattributedKey is the key of the bucket in both maps that counts what no entry
	// accounts for (a source that is no peer, a port without an entry). With it, the
	// entries of a map add up to the matching host counters of Stats.
	UnattributedKey uint32 = 0
)

// NumTxDrops is the number of per-port transmit drop counters (ST_TX_DROP_NO_PORT ..
// ST_TX_DROP_ERROR).
const NumTxDrops = len(SclpPortCounters{}.TxDrop)

// TxDropNames are the reasons of PortCounters.TxDrops by index: the names of the host
// counters tx_drop_<reason> (CounterNames). no_port is never counted per port (a frame
// without a tx port entry has no port).
var TxDropNames = [...]string{"no_port", "too_big", "bad_config", "no_neigh", "csum", "error"}

var _ = [1]int{}[len(TxDropNames)-NumTxDrops] // one name per counter

// PortCounters are one tunnel port's counters summed over CPUs.
type PortCounters struct {
	// TxMessages, TxSegments and TxBytes count what the tx program sent for the port
	// (as Stats.TxMessages, TxSegments, TxBytes).
	TxMessages, TxSegments, TxBytes uint64
	// TxDrops counts the port's transmit drops by reason (TxDropNames).
	TxDrops [NumTxDrops]uint64
	// RxFrames and RxFrameBytes count inner frames the rx program delivered into the port
	// itself (single-segment and merged: Stats.RxFast + RxMerged and their bytes).
	RxFrames, RxFrameBytes uint64
	// RxMerged counts those frames merged from several segments (Stats.RxMerged).
	RxMerged uint64
}

// PeerCounters are one peer's receive counters summed over CPUs.
type PeerCounters struct {
	// RxSegments and RxBytes count the SCLP packets from the peer seen on the underlay
	// (as Stats.RxSegments, RxBytes).
	RxSegments, RxBytes uint64
}

// ReadPortCounters sums the per-CPU entries of the port_stats map, by key.
func ReadPortCounters(m *ebpf.Map) (map[uint32]PortCounters, error) {
	out := map[uint32]PortCounters{}
	var (
		key    uint32
		perCPU []SclpPortCounters
	)
	it := m.Iterate()
	for it.Next(&key, &perCPU) {
		var s PortCounters
		for _, c := range perCPU {
			s.TxMessages += c.TxMessages
			s.TxSegments += c.TxSegments
			s.TxBytes += c.TxBytes
			for i, v := range c.TxDrop {
				s.TxDrops[i] += v
			}
			s.RxFrames += c.RxFrames
			s.RxFrameBytes += c.RxFrameBytes
			s.RxMerged += c.RxMerged
		}
		out[key] = s
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read port counters: %w", err)
	}
	return out, nil
}

// ReadPeerCounters sums the per-CPU entries of the peer_stats map, by key.
func ReadPeerCounters(m *ebpf.Map) (map[uint32]PeerCounters, error) {
	out := map[uint32]PeerCounters{}
	var (
		key    uint32
		perCPU []SclpPeerCounters
	)
	it := m.Iterate()
	for it.Next(&key, &perCPU) {
		var s PeerCounters
		for _, c := range perCPU {
			s.RxSegments += c.RxSegments
			s.RxBytes += c.RxBytes
		}
		out[key] = s
	}
	if err := it.Err(); err != nil {
		return nil, fmt.Errorf("read peer counters: %w", err)
	}
	return out, nil
}

// AddCounters creates a zeroed entry for key in a per-CPU counter map (port_stats or
// peer_stats) unless one exists: counters of an existing entry are kept.
func AddCounters(m *ebpf.Map, key uint32) error {
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return fmt.Errorf("possible cpus: %w", err)
	}
	zero := make([][]byte, n)
	for i := range zero {
		zero[i] = make([]byte, m.ValueSize())
	}
	err = m.Update(key, zero, ebpf.UpdateNoExist)
	if err != nil && !errors.Is(err, ebpf.ErrKeyExist) {
		return fmt.Errorf("add counters %d to %s: %w", key, m, err)
	}
	return nil
}
