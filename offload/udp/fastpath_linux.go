//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// ErrFastPathUnavailable: the fast path's program could not be loaded or attached (old
// kernel, no TCX, verifier); the datapath runs without it.
var ErrFastPathUnavailable = errors.New("udp fast path unavailable")

// FastPathStats are the counters of the tc-BPF fast path for one-segment messages
// (offload/bpf udpfast.h), summed over CPUs. Per-port frame counts are in PortStats.
type FastPathStats struct {
	// Loaded reports whether the program is loaded (Options.FastPath set and loading
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
	// checksum the program cannot finish, a local CHECKSUM_PARTIAL datagram whose checksum
	// starts in the outer headers); RxPassOrder frames that must keep their order in their
	// flow (TCP with payload, UDP: docs/udp-mode.md "Flow order"), unless FastPathAllFrames.
	RxPassGSO, RxPassMulti, RxPassNoPort, RxPassNoChecksum, RxPassOther, RxPassOrder uint64
	// RxDropChecksum counts datagrams with a bad UDP checksum (dropped by the program);
	// RxDropError frames dropped because a helper failed half-way.
	RxDropChecksum, RxDropError uint64
	// TxFrames and TxBytes count frames the transmit program sent as one-segment messages;
	// TxDropChecksum CHECKSUM_PARTIAL frames whose layout it cannot sum, TxDropError frames
	// lost to a failed helper.
	TxFrames, TxBytes, TxDropChecksum, TxDropError uint64
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
	s.RxPassOrder += o.RxPassOrder
	s.RxDropChecksum += o.RxDropChecksum
	s.RxDropError += o.RxDropError
	s.TxFrames += o.TxFrames
	s.TxBytes += o.TxBytes
	s.TxDropChecksum += o.TxDropChecksum
	s.TxDropError += o.TxDropError
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

// fastTxObjects are the transmit half's objects, loaded separately (a transmit program the
// kernel refuses leaves the receive half running); they share the counter maps.
type fastTxObjects struct {
	Tx      *ebpf.Program `ebpf:"sclp_udp_tx"`
	TxSock  *ebpf.Program `ebpf:"sclp_udp_txsock"`
	TxPorts *ebpf.Map     `ebpf:"udp_tx_ports"`
}

func (o *fastTxObjects) close() {
	for _, c := range []interface{ Close() error }{o.Tx, o.TxSock, o.TxPorts} {
		if c != nil {
			_ = c.Close()
		}
	}
}

// fastPath is one datapath's copy of the fast path: its own unpinned maps, one TCX ingress
// link of the receive program per underlay device in use and one of the transmit program
// per tunnel veth (TCX only: without it the datapath runs on the socket path). Used under
// Datapath.mu.
type fastPath struct {
	spec   *ebpf.CollectionSpec
	objs   fastObjects
	tx     *fastTxObjects // nil: the transmit half did not load (txErr says why)
	txErr  error
	links  map[int]*refLink            // by underlay ifindex
	locals map[bpf.SclpUdpLocalKey]int // references by local (address, port)
	keys   map[string]fastPortKeys     // by port name
	attach func(ifindex int, prog *ebpf.Program) (link.Link, error)
	// flags go into every port's entries: bpf.UDPFastAllFrames (Options.FastPathAllFrames)
	// or 0 (only frames that may overtake their flow).
	flags uint8
}

// fastFlags are the entries' flags for Options.FastPathAllFrames.
func fastFlags(all bool) uint8 {
	if all {
		return bpf.UDPFastAllFrames
	}
	return 0
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
	// txLink is the transmit program's link on the tunnel veth (nil: no transmit fast path
	// for this port); tx is the entry the neighbour refresh writes once the next hop's MAC
	// is known (Dmac zero until then).
	txLink link.Link
	tx     bpf.SclpUdpTxPort
	peer   netip.Addr
	txOn   bool
	// borrowed is the socket filter of a port that started during a takeover while another
	// agent's sclp_udp_tx ran on its veth: sclp_udp_txsock reading that agent's
	// udp_tx_ports, so the port's sockets skip exactly what that program sends (nil: the
	// port's sockets carry f.tx.TxSock).
	borrowed *ebpf.Program
}

// loadFastPath loads the fast path's programs and maps (only those: the mode=ip programs
// of the same collection are not loaded); the transmit half separately, so that a refused
// transmit program leaves the receive half (f.txErr says why).
func loadFastPath() (*fastPath, error) {
	spec, err := bpf.LoadSclp()
	if err != nil {
		return nil, fmt.Errorf("load fast path spec: %w: %v", ErrFastPathUnavailable, err)
	}
	f := &fastPath{spec: spec, links: map[int]*refLink{}, locals: map[bpf.SclpUdpLocalKey]int{},
		keys: map[string]fastPortKeys{}, attach: attachTCX}
	if err := spec.LoadAndAssign(&f.objs, nil); err != nil {
		f.objs.close()
		return nil, fmt.Errorf("load fast path: %w: %v", ErrFastPathUnavailable, err)
	}
	var tx fastTxObjects
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{
		bpf.SclpMapUdpStats: f.objs.Stats, bpf.SclpMapUdpPortStats: f.objs.PortStats}}
	if err := spec.LoadAndAssign(&tx, opts); err != nil {
		tx.close()
		f.txErr = fmt.Errorf("load fast path transmit: %w: %v", ErrFastPathUnavailable, err)
	} else {
		f.tx = &tx
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
		// Only the link reference is this port's yet (release would also drop a reference
		// to the local address that it never took).
		f.releaseLink(k.underlay)
		return fmt.Errorf("fast path port counters: %w", err)
	}
	if f.locals[k.local]++; f.locals[k.local] == 1 {
		if err := f.objs.Locals.Update(k.local, uint32(1), ebpf.UpdateAny); err != nil {
			f.release(k)
			return fmt.Errorf("fast path local address: %w", err)
		}
	}
	v := bpf.SclpUdpRxPort{Ifindex: k.tunnel, Mtu: uint32(mtu), Flags: uint32(f.flags)}
	if err := f.objs.RxPorts.Update(k.rx, v, ebpf.UpdateAny); err != nil {
		f.release(k)
		return fmt.Errorf("fast path port: %w", err)
	}
	f.keys[spec.Name] = k
	return nil
}

