package offload

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/cilium/ebpf"
	"github.com/vishvananda/netlink"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// Stats are the native datapath counters summed over CPUs (field names in
// offload/bpf.Stats, snake_case names in bpf.CounterNames).
type Stats = bpf.Stats

// Manager runs the native datapath (mode=ip): it loads the tc-BPF programs, attaches them
// with TCX (tx on each tunnel port's datapath-side veth, rx on each underlay device), pins
// maps under PinRoot/maps and links under PinRoot/links, and keeps the port and peer maps in
// step with the ensured ports. It implements Datapath for mode=ip ports. It is safe for
// concurrent use.
//
// Lifetime: Close releases the manager's handles but leaves the pinned links and maps, so
// traffic keeps flowing; a new manager on the same PinRoot adopts them and replaces the
// programs in place with link.Update (no detach, no lost frames). Uninstall removes
// everything.
type Manager struct {
	opts ManagerOptions

	mu     sync.Mutex
	closed bool
	coll   *ebpf.Collection
	ports  map[string]*portState // by PortSpec.Name
	links  map[string]attachment // by name: tx-<ifindex>, rx-<ifindex>
	legacy bool                  // attach with clsact (no TCX in this kernel)
}

// portState is what the manager installed for one port.
type portState struct {
	spec     PortSpec
	dev      int // ifindex of spec.PeerName
	underlay int // ifindex of spec.Device
}

var _ Datapath = (*Manager)(nil)

// NewManager loads the programs, reusing pinned maps under opts.PinRoot, and adopts any
// pinned links and ports there (replacing their programs in place).
func NewManager(opts ManagerOptions) (*Manager, error) {
	opts.defaults()
	m := &Manager{opts: opts, ports: map[string]*portState{}, links: map[string]attachment{}, legacy: opts.forceLegacy}
	err := inNetNS(opts.NetNS, func() error {
		if err := ensureBPFFS(opts.PinRoot); err != nil {
			return err
		}
		coll, err := m.load()
		if err != nil {
			return err
		}
		m.coll = coll
		return m.adopt()
	})
	if err != nil {
		m.release()
		return nil, err
	}
	return m, nil
}

// load creates the collection with maps pinned by name under PinRoot/maps.
func (m *Manager) load() (*ebpf.Collection, error) {
	spec, err := bpf.Spec()
	if err != nil {
		return nil, err
	}
	spec.Maps[bpf.MapExceptions].MaxEntries = m.opts.RingSize
	if m.opts.specHook != nil {
		if err := m.opts.specHook(spec); err != nil {
			return nil, err
		}
	}
	mapDir := filepath.Join(m.opts.PinRoot, "maps")
	copts := ebpf.CollectionOptions{Maps: ebpf.MapOptions{PinPath: mapDir}}
	coll, err := ebpf.NewCollectionWithOptions(spec, copts)
	if errors.Is(err, ebpf.ErrMapIncompatible) && m.opts.ReplaceIncompatible {
		for name, ms := range spec.Maps {
			if ms.Pinning == ebpf.PinByName {
				_ = os.Remove(filepath.Join(mapDir, name))
			}
		}
		coll, err = ebpf.NewCollectionWithOptions(spec, copts)
	}
	switch {
	case errors.Is(err, ebpf.ErrMapIncompatible):
		return nil, fmt.Errorf("load datapath: %w: %v", ErrIncompatible, err)
	case errors.Is(err, ebpf.ErrNotSupported):
		return nil, fmt.Errorf("load datapath: %w: %v", ErrNotSupported, err)
	case err != nil:
		return nil, fmt.Errorf("load datapath: %w", err)
	}
	return coll, nil
}

func (m *Manager) prog(name string) *ebpf.Program { return m.coll.Programs[name] }
func (m *Manager) bpfMap(name string) *ebpf.Map   { return m.coll.Maps[name] }

