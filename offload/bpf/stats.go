package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// NumCounters is the number of per-CPU counters (enum stat in common.h).
const NumCounters = len(SclpSclpStats{}.C)

// Stats are the datapath counters summed over CPUs. Field order follows enum stat in
// common.h; CounterNames gives each its snake_case name.
type Stats struct {
	// TxMessages counts frames encapsulated as SCLP messages and sent.
	TxMessages uint64
	// TxSegments counts SCLP segments sent on the underlay.
	TxSegments uint64
	// TxBytes counts inner frame bytes sent.
	TxBytes uint64
	// TxWireBytes counts bytes sent on the underlay (outer headers included).
	TxWireBytes uint64
	// TxCsumFinalized counts CHECKSUM_PARTIAL frames whose inner checksum tx completed.
	TxCsumFinalized uint64
	// TxFIBLookups counts bpf_fib_lookup calls (ports with FIB resolution).
	TxFIBLookups uint64
	// TxDropNoPort counts frames on a device without a tx port entry.
	TxDropNoPort uint64
	// TxDropTooBig counts frames above the largest SCLP message.
	TxDropTooBig uint64
	// TxDropBadConfig counts frames of a port with an invalid MSS.
	TxDropBadConfig uint64
	// TxDropNoNeigh counts frames dropped for lack of a next-hop MAC.
	TxDropNoNeigh uint64
	// TxDropCsum counts CHECKSUM_PARTIAL frames whose checksum state could not be fixed.
	TxDropCsum uint64
	// TxDropError counts frames dropped because a helper failed.
	TxDropError uint64
	// RxSegments counts SCLP packets seen on the underlay.
	RxSegments uint64
	// RxBytes counts bytes of SCLP packets seen on the underlay.
	RxBytes uint64
	// RxPassed counts non-SCLP packets passed to the stack untouched.
	RxPassed uint64
	// RxFast counts single-segment messages delivered decapsulated by BPF.
	RxFast uint64
	// RxFastBytes counts inner frame bytes delivered by BPF.
	RxFastBytes uint64
	// RxExcMulti counts segments handed to userspace as parts of multi-segment messages.
	RxExcMulti uint64
	// RxExcLarge counts single-segment messages handed to userspace (too large or too small
	// for BPF delivery).
	RxExcLarge uint64
	// RxRingFull counts segments dropped because the ring buffer was full.
	RxRingFull uint64
	// RxDropShort counts truncated packets.
	RxDropShort uint64
	// RxDropEmpty counts segments without payload.
	RxDropEmpty uint64
	// RxDropBadIP counts bad outer IPv4 headers (version, header length, fragments, checksum;
	// options are stripped, not dropped).
	RxDropBadIP uint64
	// RxDropBadPort counts segments whose SCLP destination port is not 4789.
	RxDropBadPort uint64
	// RxDropUnknownPeer counts segments from an address that is no configured peer.
	RxDropUnknownPeer uint64
	// RxDropBadRemaining counts segments whose payload + remaining exceeds a message.
	RxDropBadRemaining uint64
	// RxDropBadChecksum counts segments failing the SCLP checksum.
	RxDropBadChecksum uint64
	// RxDropBadVXLAN counts first segments with bad VXLAN flags or reserved byte.
	RxDropBadVXLAN uint64
	// RxDropUnknownVNI counts first segments whose (peer, VNI) is bound to no port.
	RxDropUnknownVNI uint64
	// RxDropTooBig counts segments larger than the rx program handles (16,064 bytes).
	RxDropTooBig uint64
	// RxDropError counts packets dropped because a helper failed.
	RxDropError uint64
	// RxMerged counts multi-segment messages reassembled and delivered as one frame by BPF.
	RxMerged uint64
	// RxMergedBytes counts inner frame bytes of those messages.
	RxMergedBytes uint64
	// RxMergeSegments counts segments absorbed into BPF reassembly.
	RxMergeSegments uint64
	// RxExcOutOfOrder counts segments handed to userspace because they broke the order of
	// the message being reassembled in BPF (reason 2).
	RxExcOutOfOrder uint64
	// RxExcBusy counts first segments handed to userspace because the per-CPU reassembly
	// slot was busy (reason 4).
	RxExcBusy uint64
	// RxExcMergedRun counts partial messages flushed from BPF reassembly to userspace as a
	// merged run (reason 5).
	RxExcMergedRun uint64
	// RxDuplicate counts segments the rx program dropped as duplicates of bytes its merge
	// slot holds, delivered or already handed to userspace (docs/datapath.md).
	RxDuplicate uint64
	// RxThrottled counts first segments of multi-segment messages from a throttled peer
	// (throttled map: its new partial messages are being refused in userspace) dropped
	// where they would go to the ring (after their checksum; never one the merge slot takes).
	RxThrottled uint64
}

