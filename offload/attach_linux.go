package offload

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

func (m *Manager) linkPath(name string) string {
	return filepath.Join(m.opts.PinRoot, "links", name)
}

// attach attaches prog to the ingress of ifindex under name, unless the manager already
// holds that attachment: a TCX link pinned as PinRoot/links/<name>, or, when the kernel has
// no TCX (or a test forces it), a cls_bpf filter on a clsact qdisc.
func (m *Manager) attach(name string, ifindex int, prog string) error {
	if _, ok := m.links[name]; ok {
		return nil
	}
	if !m.legacy {
		l, err := link.AttachTCX(link.TCXOptions{Interface: ifindex, Program: m.prog(prog), Attach: ebpf.AttachTCXIngress})
		switch {
		case errors.Is(err, ebpf.ErrNotSupported):
			m.legacy = true
		case err != nil:
			return fmt.Errorf("attach %s to ifindex %d: %w", name, ifindex, err)
		default:
			if err := l.Pin(m.linkPath(name)); err != nil {
				l.Close()
				return fmt.Errorf("pin link %s: %w", name, err)
			}
			m.links[name] = tcxAttachment{l}
			return nil
		}
	}
	a, err := attachClsact(ifindex, prog, m.prog(prog))
	if errors.Is(err, unix.EOPNOTSUPP) || errors.Is(err, unix.ENOENT) {
		return fmt.Errorf("attach %s: neither TCX nor clsact: %w: %v", name, ErrNotSupported, err)
	}
	if err != nil {
		return fmt.Errorf("attach %s: %w", name, err)
	}
	m.links[name] = a
	return nil
}

// detach removes the named attachment, which detaches its program.
func (m *Manager) detach(name string) error {
	a, ok := m.links[name]
	if !ok {
		return nil
	}
	delete(m.links, name)
	if err := a.Detach(); err != nil {
		return fmt.Errorf("detach %s: %w", name, err)
	}
	return nil
}

// adopt takes over pinned links (updating them to this manager's programs in place) and
// rebuilds the port table from the pinned maps, removing what is stale: links whose device
// is gone, ports whose tx link is gone, rx entries and peers no port accounts for.
func (m *Manager) adopt() error {
	entries, err := os.ReadDir(filepath.Join(m.opts.PinRoot, "links"))
	if err != nil {
		return fmt.Errorf("adopt: %w", err)
	}
	// Counters before programs: this version's rx program takes a source without a
	// peer_stats entry for no peer, so maps pinned by an older version get their entries
	// before any link runs the new programs (pruneCounters tidies up afterwards).
	if err := m.seedCounters(); err != nil {
		return err
	}
	for _, e := range entries {
		if err := m.adoptLink(e.Name()); err != nil {
			return err
		}
	}
	if err := m.adoptClsact(); err != nil {
		return err
	}
	if err := m.adoptPorts(); err != nil {
		return err
	}
	return m.pruneMaps()
}

func (m *Manager) adoptLink(name string) error {
	path := m.linkPath(name)
	kind, idx, ok := strings.Cut(name, "-")
	ifindex, perr := strconv.Atoi(idx)
	prog := map[string]string{"tx": bpf.ProgTx, "rx": bpf.ProgRx}[kind]
	l, err := link.LoadPinnedLink(path, nil)
	if !ok || perr != nil || prog == "" || err != nil {
		if l != nil {
			l.Close()
		}
		return os.Remove(path)
	}
	info, err := l.Info()
	if err != nil || info.TCX() == nil || int(info.TCX().Ifindex) != ifindex {
		// The device went away (the link is defunct) or the pin is not ours.
		_ = l.Unpin()
		l.Close()
		return nil
	}
	if err := l.Update(m.prog(prog)); err != nil {
		l.Close()
		return fmt.Errorf("adopt %s: replace program: %w", name, err)
	}
	m.links[name] = tcxAttachment{l}
	return nil
}