// addTx attaches the transmit program to the tunnel veth and writes the port's entry if
// the next hop is already resolved (refresh writes it later otherwise). The transmit packet
// sockets must carry the filter (sockFilter) before the entry exists.
func (f *fastPath) addTx(spec offload.PortSpec, ul *net.Interface, tunnel int) error {
	k, ok := f.keys[spec.Name]
	if !ok || f.tx == nil {
		return nil
	}
	l, err := f.attach(tunnel, f.tx.Tx)
	if err != nil {
		return fmt.Errorf("attach fast path transmit to %s: %w: %v", spec.PeerName, ErrFastPathUnavailable, err)
	}
	k.txLink, k.peer = l, spec.Peer
	k.tx = bpf.SclpUdpTxPort{Local: be32(spec.Local), Peer: be32(spec.Peer), Vni: spec.VNI,
		Ifindex: uint32(ul.Index), MaxFrame: uint32(ul.MTU - txOverhead), Port: spec.DstPort, Flags: f.flags}
	copy(k.tx.Smac[:], ul.HardwareAddr)
	f.keys[spec.Name] = k
	f.refreshPort(spec.Name, netlinkNeigh{})
	return nil
}

// txOverhead is what a one-segment message adds to a frame on the underlay, less the
// Ethernet header the frame already has: IPv4 + UDP + SCLP + VXLAN = 48 (sclp.UDPOverhead +
// the VXLAN header). A frame of at most MTU - 48 bytes (Ethernet header included) is one
// segment; the transmit worker's rule (sender.mss) is the same.
const txOverhead = 20 + 8 + 12 + 8

// sockFilter attaches the transmit packet sockets' filter of the named port: the socket
// skips what the transmit program sends (both decide with the same function and map entry):
// this datapath's, or while the port's transmit fast path is deferred behind another
// agent's program, that program's (takeover). Attaching replaces a filter the socket has.
func (f *fastPath) sockFilter(fd int, name string) error {
	if f.tx == nil {
		return f.txErr
	}
	prog := f.tx.TxSock
	if k := f.keys[name]; k.borrowed != nil {
		prog = k.borrowed
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_ATTACH_BPF, prog.FD()); err != nil {
		return fmt.Errorf("attach fast path socket filter: %w", err)
	}
	return nil
}

