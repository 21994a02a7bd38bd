//go:build !linux

package metrics

import (
	"net/netip"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// sourceOf returns the DatapathSource for dp, nil if it has no readable statistics (no
// mode=udp datapath outside Linux).
func sourceOf(dp offload.Datapath, _ func() map[string]netip.Addr) DatapathSource {
	switch d := dp.(type) {
	case DatapathSource:
		return d
	case BPFStatser:
		src := IPSource{Datapath: d}
		if f, ok := dp.(FallbackStatser); ok {
			src.Fallback = fallbackAdapter{f}
		}
		if p, ok := dp.(PortPeerStatser); ok {
			src.Ports = p
		}
		if p, ok := dp.(PortInjectStatser); ok {
			src.Injected = p
		}
		return src
	}
	return nil
}