// CounterNames are the snake_case names of the counters, in enum stat order.
var CounterNames = [...]string{
	"tx_messages", "tx_segments", "tx_bytes", "tx_wire_bytes", "tx_csum_finalized",
	"tx_fib_lookups", "tx_drop_no_port", "tx_drop_too_big", "tx_drop_bad_config",
	"tx_drop_no_neigh", "tx_drop_csum", "tx_drop_error",
	"rx_segments", "rx_bytes", "rx_passed", "rx_fast", "rx_fast_bytes", "rx_exc_multi",
	"rx_exc_large", "rx_ring_full", "rx_drop_short", "rx_drop_empty", "rx_drop_bad_ip",
	"rx_drop_bad_port", "rx_drop_unknown_peer", "rx_drop_bad_remaining",
	"rx_drop_bad_checksum", "rx_drop_bad_vxlan", "rx_drop_unknown_vni", "rx_drop_too_big",
	"rx_drop_error", "rx_merged", "rx_merged_bytes", "rx_merge_segments", "rx_exc_out_of_order",
	"rx_exc_busy", "rx_exc_merged_run", "rx_duplicate", "rx_throttled",
}

var _ = [1]int{}[len(CounterNames)-NumCounters] // CounterNames covers every counter

// fields returns pointers to the counters of s in enum order.
func (s *Stats) fields() [NumCounters]*uint64 {
	return [NumCounters]*uint64{
		&s.TxMessages, &s.TxSegments, &s.TxBytes, &s.TxWireBytes, &s.TxCsumFinalized,
		&s.TxFIBLookups, &s.TxDropNoPort, &s.TxDropTooBig, &s.TxDropBadConfig,
		&s.TxDropNoNeigh, &s.TxDropCsum, &s.TxDropError,
		&s.RxSegments, &s.RxBytes, &s.RxPassed, &s.RxFast, &s.RxFastBytes, &s.RxExcMulti,
		&s.RxExcLarge, &s.RxRingFull, &s.RxDropShort, &s.RxDropEmpty, &s.RxDropBadIP,
		&s.RxDropBadPort, &s.RxDropUnknownPeer, &s.RxDropBadRemaining,
		&s.RxDropBadChecksum, &s.RxDropBadVXLAN, &s.RxDropUnknownVNI, &s.RxDropTooBig,
		&s.RxDropError, &s.RxMerged, &s.RxMergedBytes, &s.RxMergeSegments, &s.RxExcOutOfOrder,
		&s.RxExcBusy, &s.RxExcMergedRun, &s.RxDuplicate, &s.RxThrottled,
	}
}

// Counters returns the counters in enum order.
func (s Stats) Counters() [NumCounters]uint64 {
	var out [NumCounters]uint64
	for i, p := range s.fields() {
		out[i] = *p
	}
	return out
}

// StatsFromCounters returns the Stats holding c (counters in enum order, as Counters
// returns them).
func StatsFromCounters(c [NumCounters]uint64) Stats {
	var s Stats
	for i, p := range s.fields() {
		*p = c[i]
	}
	return s
}

// Map returns the counters by snake_case name (for metrics exporters).
func (s Stats) Map() map[string]uint64 {
	m := make(map[string]uint64, NumCounters)
	for i, v := range s.Counters() {
		m[CounterNames[i]] = v
	}
	return m
}

// Sub returns s - o counter by counter (deltas between two reads).
func (s Stats) Sub(o Stats) Stats {
	var d Stats
	a, b, out := s.Counters(), o.Counters(), d.fields()
	for i := range a {
		*out[i] = a[i] - b[i]
	}
	return d
}

// ReadStats sums the per-CPU counters of the stats map.
func ReadStats(m *ebpf.Map) (Stats, error) {
	var perCPU []SclpSclpStats
	if err := m.Lookup(uint32(0), &perCPU); err != nil {
		return Stats{}, fmt.Errorf("read stats: %w", err)
	}
	var s Stats
	f := s.fields()
	for _, c := range perCPU {
		for i, v := range c.C {
			*f[i] += v
		}
	}
	return s, nil
}
