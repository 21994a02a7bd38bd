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
		return ipSourceOf(d, dp)
	}
	return nil
}