// Takeover: two agents' transmit decisions must never coexist on one veth. While a running
// agent's packet sockets are in the tunnel veth's fanout group, a successor's port must send
// nothing through its own sclp_udp_tx (the frames its program took would also be taken by
// the fanout sockets of the other agent that are not filtered by this program's map), and
// its own sockets must skip exactly what the other agent's program sends (it runs first in
// the TCX chain), no more, no less. So a port that starts while another agent still sends
// on its veth defers its transmit fast path (startTakeover): its sockets carry the other
// agent's filter (borrowFilter) or, when that agent has no transmit program, this
// datapath's filter with no map entry (take everything). Once neither the other agent's
// program nor its sockets are left (othersGone), the datapath gives the sockets their own
// filter, still with no entry, and then writes the entry (Datapath.finishTakeover).

// startTakeover decides at a port's start (after addPort, before its sockets exist)
// whether its transmit fast path must wait for another agent to leave the tunnel veth: an
// sclp_udp_tx of another datapath is attached to it, or another agent's packet sockets are
// in its fanout group (or, when the sockets cannot be listed, the datapath starts in
// standby). With another agent's program it loads that program's socket filter for the
// port (sockFilter then attaches it); when that fails (an incompatible map of another
// version), the port's sockets take every frame and may duplicate what that program sends,
// which err says. Call in the port's network namespace.
func (f *fastPath) startTakeover(name string, tunnel, group int, standby bool) (deferred bool, err error) {
	k, ok := f.keys[name]
	if !ok || f.tx == nil {
		return false, nil
	}
	found, m, qerr := foreignTx(tunnel, f.ownTx())
	members, derr := fanoutMembers(group)
	if !found && len(members) == 0 && (!standby || qerr == nil && derr == nil) {
		return false, nil
	}
	if m != nil {
		defer m.Close()
		k.borrowed, err = borrowFilter(f.spec, m)
		f.keys[name] = k
	} else if found {
		err = errors.New("the running agent's transmit map is not readable")
	}
	if err != nil {
		err = fmt.Errorf("port %s: its sockets may duplicate frames the running agent's fast path sends until that agent stops: %w", name, err)
	}
	return true, err
}

// ownTx is the id of this datapath's sclp_udp_tx (0: none).
func (f *fastPath) ownTx() ebpf.ProgramID {
	if f == nil || f.tx == nil {
		return 0
	}
	info, err := f.tx.Tx.Info()
	if err != nil {
		return 0
	}
	id, _ := info.ID()
	return id
}

// foreignTx looks for an sclp_udp_tx other than own on the tunnel veth's TCX ingress and
// returns whether there is one and its udp_tx_ports map (nil when it cannot be opened; the
// caller closes it). Call in the veth's network namespace.
func foreignTx(tunnel int, own ebpf.ProgramID) (found bool, m *ebpf.Map, err error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: tunnel, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return false, nil, err
	}
	for _, ap := range res.Programs {
		if ap.ID == own {
			continue
		}
		prog, err := ebpf.NewProgramFromID(ap.ID)
		if err != nil {
			continue
		}
		info, err := prog.Info()
		prog.Close()
		if err != nil || info.Name != bpf.SclpProgSclpUdpTx {
			continue
		}
		ids, _ := info.MapIDs()
		for _, id := range ids {
			mm, err := ebpf.NewMapFromID(id)
			if err != nil {
				continue
			}
			if mi, err := mm.Info(); err == nil && mi.Name == bpf.SclpMapUdpTxPorts {
				return true, mm, nil
			}
			mm.Close()
		}
		return true, nil, nil
	}
	return false, nil, nil
}

// borrowForeignFilter returns, when another datapath's sclp_udp_tx (not own) runs on the
// tunnel veth, its socket filter (borrowFilter) for the transmit sockets of a port that does
// not send through the fast path itself (nil: none runs). Without it those sockets would
// also send what that program sends (a takeover by an agent without the fast path).
func borrowForeignFilter(tunnel int, own ebpf.ProgramID) (*ebpf.Program, error) {
	found, m, err := foreignTx(tunnel, own)
	if err != nil || !found {
		return nil, nil
	}
	if m == nil {
		return nil, errors.New("the running agent's transmit map is not readable")
	}
	defer m.Close()
	return borrowFilter(nil, m)
}

