package sclp

import "net/netip"

// peer is the per-source accounting of the reassembler: its partial messages in age order
// (oldest first), its eviction credits and its positions in the two eviction heaps.
type peer struct {
	addr       netip.Addr
	bytes      int
	entries    int
	credit     int   // bytes of its own oldest partial messages it may evict (see earn, spend)
	spare      int64 // clock from which it may evict one of its own without credit (see spend)
	head, tail *entry
	slot       [2]int // index in heaps[byBytes] and heaps[byEntries]
}

// earn adds the eviction credit of one completed message of n payload bytes
// (creditPerByte*n bytes), banked up to limit bytes.
func (p *peer) earn(n, limit int) {
	if n > 0 {
		p.credit = min(p.credit+creditPerByte*min(n, MaxMessageLen), limit)
	}
}

// Heap indices.
const (
	byBytes   = 0
	byEntries = 1
)

// peerHeap is a max-heap of peers by bytes or by entries, so eviction under a global cap
// always takes from the peer holding the most.
type peerHeap struct {
	items []*peer
	which int
}

// weight returns the heap key of p.
func (h *peerHeap) weight(p *peer) int {
	if h.which == byBytes {
		return p.bytes
	}
	return p.entries
}

// top returns the heaviest peer or nil.
func (h *peerHeap) top() *peer {
	if len(h.items) == 0 {
		return nil
	}
	return h.items[0]
}

// push adds p.
func (h *peerHeap) push(p *peer) {
	p.slot[h.which] = len(h.items)
	h.items = append(h.items, p)
	h.up(len(h.items) - 1)
}

// remove deletes p.
func (h *peerHeap) remove(p *peer) {
	i, last := p.slot[h.which], len(h.items)-1
	if i != last {
		h.swap(i, last)
	}
	h.items[last] = nil
	h.items = h.items[:last]
	if i != last {
		h.fix(i)
	}
	p.slot[h.which] = -1
}

// fix restores the heap order after p's weight changed.
func (h *peerHeap) fixPeer(p *peer) { h.fix(p.slot[h.which]) }

func (h *peerHeap) fix(i int) {
	if !h.up(i) {
		h.down(i)
	}
}

func (h *peerHeap) swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.items[i].slot[h.which] = i
	h.items[j].slot[h.which] = j
}

func (h *peerHeap) up(i int) bool {
	moved := false
	for i > 0 {
		parent := (i - 1) / 2
		if h.weight(h.items[parent]) >= h.weight(h.items[i]) {
			break
		}
		h.swap(i, parent)
		i, moved = parent, true
	}
	return moved
}

func (h *peerHeap) down(i int) {
	n := len(h.items)
	for {
		l := 2*i + 1
		if l >= n {
			return
		}
		c := l
		if r := l + 1; r < n && h.weight(h.items[r]) > h.weight(h.items[l]) {
			c = r
		}
		if h.weight(h.items[i]) >= h.weight(h.items[c]) {
			return
		}
		h.swap(i, c)
		i = c
	}
}

// span is a run of held message bytes in distance-from-the-end coordinates: [lo, hi) where
// lo is the Remaining of the run's last byte.
type span struct{ lo, hi int }

// entry is one partial message.
type entry struct {
	key          Key
	created      int64 // clock (ns) of its first piece
	size         int   // message size, -1 until the first piece arrives
	held         int   // payload bytes held
	buf          *buffer
	end          int    // the message's last byte is buf.b[end-1]; pieces are placed from there
	class        int8   // size class of buf, accounted in the caps
	spans        []span // sorted, disjoint, never adjacent
	peer         *peer
	gprev, gnext *entry // global age list
	pprev, pnext *entry // the peer's age list
}

// ageList is an intrusive doubly linked list of entries in age order.
type ageList struct{ head, tail *entry }

func (l *ageList) pushBack(e *entry) {
	e.gprev, e.gnext = l.tail, nil
	if l.tail != nil {
		l.tail.gnext = e
	} else {
		l.head = e
	}
	l.tail = e
}

func (l *ageList) remove(e *entry) {
	if e.gprev != nil {
		e.gprev.gnext = e.gnext
	} else {
		l.head = e.gnext
	}
	if e.gnext != nil {
		e.gnext.gprev = e.gprev
	} else {
		l.tail = e.gprev
	}
	e.gprev, e.gnext = nil, nil
}

// pushBack appends e to the peer's age list.
func (p *peer) pushBack(e *entry) {
	e.pprev, e.pnext = p.tail, nil
	if p.tail != nil {
		p.tail.pnext = e
	} else {
		p.head = e
	}
	p.tail = e
}

// remove unlinks e from the peer's age list.
func (p *peer) remove(e *entry) {
	if e.pprev != nil {
		e.pprev.pnext = e.pnext
	} else {
		p.head = e.pnext
	}
	if e.pnext != nil {
		e.pnext.pprev = e.pprev
	} else {
		p.tail = e.pprev
	}
	e.pprev, e.pnext = nil, nil
}