// ExceptionRing returns the ring buffer of rx exceptions (records: bpf.ParseRecord) for
// offload/fallback. It stays valid until Close.
func (m *Manager) ExceptionRing() *ebpf.Map { return m.bpfMap(bpf.MapExceptions) }

// Stats returns the counters summed over CPUs. Counters live in a pinned map, so they
// survive manager restarts.
func (m *Manager) Stats() (Stats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return Stats{}, ErrClosed
	}
	return bpf.ReadStats(m.bpfMap(bpf.MapStats))
}

// PortPeerStats returns the per-port and per-peer counters (pinned maps, so they survive
// manager restarts; a port's counters start at zero when it is added). Entries of ports or
// peers the manager does not carry are left out.
func (m *Manager) PortPeerStats() (PortPeerStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return PortPeerStats{}, ErrClosed
	}
	ports, err := bpf.ReadPortCounters(m.bpfMap(bpf.MapPortStats))
	if err != nil {
		return PortPeerStats{}, err
	}
	peers, err := bpf.ReadPeerCounters(m.bpfMap(bpf.MapPeerStats))
	if err != nil {
		return PortPeerStats{}, err
	}
	out := PortPeerStats{Ports: make(map[string]bpf.PortCounters, len(m.ports)), PortPeer: make(map[string]netip.Addr, len(m.ports)),
		Peers: map[netip.Addr]bpf.PeerCounters{}, UnattributedPort: ports[bpf.UnattributedKey], UnattributedPeer: peers[bpf.UnattributedKey]}
	for name, st := range m.ports {
		out.Ports[name] = ports[uint32(st.dev)]
		out.PortPeer[name] = st.spec.Peer
		if c, ok := peers[be32(st.spec.Peer)]; ok {
			out.Peers[st.spec.Peer] = c
		}
	}
	return out, nil
}

