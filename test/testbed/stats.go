package testbed

import (
	"fmt"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"
)

// LinkStats are a device's counters (from netlink, read inside the namespace).
type LinkStats struct {
	RxPackets, TxPackets, RxBytes, TxBytes, RxDropped, TxDropped uint64
	MTU                                                          int
}

// LinkStats reads the counters of dev inside the namespace. Differences of TxBytes/TxPackets
// before and after a transfer give the average frame size on a link.
func (n *NS) LinkStats(dev string) (LinkStats, error) {
	h, err := netns.GetFromName(n.Name)
	if err != nil {
		return LinkStats{}, fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer h.Close()
	nl, err := netlink.NewHandleAt(h)
	if err != nil {
		return LinkStats{}, fmt.Errorf("netlink in %s: %w", n.Name, err)
	}
	defer nl.Close()
	l, err := nl.LinkByName(dev)
	if err != nil {
		return LinkStats{}, fmt.Errorf("link %s in %s: %w", dev, n.Name, err)
	}
	a := l.Attrs()
	st := LinkStats{MTU: a.MTU}
	if s := a.Statistics; s != nil {
		st.RxPackets, st.TxPackets, st.RxBytes, st.TxBytes = s.RxPackets, s.TxPackets, s.RxBytes, s.TxBytes
		st.RxDropped, st.TxDropped = s.RxDropped, s.TxDropped
	}
	return st, nil
}

// MustLinkStats is LinkStats that calls tb.Fatalf on failure.
func (n *NS) MustLinkStats(tb TB, dev string) LinkStats {
	tb.Helper()
	st, err := n.LinkStats(dev)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return st
}