// adoptClsact takes over legacy filters on the devices the pinned maps name (the tunnel
// ports' veths and their underlays), replacing their programs in place.
func (m *Manager) adoptClsact() error {
	var key uint32
	var tx bpf.SclpTxPort
	want := map[string]int{}
	it := m.bpfMap(bpf.MapTxPorts).Iterate()
	for it.Next(&key, &tx) {
		want[fmt.Sprintf("tx-%d", key)] = int(key)
		want[fmt.Sprintf("rx-%d", tx.Ifindex)] = int(tx.Ifindex)
	}
	for name, ifindex := range want {
		prog := bpf.ProgTx
		if strings.HasPrefix(name, "rx-") {
			prog = bpf.ProgRx
		}
		if _, ok := m.links[name]; ok || !findClsact(ifindex, prog) {
			continue
		}
		a := clsactAttachment{ifindex: ifindex, name: prog}
		if err := a.Update(m.prog(prog)); err != nil {
			return fmt.Errorf("adopt %s: %w", name, err)
		}
		m.links[name] = a
		m.legacy = true
	}
	return nil
}

func (m *Manager) adoptPorts() error {
	var (
		key  uint32
		info bpf.SclpPortInfo
		tx   bpf.SclpTxPort
		rx   bpf.SclpRxPort
	)
	var stale []uint32
	it := m.bpfMap(bpf.MapPortMeta).Iterate()
	for it.Next(&key, &info) {
		_, attached := m.links[fmt.Sprintf("tx-%d", key)]
		dev, derr := netlink.LinkByIndex(int(key))
		var ul netlink.Link
		uerr := m.bpfMap(bpf.MapTxPorts).Lookup(key, &tx)
		if uerr == nil {
			ul, uerr = netlink.LinkByIndex(int(tx.Ifindex))
		}
		if !attached || derr != nil || uerr != nil {
			stale = append(stale, key)
			continue
		}
		b := make([]byte, 0, 16)
		for _, c := range info.Name {
			if c == 0 {
				break
			}
			b = append(b, byte(c))
		}
		spec := PortSpec{
			Name: string(b), PeerName: dev.Attrs().Name, Device: ul.Attrs().Name,
			Peer: addrFrom(tx.Peer), Local: addrFrom(tx.Local), VNI: tx.Vni, Mode: ModeIP,
			MTU: int(info.Mtu), TTL: tx.Ttl, TOS: tx.Tos,
		}
		if err := m.bpfMap(bpf.MapRxPorts).Lookup(bpf.SclpRxKey{Peer: tx.Peer, Vni: tx.Vni}, &rx); err == nil {
			spec.MTU = int(rx.Mtu)
		}
		m.ports[spec.Name] = &portState{spec: spec, dev: int(key), underlay: int(tx.Ifindex)}
	}
	if err := it.Err(); err != nil {
		return fmt.Errorf("adopt ports: %w", err)
	}
	for _, k := range stale {
		_ = m.bpfMap(bpf.MapPortMeta).Delete(k)
		_ = m.bpfMap(bpf.MapTxPorts).Delete(k)
		_ = m.detach(fmt.Sprintf("tx-%d", k))
	}
	return nil
}

// pruneMaps removes rx entries, peers, tx entries and links that no adopted port uses.
func (m *Manager) pruneMaps() error {
	wantRx := map[bpf.SclpRxKey]bool{}
	wantPeers := map[uint32]uint32{}
	wantTx := map[uint32]bool{}
	wantLinks := map[string]bool{}
	for _, st := range m.ports {
		wantRx[bpf.SclpRxKey{Peer: be32(st.spec.Peer), Vni: st.spec.VNI}] = true
		wantPeers[be32(st.spec.Peer)]++
		wantTx[uint32(st.dev)] = true
		wantLinks[fmt.Sprintf("tx-%d", st.dev)] = true
		wantLinks[fmt.Sprintf("rx-%d", st.underlay)] = true
	}
	var rk bpf.SclpRxKey
	var rv bpf.SclpRxPort
	var drop []bpf.SclpRxKey
	it := m.bpfMap(bpf.MapRxPorts).Iterate()
	for it.Next(&rk, &rv) {
		if !wantRx[rk] {
			drop = append(drop, rk)
		}
	}
	for _, k := range drop {
		_ = m.bpfMap(bpf.MapRxPorts).Delete(k)
	}
	var k, v uint32
	var dropU []uint32
	it = m.bpfMap(bpf.MapPeers).Iterate()
	for it.Next(&k, &v) {
		if wantPeers[k] == 0 {
			dropU = append(dropU, k)
		}
	}
	for _, k := range dropU {
		_ = m.bpfMap(bpf.MapPeers).Delete(k)
	}
	for p, n := range wantPeers {
		if err := m.bpfMap(bpf.MapPeers).Put(p, n); err != nil {
			return fmt.Errorf("adopt peers: %w", err)
		}
	}
	var tx bpf.SclpTxPort
	dropU = dropU[:0]
	it = m.bpfMap(bpf.MapTxPorts).Iterate()
	for it.Next(&k, &tx) {
		if !wantTx[k] {
			dropU = append(dropU, k)
		}
	}
	for _, k := range dropU {
		_ = m.bpfMap(bpf.MapTxPorts).Delete(k)
	}
	for name := range m.links {
		if !wantLinks[name] {
			_ = m.detach(name)
		}
	}
	return m.pruneCounters(wantTx, wantPeers)
}