// Ports returns the specs of the ports the manager carries, sorted by name.
func (m *Manager) Ports() []PortSpec {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make([]PortSpec, 0, len(m.ports))
	for _, st := range m.ports {
		out = append(out, st.spec)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

// EnsurePort makes the datapath carry spec (mode=ip only). It is idempotent; a changed
// spec for a known name replaces the old entries. It returns ErrNoDevice, ErrConflict,
// ErrUnsupportedMode, ErrBadPortSpec, ErrNotSupported, or ErrNoNeighbor (the port is
// installed anyway and falls back to bpf_fib_lookup until the neighbour resolves).
func (m *Manager) EnsurePort(ctx context.Context, spec PortSpec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if spec.Mode != ModeIP {
		return fmt.Errorf("ensure port %s: %w: %q", spec.Name, ErrUnsupportedMode, spec.Mode)
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return inNetNS(m.opts.NetNS, func() error { return m.ensure(spec) })
}

func (m *Manager) ensure(spec PortSpec) error {
	dev, err := netlink.LinkByName(spec.PeerName)
	if err != nil {
		return fmt.Errorf("ensure port %s: peer device %s: %w", spec.Name, spec.PeerName, ErrNoDevice)
	}
	ul, err := netlink.LinkByName(spec.Device)
	if err != nil {
		return fmt.Errorf("ensure port %s: underlay %s: %w", spec.Name, spec.Device, ErrNoDevice)
	}
	mss := min((ul.Attrs().MTU-32)&^3, bpf.MaxMSS)
	if mss < bpf.MinMSS {
		return fmt.Errorf("%w: underlay %s mtu %d gives mss %d below %d", ErrBadPortSpec, spec.Device, ul.Attrs().MTU, mss, bpf.MinMSS)
	}
	for name, st := range m.ports {
		if name == spec.Name {
			continue
		}
		if (st.spec.Peer == spec.Peer && st.spec.VNI == spec.VNI) || st.dev == dev.Attrs().Index {
			return fmt.Errorf("ensure port %s: %w with %s (peer %v vni %d dev %s)", spec.Name, ErrConflict, name, st.spec.Peer, st.spec.VNI, st.spec.PeerName)
		}
	}
	st := &portState{spec: spec, dev: dev.Attrs().Index, underlay: ul.Attrs().Index}
	if old, ok := m.ports[spec.Name]; ok && (old.dev != st.dev || old.underlay != st.underlay || old.spec.Peer != spec.Peer || old.spec.VNI != spec.VNI) {
		if err := m.remove(old); err != nil {
			return err
		}
	}
	dmac, nerr := nextHop(ul, spec.Peer, m.opts.NeighborTimeout)
	tx := bpf.SclpTxPort{
		Vni: spec.VNI, Local: be32(spec.Local), Peer: be32(spec.Peer), Ifindex: uint32(st.underlay),
		Mss: uint16(mss), Ttl: spec.TTL, Tos: spec.TOS, Dmac: dmac, Smac: hwAddr(ul),
	}
	if nerr != nil || m.opts.UseFIB {
		tx.Flags |= bpf.TxFlagFIB
	}
	if err := m.writeMaps(st, tx); err != nil {
		return err
	}
	m.ports[spec.Name] = st
	if err := m.attach(fmt.Sprintf("tx-%d", st.dev), st.dev, bpf.ProgTx); err != nil {
		return err
	}
	if err := m.attach(fmt.Sprintf("rx-%d", st.underlay), st.underlay, bpf.ProgRx); err != nil {
		return err
	}
	return nerr
}

// writeMaps installs the tx, rx, meta and peer entries of st.
func (m *Manager) writeMaps(st *portState, tx bpf.SclpTxPort) error {
	var info bpf.SclpPortInfo
	for i := 0; i < len(st.spec.Name) && i < len(info.Name)-1; i++ {
		info.Name[i] = int8(st.spec.Name[i])
	}
	info.Mtu = uint32(st.spec.MTU)
	key := uint32(st.dev)
	rxKey := bpf.SclpRxKey{Peer: be32(st.spec.Peer), Vni: st.spec.VNI}
	rx := bpf.SclpRxPort{Ifindex: uint32(st.dev), Mtu: uint32(st.spec.MTU)}
	// Merge in BPF only where a frame the port takes can span several segments.
	if st.spec.MTU+18+8 > int(tx.Mss) {
		rx.Flags |= bpf.RxFlagMerge
	}
	// Counters first, so that the port's first frame is counted against it.
	if err := bpf.AddCounters(m.bpfMap(bpf.MapPortStats), key); err != nil {
		return fmt.Errorf("port %s: %w", st.spec.Name, err)
	}
	if err := m.bpfMap(bpf.MapTxPorts).Put(key, tx); err != nil {
		return fmt.Errorf("write tx port %s: %w", st.spec.Name, err)
	}
	if err := m.bpfMap(bpf.MapPortMeta).Put(key, info); err != nil {
		return fmt.Errorf("write port info %s: %w", st.spec.Name, err)
	}
	if err := m.bpfMap(bpf.MapRxPorts).Put(rxKey, rx); err != nil {
		return fmt.Errorf("write rx port %s: %w", st.spec.Name, err)
	}
	return m.setPeer(st.spec.Peer, m.peerUsers(st.spec.Peer, st.spec.Name)+1)
}

// peerUsers counts the ports other than except that use peer.
func (m *Manager) peerUsers(peer netip.Addr, except string) uint32 {
	var n uint32
	for name, st := range m.ports {
		if name != except && st.spec.Peer == peer {
			n++
		}
	}
	return n
}

func (m *Manager) setPeer(peer netip.Addr, users uint32) error {
	pm := m.bpfMap(bpf.MapPeers)
	if users == 0 {
		if err := pm.Delete(be32(peer)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete peer %v: %w", peer, err)
		}
		if err := m.bpfMap(bpf.MapPeerStats).Delete(be32(peer)); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return fmt.Errorf("delete peer counters %v: %w", peer, err)
		}
		return nil
	}
	// Counters first: the rx program counts a known peer's segments from its first one.
	if err := bpf.AddCounters(m.bpfMap(bpf.MapPeerStats), be32(peer)); err != nil {
		return fmt.Errorf("peer %v: %w", peer, err)
	}
	if err := pm.Put(be32(peer), users); err != nil {
		return fmt.Errorf("write peer %v: %w", peer, err)
	}
	return nil
}

// RemovePort stops carrying the named port (idempotent).
func (m *Manager) RemovePort(ctx context.Context, name string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	st, ok := m.ports[name]
	if !ok {
		return nil
	}
	return inNetNS(m.opts.NetNS, func() error { return m.remove(st) })
}

// remove deletes st's entries and detaches what no other port needs.
func (m *Manager) remove(st *portState) error {
	var errs []error
	key := uint32(st.dev)
	for _, mp := range []string{bpf.MapTxPorts, bpf.MapPortMeta, bpf.MapPortStats} {
		if err := m.bpfMap(mp).Delete(key); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			errs = append(errs, fmt.Errorf("delete %s entry: %w", mp, err))
		}
	}
	rxKey := bpf.SclpRxKey{Peer: be32(st.spec.Peer), Vni: st.spec.VNI}
	if err := m.bpfMap(bpf.MapRxPorts).Delete(rxKey); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
		errs = append(errs, fmt.Errorf("delete rx port: %w", err))
	}
	delete(m.ports, st.spec.Name)
	errs = append(errs, m.setPeer(st.spec.Peer, m.peerUsers(st.spec.Peer, "")))
	errs = append(errs, m.detach(fmt.Sprintf("tx-%d", st.dev)))
	if !m.underlayUsed(st.underlay) {
		errs = append(errs, m.detach(fmt.Sprintf("rx-%d", st.underlay)))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("remove port %s: %w", st.spec.Name, err)
	}
	return nil
}

