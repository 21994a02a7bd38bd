package fallback

import (
	"net/netip"
	"sync"
	"sync/atomic"
)

// Port is where completed messages of one tunnel port go. *Injector implements it.
type Port interface {
	// Inject delivers one inner Ethernet frame; it may rewrite the frame's L4 checksum field.
	Inject(frame []byte) error
}

// ChunkPort is a Port that also takes a frame as consecutive pieces, written without a
// userspace copy. *Injector implements it.
type ChunkPort interface {
	Port
	InjectChunks(chunks [][]byte) error
}

// PortKey names a tunnel port on the receive side: the peer's underlay address and the VNI.
type PortKey struct {
	Peer netip.Addr
	VNI  uint32
}

// PortTable maps (peer, VNI) to tunnel ports. Lookups are lock-free and allocate nothing
// (copy-on-write map behind an atomic pointer); updates are serialised.
type PortTable struct {
	mu    sync.Mutex
	m     atomic.Pointer[map[PortKey]Port]
	peers atomic.Pointer[map[netip.Addr]int]
}

// HasPeer reports whether any port has peer addr. Receivers use it to drop segments from
// unknown sources before they take reassembly memory.
func (t *PortTable) HasPeer(addr netip.Addr) bool {
	m := t.peers.Load()
	return m != nil && (*m)[addr] > 0
}

// Lookup returns the port for k, or nil.
func (t *PortTable) Lookup(k PortKey) Port {
	m := t.m.Load()
	if m == nil {
		return nil
	}
	return (*m)[k]
}

// Set maps k to p (replacing any previous port).
func (t *PortTable) Set(k PortKey, p Port) {
	t.update(func(m map[PortKey]Port) { m[k] = p })
}

// Delete removes k.
func (t *PortTable) Delete(k PortKey) {
	t.update(func(m map[PortKey]Port) { delete(m, k) })
}

// Len returns the number of ports.
func (t *PortTable) Len() int {
	if m := t.m.Load(); m != nil {
		return len(*m)
	}
	return 0
}

func (t *PortTable) update(fn func(map[PortKey]Port)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := make(map[PortKey]Port)
	if old := t.m.Load(); old != nil {
		for k, v := range *old {
			n[k] = v
		}
	}
	fn(n)
	peers := make(map[netip.Addr]int)
	for k := range n {
		peers[k.Peer]++
	}
	t.m.Store(&n)
	t.peers.Store(&peers)
}