// borrowFilter loads sclp_udp_txsock of spec (nil: the bpf package's) reading m (another
// agent's udp_tx_ports).
func borrowFilter(spec *ebpf.CollectionSpec, m *ebpf.Map) (*ebpf.Program, error) {
	if spec == nil {
		var err error
		if spec, err = bpf.LoadSclp(); err != nil {
			return nil, fmt.Errorf("load the running agent's socket filter: %w", err)
		}
	}
	var o struct {
		TxSock *ebpf.Program `ebpf:"sclp_udp_txsock"`
	}
	opts := &ebpf.CollectionOptions{MapReplacements: map[string]*ebpf.Map{bpf.SclpMapUdpTxPorts: m}}
	if err := spec.LoadAndAssign(&o, opts); err != nil {
		return nil, fmt.Errorf("load the running agent's socket filter: %w", err)
	}
	return o.TxSock, nil
}

// othersGone reports whether the tunnel veth has no other datapath's sclp_udp_tx and its
// fanout group no packet socket but mine (inodes); when the sockets cannot be listed, trust
// says whether to go by the program alone (the agent said the old one is gone). Call in the
// port's network namespace.
func (f *fastPath) othersGone(tunnel, group int, mine map[uint64]bool, trust bool) bool {
	found, m, err := foreignTx(tunnel, f.ownTx())
	if m != nil {
		m.Close()
	}
	if err != nil || found {
		return false
	}
	members, err := fanoutMembers(group)
	if err != nil {
		return trust
	}
	for _, ino := range members {
		if !mine[ino] {
			return false
		}
	}
	return true
}

// dropBorrowed ends the port's borrowed filter: from then on sockFilter attaches this
// datapath's.
func (f *fastPath) dropBorrowed(name string) {
	if k, ok := f.keys[name]; ok && k.borrowed != nil {
		_ = k.borrowed.Close()
		k.borrowed = nil
		f.keys[name] = k
	}
}

// Netlink sock_diag for packet sockets (linux/packet_diag.h).
const (
	packetShowFanout = 0x8
	packetDiagFanout = 4
)

// fanoutMembers returns the inodes of the packet sockets in fanout group id (group ids are
// per network namespace: the calling thread's), listed with NETLINK_SOCK_DIAG.
func fanoutMembers(group int) ([]uint64, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_SOCK_DIAG)
	if err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	defer unix.Close(fd)
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 1})
	// nlmsghdr (16) + packet_diag_req (family, protocol, pad, ino, show, cookie[2]: 20).
	req := make([]byte, 36)
	ne := binary.NativeEndian
	ne.PutUint32(req[0:], 36)
	ne.PutUint16(req[4:], unix.SOCK_DIAG_BY_FAMILY)
	ne.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	ne.PutUint32(req[8:], 1)
	req[16] = unix.AF_PACKET
	ne.PutUint32(req[24:], packetShowFanout)
	if err := unix.Sendto(fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("sock_diag: %w", err)
	}
	var out []uint64
	buf := make([]byte, 32<<10)
	for {
		n, _, err := unix.Recvfrom(fd, buf, 0)
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(buf[:n])
		if err != nil {
			return nil, fmt.Errorf("sock_diag: %w", err)
		}
		for _, m := range msgs {
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				if len(m.Data) >= 4 {
					if e := int32(ne.Uint32(m.Data)); e != 0 {
						return nil, fmt.Errorf("sock_diag: %w", unix.Errno(-e))
					}
				}
				return out, nil
			}
			// packet_diag_msg (family, type, num, ino, cookie[2]: 16), then attributes.
			if len(m.Data) < 16 {
				continue
			}
			ino := uint64(ne.Uint32(m.Data[4:]))
			for a := m.Data[16:]; len(a) >= 4; {
				l, t := int(ne.Uint16(a)), ne.Uint16(a[2:])
				if l < 4 || l > len(a) {
					break
				}
				if t == packetDiagFanout && l >= 8 && int(ne.Uint32(a[4:])&0xffff) == group {
					out = append(out, ino)
				}
				a = a[min((l+3)&^3, len(a)):]
			}
		}
	}
}

// stopRx takes the port out of the receive map: from then on its datagrams take the socket.
func (f *fastPath) stopRx(name string) {
	if k, ok := f.keys[name]; ok {
		_ = f.objs.RxPorts.Delete(k.rx)
	}
}