func (m *Manager) underlayUsed(ifindex int) bool {
	for _, st := range m.ports {
		if st.underlay == ifindex {
			return true
		}
	}
	return false
}

// Close releases the manager's handles. Pinned links and maps stay, so the datapath keeps
// forwarding and a successor adopts it; use Uninstall to remove it.
func (m *Manager) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil
	}
	m.closed = true
	m.release()
	return nil
}

func (m *Manager) release() {
	for _, l := range m.links {
		l.Close()
	}
	m.links = map[string]attachment{}
	if m.coll != nil {
		m.coll.Close()
	}
}

// Uninstall removes every port, detaches every program, unpins the maps and removes
// PinRoot, then closes the manager.
func (m *Manager) Uninstall() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	var errs []error
	err := inNetNS(m.opts.NetNS, func() error {
		for _, st := range m.ports {
			errs = append(errs, m.remove(st))
		}
		for name := range m.links {
			errs = append(errs, m.detach(name))
		}
		for _, mp := range m.coll.Maps {
			if mp.IsPinned() {
				errs = append(errs, mp.Unpin())
			}
		}
		return nil
	})
	errs = append(errs, err, os.RemoveAll(m.opts.PinRoot))
	m.closed = true
	m.release()
	return errors.Join(errs...)
}

// be32 returns an IPv4 address as the maps store it: its network-order bytes read in host
// order.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// ProgramStats returns the kernel's run time and run count of the tx and rx programs
// (keys bpf.ProgTx, bpf.ProgRx). The kernel counts only while BPF statistics are enabled
// (sysctl kernel.bpf_stats_enabled=1, or ebpf.EnableStats).
func (m *Manager) ProgramStats() (map[string]ebpf.ProgramStats, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return nil, ErrClosed
	}
	out := map[string]ebpf.ProgramStats{}
	for _, name := range []string{bpf.ProgTx, bpf.ProgRx} {
		st, err := m.prog(name).Stats()
		if err != nil {
			return nil, fmt.Errorf("program stats %s: %w", name, err)
		}
		out[name] = *st
	}
	return out, nil
}
