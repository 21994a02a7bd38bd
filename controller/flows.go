package controller

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
)

// Cookies of the flows sclp-ovs owns: the high 32 bits mark ownership, the low 32 bits are a
// hash of the flow set (its generation), so one dump shows whether the installed set is the
// current one.
const (
	CookieBase uint64 = 0x5c1b0ff1 << 32
	CookieMask uint64 = 0xffffffff << 32
)

// OFPortLocal is the OpenFlow number of a bridge's internal port.
const OFPortLocal = 65534

// Flow priorities in table 0.
const (
	PrioTunnelFlood = 110 // multicast/broadcast from a tunnel: local ports only
	PrioTunnel      = 100 // unicast from a tunnel: NORMAL (protected ports block tunnel->tunnel)
)

// String renders f in ovs-ofctl add-flow syntax.
func (f Flow) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "cookie=%#x,table=%d,priority=%d", f.Cookie, f.Table, f.Priority)
	if f.Match != "" {
		b.WriteString("," + f.Match)
	}
	b.WriteString(",actions=" + f.Actions)
	return b.String()
}

// BridgeFlows computes the flows sclp-ovs owns on a bridge: split horizon, so that a frame
// that came from one tunnel port never leaves through another and a full mesh of hosts has
// no loop.
//
//	priority 110  in_port=TUN, dl_dst multicast  -> output to every non-tunnel port
//	priority 100  in_port=TUN                    -> NORMAL (learns the remote MAC; the
//	                                                tunnel ports are Port.protected, so an
//	                                                unknown unicast is not flooded to the
//	                                                other tunnels either)
//
// Traffic from local ports keeps the bridge's own pipeline (NORMAL), which floods to every
// tunnel once: each remote host receives one copy. Ports without an OpenFlow number yet are
// left out. The returned flows carry the generation cookie; it is 0 flows for a bridge
// without tunnel ports.
func BridgeFlows(b Bridge) ([]Flow, uint64) {
	var tun, local []int
	for _, p := range b.Ports {
		if p.OFPort <= 0 {
			continue
		}
		if Owned(p.ExternalIDs) {
			tun = append(tun, p.OFPort)
		} else {
			local = append(local, p.OFPort)
		}
	}
	sort.Ints(tun)
	sort.Ints(local)
	if len(tun) == 0 {
		return nil, CookieBase
	}
	flood := "drop"
	if len(local) > 0 {
		outs := make([]string, len(local))
		for i, p := range local {
			outs[i] = "output:" + portRef(p)
		}
		flood = strings.Join(outs, ",")
	}
	var flows []Flow
	for _, t := range tun {
		in := "in_port=" + strconv.Itoa(t)
		flows = append(flows,
			Flow{Priority: PrioTunnelFlood, Match: in + ",dl_dst=01:00:00:00:00:00/01:00:00:00:00:00", Actions: flood},
			Flow{Priority: PrioTunnel, Match: in, Actions: "NORMAL"})
	}
	h := fnv.New32a()
	for _, f := range flows {
		h.Write([]byte(f.String()))
	}
	cookie := CookieBase | uint64(h.Sum32())
	for i := range flows {
		flows[i].Cookie = cookie
	}
	return flows, cookie
}

func portRef(p int) string {
	if p == OFPortLocal {
		return "LOCAL"
	}
	return strconv.Itoa(p)
}
