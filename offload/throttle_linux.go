package offload

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// DefaultThrottle is how long a Throttler throttles a peer after a refusal.
const DefaultThrottle = 50 * time.Millisecond

// maxThrottleMemo bounds the Throttler's memory of peers it wrote (the BPF map holds 1024).
const maxThrottleMemo = 1024

// Throttler turns the userspace reassembler's refusals into BPF throttling: Refused, given to
// fallback.RingReaderOptions.OnRefused, makes the rx program drop the refused peer's first
// segments of multi-segment messages that would go to the ring buffer (after their checksum,
// before the ring copy) for the throttle time, so that a configured peer flooding messages it
// never finishes costs the receiver little more than a non-peer's flood does. The
// reassembler refuses a new partial message only from a peer address at its cap without
// eviction credit (offload/sclp limits.go). That is not the same as a peer that does not
// complete messages: protocol 234 is unauthenticated, so a flood spoofing a peer's address
// fills that address's cap and gets it throttled although the real peer completes its
// messages; and a real peer whose partial messages stall (loss) can be throttled too. While
// throttled, the peer's single-segment messages, later segments of started messages and
// in-order messages the BPF merge slot finishes itself (jumbo ports) still pass; its other
// multi-segment messages are dropped (docs/datapath.md, "Throttled peers"). A throttled
// peer's first segments stop reaching userspace, so refusals stop too: the entry expires
// after the throttle time and is written again by the first refusal after it (one map update
// per peer per throttle time while the flood lasts).
type Throttler struct {
	m   *Manager
	ttl time.Duration

	mu    sync.Mutex
	until map[netip.Addr]time.Duration // expiry last written (CLOCK_MONOTONIC)

	writes, errs atomic.Uint64
}

// ThrottlerStats are a Throttler's counters.
type ThrottlerStats struct {
	// Writes counts throttled-map updates, Errors failed ones.
	Writes, Errors uint64
}

// NewThrottler returns a Throttler of m's rx program that throttles a refused peer for ttl
// (DefaultThrottle if ttl <= 0).
func (m *Manager) NewThrottler(ttl time.Duration) *Throttler {
	if ttl <= 0 {
		ttl = DefaultThrottle
	}
	return &Throttler{m: m, ttl: ttl, until: map[netip.Addr]time.Duration{}}
}

// Refused reports that the reassembler refused a new partial message from src: src is
// throttled for the throttle time, unless an entry written for it still has more than half
// of that to run (the refusals of segments already in flight when it was written).
func (t *Throttler) Refused(src netip.Addr) {
	now, err := bpf.MonotonicNow()
	if err != nil {
		t.errs.Add(1)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if u, ok := t.until[src]; ok && u-now > t.ttl/2 {
		return
	}
	if len(t.until) >= maxThrottleMemo {
		for a, u := range t.until {
			if u <= now {
				delete(t.until, a)
			}
		}
		if len(t.until) >= maxThrottleMemo {
			clear(t.until)
		}
	}
	if err := t.m.ThrottlePeer(src, now+t.ttl); err != nil {
		t.errs.Add(1)
		return
	}
	t.until[src] = now + t.ttl
	t.writes.Add(1)
}

// Stats returns the Throttler's counters.
func (t *Throttler) Stats() ThrottlerStats {
	return ThrottlerStats{Writes: t.writes.Load(), Errors: t.errs.Load()}
}

// ThrottlePeer makes the rx program drop the first segments of multi-segment messages from
// peer until the CLOCK_MONOTONIC time until (bpf.MonotonicNow() + a duration), counted as
// rx_throttled. Throttler calls it for the peers the reassembler refuses.
func (m *Manager) ThrottlePeer(peer netip.Addr, until time.Duration) error {
	return bpf.Throttle(m.bpfMap(bpf.MapThrottled), peer, until)
}
