//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// ErrFastPathUnavailable: the fast path's program could not be loaded or attached (old
// kernel, no TCX, verifier); the datapath runs without it.
var ErrFastPathUnavailable = errors.New("udp fast path unavailable")

// FastPathStats are the counters of the tc-BPF fast path for one-segment messages
// (offload/bpf udpfast.h), summed over CPUs. Per-port frame counts are in PortStats.
type FastPathStats struct {
	// Loaded reports whether the program is loaded (Options.NoFastPath unset and loading
	// succeeded).
	Loaded bool
	// RxFrames and RxBytes count one-segment messages the program delivered into a tunnel
	// port and their inner frame bytes.
	RxFrames, RxBytes uint64
	// RxChecksumChecked counts UDP checksums the program verified itself;
	// RxChecksumTrusted those the kernel had verified (CHECKSUM_UNNECESSARY) or that belong
	// to a locally generated skb (CHECKSUM_PARTIAL), which the UDP stack accepts too.
	RxChecksumChecked, RxChecksumTrusted uint64
	// RxPassGSO counts GRO-merged skbs (several datagrams of one flow) left to the socket;
	// RxPassMulti segments of multi-segment messages; RxPassNoPort datagrams to a port's
	// local address and UDP port from an unknown (peer, VNI), which the socket path counts
	// as it does without the fast path; RxPassNoChecksum datagrams without a UDP checksum;
	// RxPassOther anything else left to the socket (IP options or fragments, a bad or
	// truncated SCLP/VXLAN header, a frame above the port MTU, an inner frame whose L4
	// checksum the program cannot finish).
	RxPassGSO, RxPassMulti, RxPassNoPort, RxPassNoChecksum, RxPassOther uint64
	// RxDropChecksum counts datagrams with a bad UDP checksum (dropped by the program);
	// RxDropError frames dropped because a helper failed half-way.
	RxDropChecksum, RxDropError uint64
}

// add adds o's counters (Loaded is or-ed).
func (s *FastPathStats) add(o FastPathStats) {
	s.Loaded = s.Loaded || o.Loaded
	s.RxFrames += o.RxFrames
	s.RxBytes += o.RxBytes
	s.RxChecksumChecked += o.RxChecksumChecked
	s.RxChecksumTrusted += o.RxChecksumTrusted
	s.RxPassGSO += o.RxPassGSO
	s.RxPassMulti += o.RxPassMulti
	s.RxPassNoPort += o.RxPassNoPort
	s.RxPassNoChecksum += o.RxPassNoChecksum
	s.RxPassOther += o.RxPassOther
	s.RxDropChecksum += o.RxDropChecksum
	s.RxDropError += o.RxDropError
}

// fastObjects are the objects of the fast path in the bpf collection.
type fastObjects struct {
	Rx        *ebpf.Program `ebpf:"sclp_udp_rx"`
	RxPorts   *ebpf.Map     `ebpf:"udp_rx_ports"`
	Locals    *ebpf.Map     `ebpf:"udp_locals"`
	Stats     *ebpf.Map     `ebpf:"udp_stats"`
	PortStats *ebpf.Map     `ebpf:"udp_port_stats"`
}

func (o *fastObjects) close() {
	for _, c := range []interface{ Close() error }{o.Rx, o.RxPorts, o.Locals, o.Stats, o.PortStats} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// fastPath is one datapath's copy of the fast path: its own unpinned maps, and one TCX
// ingress link per underlay device in use. Used under Datapath.mu.
type fastPath struct {
	objs   fastObjects
	links  map[int]*refLink            // by underlay ifindex
	locals map[bpf.SclpUdpLocalKey]int // references by local (address, port)
	keys   map[string]fastPortKeys     // by port name
	attach func(ifindex int, prog *ebpf.Program) (link.Link, error)
}

type refLink struct {
	l    link.Link
	refs int
}

// fastPortKeys is what a port added to the maps.
type fastPortKeys struct {
	rx       bpf.SclpUdpRxKey
	local    bpf.SclpUdpLocalKey
	underlay int
	tunnel   uint32
}

// loadFastPath loads the fast path's program and maps (only those: the mode=ip programs
// of the same collection are not loaded).
func loadFastPath() (*fastPath, error) {
	spec, err := bpf.LoadSclp()
	if err != nil {
		return nil, fmt.Errorf("load fast path spec: %w: %v", ErrFastPathUnavailable, err)
	}
	f := &fastPath{links: map[int]*refLink{}, locals: map[bpf.SclpUdpLocalKey]int{},
		keys: map[string]fastPortKeys{}, attach: attachTCX}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		f.objs.close()
		return nil, fmt.Errorf("load fast path: %w: %v", ErrFastPathUnavailable, err)
	}
	return f, nil
}

func attachTCX(ifindex int, prog *ebpf.Program) (link.Link, error) {
	return link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: prog, Attach: ebpf.AttachTCXIngress})
}

