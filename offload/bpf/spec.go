package bpf

import (
	"fmt"

	"github.com/cilium/ebpf"
)

// Map and program names in the collection.
const (
	MapTxPorts    = "tx_ports"
	MapRxPorts    = "rx_ports"
	MapPeers      = "peers"
	MapStats      = "stats"
	MapExceptions = "exceptions"
	MapTxScratch  = "tx_scratch"
	MapPortMeta   = "port_meta"
	// MapThrottled is the LRU hash of throttled peers (address -> expiry, CLOCK_MONOTONIC ns).
	MapThrottled = "throttled"
	// VarNoCsumFix is the test-only load-time switch that disables the tx checksum fix.
	VarNoCsumFix = "cfg_no_csum_fix"
	// VarMergeTimeout is the load-time idle timeout (ns, uint64) of the rx merge slot.
	VarMergeTimeout = "cfg_merge_timeout_ns"
	ProgTx          = "sclp_tx"
	ProgRx          = "sclp_rx"
)

// TX port flags (tx_port.flags).
const (
	// TxFlagFIB makes the tx program resolve the next hop with bpf_fib_lookup per message
	// (falling back to the MACs in the entry when the neighbour is not resolved).
	TxFlagFIB uint32 = 1
)

// RX port flags (rx_port.flags).
const (
	// RxFlagMerge makes the rx program reassemble in-order multi-segment messages whose
	// frame fits the port MTU (and MaxMerge) and deliver them as one frame.
	RxFlagMerge uint32 = 1
)

// Limits of the programs (common.h).
const (
	MinMSS = 512
	MaxMSS = 16000
	// MaxRxPacket is the largest IPv4 packet the rx program validates and copies.
	MaxRxPacket = 16064
	// MaxMerge is the largest message (VXLAN header + frame) the rx program reassembles.
	MaxMerge = 16000
)

// Spec returns the collection spec with the per-CPU scratch map sized for this machine.
// Maps keep their pin-by-name setting; callers choose the pin path (or clear Pinning).
func Spec() (*ebpf.CollectionSpec, error) {
	spec, err := LoadSclp()
	if err != nil {
		return nil, fmt.Errorf("load bpf spec: %w", err)
	}
	n, err := ebpf.PossibleCPU()
	if err != nil {
		return nil, fmt.Errorf("possible cpus: %w", err)
	}
	spec.Maps[MapTxScratch].MaxEntries = uint32(n)
	return spec, nil
}

// UDPFastAllFrames is the flag (SclpUdpRxPort.Flags, SclpUdpTxPort.Flags) with which the
// mode=udp fast path takes every frame that fits one segment. Without it, it takes only the
// frames that may overtake the rest of their flow (TCP without payload, SYN, FIN or RST;
// IP packets that are neither TCP nor UDP; non-IP frames on receive): udpfast.h,
// uf_order_safe.
const UDPFastAllFrames = 1
