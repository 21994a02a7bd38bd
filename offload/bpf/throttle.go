package bpf

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"
)

// MonotonicNow returns CLOCK_MONOTONIC, the clock of bpf_ktime_get_ns and of the throttled
// map's expiry times.
func MonotonicNow() (time.Duration, error) {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_MONOTONIC, &ts); err != nil {
		return 0, fmt.Errorf("clock_gettime: %w", err)
	}
	return time.Duration(ts.Nano()), nil
}

// ThrottleKey returns peer as the throttled map keys it (like every address map: its
// network-order bytes read in host order).
func ThrottleKey(peer netip.Addr) uint32 {
	b := peer.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// Throttle makes the rx program drop the first segments of multi-segment messages from peer
// (an IPv4 address) until the CLOCK_MONOTONIC time until (MonotonicNow() + a duration),
// counting them as rx_throttled: m is the throttled map (MapThrottled), an LRU hash, so the
// least recently used entry makes room when it is full. Only first segments that would go to
// the ring are dropped: single-segment messages, the later segments of messages and the
// messages the merge slot takes pass.
func Throttle(m *ebpf.Map, peer netip.Addr, until time.Duration) error {
	if !peer.Is4() {
		return fmt.Errorf("throttle %v: not an IPv4 address", peer)
	}
	if err := m.Put(ThrottleKey(peer), uint64(until)); err != nil {
		return fmt.Errorf("throttle %v: %w", peer, err)
	}
	return nil
}