// be32 is an IPv4 address as the programs compare it (network byte order in memory).
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// addPort attaches the program to the port's underlay (once per device) and maps
// (peer, local, VNI, port) to the tunnel port's datapath-side veth.
func (f *fastPath) addPort(spec offload.PortSpec, underlay, tunnel, mtu int) error {
	k := fastPortKeys{underlay: underlay, tunnel: uint32(tunnel),
		rx:    bpf.SclpUdpRxKey{Peer: be32(spec.Peer), Local: be32(spec.Local), Vni: spec.VNI, Port: spec.DstPort},
		local: bpf.SclpUdpLocalKey{Addr: be32(spec.Local), Port: spec.DstPort}}
	rl := f.links[underlay]
	if rl == nil {
		l, err := f.attach(underlay, f.objs.Rx)
		if err != nil {
			return fmt.Errorf("attach fast path to %s: %w: %v", spec.Device, ErrFastPathUnavailable, err)
		}
		rl = &refLink{l: l}
		f.links[underlay] = rl
	}
	rl.refs++
	zero := make([]bpf.SclpUdpPortCounters, ebpf.MustPossibleCPU())
	if err := f.objs.PortStats.Update(k.tunnel, zero, ebpf.UpdateAny); err != nil {
		f.release(k)
		return fmt.Errorf("fast path port counters: %w", err)
	}
	if f.locals[k.local]++; f.locals[k.local] == 1 {
		if err := f.objs.Locals.Update(k.local, uint32(1), ebpf.UpdateAny); err != nil {
			f.release(k)
			return fmt.Errorf("fast path local address: %w", err)
		}
	}
	v := bpf.SclpUdpRxPort{Ifindex: k.tunnel, Mtu: uint32(mtu)}
	if err := f.objs.RxPorts.Update(k.rx, v, ebpf.UpdateAny); err != nil {
		f.release(k)
		return fmt.Errorf("fast path port: %w", err)
	}
	f.keys[spec.Name] = k
	return nil
}

// removePort takes the port out of the maps (from then on its traffic takes the socket
// path) and detaches the program from a device no port uses any more.
func (f *fastPath) removePort(name string) {
	k, ok := f.keys[name]
	if !ok {
		return
	}
	delete(f.keys, name)
	f.release(k)
}

func (f *fastPath) release(k fastPortKeys) {
	_ = f.objs.RxPorts.Delete(k.rx)
	_ = f.objs.PortStats.Delete(k.tunnel)
	if n, ok := f.locals[k.local]; ok {
		if n <= 1 {
			delete(f.locals, k.local)
			_ = f.objs.Locals.Delete(k.local)
		} else {
			f.locals[k.local] = n - 1
		}
	}
	if rl := f.links[k.underlay]; rl != nil {
		if rl.refs--; rl.refs <= 0 {
			_ = rl.l.Close()
			delete(f.links, k.underlay)
		}
	}
}

// portStats returns the named port's fast-path frame counters.
func (f *fastPath) portStats(name string) (c bpf.SclpUdpPortCounters) {
	k, ok := f.keys[name]
	if !ok {
		return c
	}
	var per []bpf.SclpUdpPortCounters
	if err := f.objs.PortStats.Lookup(k.tunnel, &per); err != nil {
		return c
	}
	for _, p := range per {
		c.RxFrames += p.RxFrames
		c.RxBytes += p.RxBytes
		c.TxFrames += p.TxFrames
		c.TxBytes += p.TxBytes
	}
	return c
}

// Indexes of enum udp_stat (udpfast.h).
const (
	ustRxFrames = iota
	ustRxBytes
	ustRxCsumChecked
	ustRxCsumTrusted
	ustRxPassGSO
	ustRxPassMulti
	ustRxPassNoPort
	ustRxPassNoCsum
	ustRxPassOther
	ustRxDropCsum
	ustRxDropError
	ustMax
)

// stats sums the per-CPU counters.
func (f *fastPath) stats() FastPathStats {
	s := FastPathStats{Loaded: true}
	var per []bpf.SclpUdpCounters
	if err := f.objs.Stats.Lookup(uint32(0), &per); err != nil {
		return s
	}
	var c [ustMax]uint64
	for _, p := range per {
		for i := range c {
			c[i] += p.C[i]
		}
	}
	s.RxFrames, s.RxBytes = c[ustRxFrames], c[ustRxBytes]
	s.RxChecksumChecked, s.RxChecksumTrusted = c[ustRxCsumChecked], c[ustRxCsumTrusted]
	s.RxPassGSO, s.RxPassMulti, s.RxPassNoPort = c[ustRxPassGSO], c[ustRxPassMulti], c[ustRxPassNoPort]
	s.RxPassNoChecksum, s.RxPassOther = c[ustRxPassNoCsum], c[ustRxPassOther]
	s.RxDropChecksum, s.RxDropError = c[ustRxDropCsum], c[ustRxDropError]
	return s
}

// close detaches every link and closes the objects.
func (f *fastPath) close() {
	for _, rl := range f.links {
		_ = rl.l.Close()
	}
	f.links = map[int]*refLink{}
	f.objs.close()
}