// seedCounters creates the counter entries of every port and peer in the pinned maps (and
// the unattributed buckets), keeping existing counters.
func (m *Manager) seedCounters() error {
	for _, c := range []struct{ from, to string }{
		{bpf.MapPortMeta, bpf.MapPortStats},
		{bpf.MapPeers, bpf.MapPeerStats},
	} {
		var (
			prev any
			k    uint32
			keys = []uint32{bpf.UnattributedKey}
		)
		for m.bpfMap(c.from).NextKey(prev, &k) == nil {
			keys = append(keys, k)
			prev = k
		}
		for _, k := range keys {
			if err := bpf.AddCounters(m.bpfMap(c.to), k); err != nil {
				return fmt.Errorf("adopt: %w", err)
			}
		}
	}
	return nil
}

// pruneCounters makes the per-port and per-peer counter maps hold exactly the unattributed
// buckets and the entries of the adopted ports and peers (existing counters are kept; maps
// pinned by an older version get their entries here).
func (m *Manager) pruneCounters(ports map[uint32]bool, peers map[uint32]uint32) error {
	for _, c := range []struct {
		name string
		want func(uint32) bool
	}{
		{bpf.MapPortStats, func(k uint32) bool { return ports[k] }},
		{bpf.MapPeerStats, func(k uint32) bool { return peers[k] > 0 }},
	} {
		mp := m.bpfMap(c.name)
		var (
			prev  any
			k     uint32
			stale []uint32
		)
		for mp.NextKey(prev, &k) == nil {
			if k != bpf.UnattributedKey && !c.want(k) {
				stale = append(stale, k)
			}
			prev = k
		}
		for _, k := range stale {
			_ = mp.Delete(k)
		}
		if err := bpf.AddCounters(mp, bpf.UnattributedKey); err != nil {
			return fmt.Errorf("adopt: %w", err)
		}
	}
	for k := range ports {
		if err := bpf.AddCounters(m.bpfMap(bpf.MapPortStats), k); err != nil {
			return fmt.Errorf("adopt: %w", err)
		}
	}
	for k := range peers {
		if err := bpf.AddCounters(m.bpfMap(bpf.MapPeerStats), k); err != nil {
			return fmt.Errorf("adopt: %w", err)
		}
	}
	return nil
}

// Reload loads a fresh copy of the programs (sharing the pinned maps) and replaces the
// attached ones in place with link.Update: the upgrade path for a new program version,
// with no window where a device has no program.
func (m *Manager) Reload() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.closed {
		return ErrClosed
	}
	return inNetNS(m.opts.NetNS, func() error {
		coll, err := m.load()
		if err != nil {
			return err
		}
		for name, l := range m.links {
			prog := coll.Programs[bpf.ProgTx]
			if strings.HasPrefix(name, "rx-") {
				prog = coll.Programs[bpf.ProgRx]
			}
			if err := l.Update(prog); err != nil {
				coll.Close()
				return fmt.Errorf("reload %s: %w", name, err)
			}
		}
		old := m.coll
		m.coll = coll
		old.Close()
		return nil
	})
}

func addrFrom(v uint32) netip.Addr {
	var b [4]byte
	binary.NativeEndian.PutUint32(b[:], v)
	return netip.AddrFrom4(b)
}