// removePort takes the port out of the maps and detaches its programs (and the receive
// program from a device no port uses any more). The datapath calls it after the port's
// transmit sockets are closed: until then the transmit program keeps sending what their
// filter skips.
func (f *fastPath) removePort(name string) {
	k, ok := f.keys[name]
	if !ok {
		return
	}
	delete(f.keys, name)
	f.release(k)
}

func (f *fastPath) release(k fastPortKeys) {
	if f.tx != nil {
		_ = f.tx.TxPorts.Delete(k.tunnel)
	}
	if k.txLink != nil {
		_ = k.txLink.Close()
	}
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
	if k.borrowed != nil {
		_ = k.borrowed.Close()
	}
	f.releaseLink(k.underlay)
}

// releaseLink drops one reference to the receive program's link on underlay, detaching it
// with the last.
func (f *fastPath) releaseLink(underlay int) {
	if rl := f.links[underlay]; rl != nil {
		if rl.refs--; rl.refs <= 0 {
			_ = rl.l.Close()
			delete(f.links, underlay)
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
	ustTxFrames
	ustTxBytes
	ustTxDropCsum
	ustTxDropError
	ustRxPassOrder
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
	s.TxFrames, s.TxBytes = c[ustTxFrames], c[ustTxBytes]
	s.TxDropChecksum, s.TxDropError = c[ustTxDropCsum], c[ustTxDropError]
	s.RxPassOrder = c[ustRxPassOrder]
	return s
}

// neighbours looks up next hops; netlinkNeigh is the real one (in the calling thread's
// network namespace unless it holds a handle).
type neighbours interface {
	nextHop(ifindex int, peer netip.Addr) ([6]byte, bool)
}

type netlinkNeigh struct{ h *netlink.Handle }

// usable are the neighbour states whose MAC the kernel itself would send to.
const usable = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE |
	netlink.NUD_PERMANENT | netlink.NUD_NOARP

func (n netlinkNeigh) nextHop(ifindex int, peer netip.Addr) (mac [6]byte, ok bool) {
	h := n.h
	if h == nil {
		h = &netlink.Handle{}
	}
	hop := peer
	if rs, err := h.RouteGet(peer.AsSlice()); err == nil && len(rs) > 0 && rs[0].Gw != nil {
		if a, ok := netip.AddrFromSlice(rs[0].Gw.To4()); ok {
			hop = a
		}
	}
	ns, err := h.NeighList(ifindex, netlink.FAMILY_V4)
	if err != nil {
		return mac, false
	}
	for _, e := range ns {
		if a, ok := netip.AddrFromSlice(e.IP.To4()); ok && a == hop && e.State&usable != 0 && len(e.HardwareAddr) == 6 {
			copy(mac[:], e.HardwareAddr)
			return mac, true
		}
	}
	return mac, false
}

// refreshPort looks the port's next hop up and writes, updates or removes its transmit
// entry: with no usable neighbour every frame takes the packet socket, whose kernel send
// resolves it.
func (f *fastPath) refreshPort(name string, nb neighbours) {
	k, ok := f.keys[name]
	if !ok || k.txLink == nil {
		return
	}
	mac, ok := nb.nextHop(int(k.tx.Ifindex), k.peer)
	switch {
	case ok && (!k.txOn || mac != k.tx.Dmac):
		k.tx.Dmac = mac
		if f.tx.TxPorts.Update(k.tunnel, k.tx, ebpf.UpdateAny) == nil {
			k.txOn = true
		}
	case !ok && k.txOn:
		_ = f.tx.TxPorts.Delete(k.tunnel)
		k.txOn = false
	}
	f.keys[name] = k
}

// refreshAll refreshes every port's transmit entry.
func (f *fastPath) refreshAll(nb neighbours) {
	for name := range f.keys {
		f.refreshPort(name, nb)
	}
}

// close detaches every link and closes the objects.
func (f *fastPath) close() {
	for _, k := range f.keys {
		if k.txLink != nil {
			_ = k.txLink.Close()
		}
		if k.borrowed != nil {
			_ = k.borrowed.Close()
		}
	}
	f.keys = map[string]fastPortKeys{}
	for _, rl := range f.links {
		_ = rl.l.Close()
	}
	f.links = map[int]*refLink{}
	if f.tx != nil {
		f.tx.close()
	}
	f.objs.close()
}
