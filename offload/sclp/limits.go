package sclp

import "net/netip"

// create makes a partial message for key, evicting under the caps as needed, and returns nil
// when the caps cannot make room. With a known size (its first piece came first) the buffer
// is the smallest class that holds it and the message ends at byte size, so it starts at the
// buffer's aligned beginning; with size -1 the buffer is the largest class and the message
// ends at the buffer's end.
func (r *Reassembler) create(t int64, key Key, size int) *entry {
	c := maxClass
	if size >= 0 {
		c = classFor(size)
	}
	need := classSize(c)
	pr, ok := r.admit(t, key.Src, need)
	if !ok {
		return nil
	}
	if pr == nil {
		pr = r.newPeer(key.Src)
		pr.spare = t + spareGap
	} else if pr == r.idle {
		r.idle = nil
	}
	e := r.newEntry()
	e.key, e.created, e.size, e.held = key, t, -1, 0
	e.buf = r.bufs.get(c)
	e.class = int8(c)
	e.end = len(e.buf.b)
	if size >= 0 {
		e.end = size
	}
	e.peer = pr
	r.entries[key] = e
	r.age.pushBack(e)
	pr.pushBack(e)
	pr.bytes += need
	pr.entries++
	r.bytes += need
	r.heaps[byBytes].fixPeer(pr)
	r.heaps[byEntries].fixPeer(pr)
	return e
}

// admit makes room for one more partial message of need bytes from src at clock t under
// every cap and returns src's peer record (nil if it has none); ok is false when the message
// is refused.
//
// Per peer: at its cap, src evicts its own oldest partial message only by spending an
// eviction (spend: from the byte credit earned by completing messages, or its spare one); without one
// the new message is refused at once, before any buffer is taken, which is all a flood of
// first segments costs once its peer is full. Globally: the heaviest peer's oldest partial
// message is evicted if that peer holds more than src would after admission, so no peer is
// starved by others; otherwise src is itself (one of) the heaviest and the per-peer rule
// applies.
func (r *Reassembler) admit(t int64, src netip.Addr, need int) (pr *peer, ok bool) {
	cfg := &r.cfg
	if need > cfg.MaxBytes || need > cfg.MaxPeerBytes || cfg.MaxEntries < 1 || cfg.MaxPeerEntries < 1 {
		return nil, false
	}
	pr = r.peers[src]
	for pr != nil && (pr.entries+1 > cfg.MaxPeerEntries || pr.bytes+need > cfg.MaxPeerBytes) {
		if !r.spend(pr, t) {
			return pr, false
		}
		pr = r.evictOwn(pr, src)
	}
	ok = true
	for ok && len(r.entries)+1 > cfg.MaxEntries {
		pr, ok = r.evictFor(t, pr, src, &r.heaps[byEntries], 1)
	}
	for ok && r.bytes+need > cfg.MaxBytes {
		pr, ok = r.evictFor(t, pr, src, &r.heaps[byBytes], need)
	}
	return pr, ok
}

// evictFor frees one partial message under the global cap that h weighs, for a new one of
// weight w from src (record pr, or nil) at clock t: the heaviest peer's oldest if that peer
// outweighs src plus w, else src's own oldest if it can spend an eviction. It returns src's
// record afterwards (evictions may free it) and false if src must be refused.
func (r *Reassembler) evictFor(t int64, pr *peer, src netip.Addr, h *peerHeap, w int) (*peer, bool) {
	mine := 0
	if pr != nil {
		mine = h.weight(pr)
	}
	if v := h.top(); v != nil && v != pr && h.weight(v) > mine+w {
		r.drop(v.head, DropEvicted)
		return r.peers[src], true
	}
	if pr == nil || pr.head == nil || !r.spend(pr, t) {
		return pr, false
	}
	return r.evictOwn(pr, src), true
}

// spend pays for evicting pr's oldest partial message at clock t: from its credit the
// bytes that message holds in the caps (its buffer class) if the credit covers them, else
// its spare eviction, due once every spareGap. It reports false if pr can pay neither way.
func (r *Reassembler) spend(pr *peer, t int64) bool {
	switch cost := classSizeOf(pr.head); {
	case pr.credit >= cost:
		pr.credit -= cost
	case t >= pr.spare:
		pr.spare = t + spareGap
	default:
		return false
	}
	return true
}

// evictOwn evicts pr's oldest partial message and returns src's record afterwards.
func (r *Reassembler) evictOwn(pr *peer, src netip.Addr) *peer {
	r.drop(pr.head, DropEvicted)
	return r.peers[src]
}

// drop discards a partial message for reason, counts it and reports it to OnDrop.
func (r *Reassembler) drop(e *entry, reason DropReason) {
	r.stats.Drops[reason]++
	if r.cfg.OnDrop != nil {
		r.cfg.OnDrop(e.key, reason, e.held)
	}
	r.bufs.put(e.buf)
	e.buf = nil
	r.remove(e)
}

// remove unlinks e (whose buffer was already taken) from every structure and recycles it.
func (r *Reassembler) remove(e *entry) {
	pr := e.peer
	delete(r.entries, e.key)
	r.age.remove(e)
	pr.remove(e)
	if r.last == e {
		r.last = nil
	}
	need := classSizeOf(e)
	pr.bytes -= need
	pr.entries--
	r.bytes -= need
	if pr.entries == 0 {
		r.retire(pr)
	} else {
		r.heaps[byBytes].fixPeer(pr)
		r.heaps[byEntries].fixPeer(pr)
	}
	*e = entry{spans: e.spans[:0]}
	r.free = append(r.free, e)
}

// classSizeOf returns the accounted size of e's buffer class.
func classSizeOf(e *entry) int { return classSize(int(e.class)) }

// newEntry returns a recycled or new entry.
func (r *Reassembler) newEntry() *entry {
	if n := len(r.free); n > 0 {
		e := r.free[n-1]
		r.free = r.free[:n-1]
		return e
	}
	return &entry{spans: make([]span, 0, min(r.cfg.MaxPieces, 64))}
}

// newPeer registers a peer.
func (r *Reassembler) newPeer(addr netip.Addr) *peer {
	var pr *peer
	if n := len(r.freeP); n > 0 {
		pr = r.freeP[n-1]
		r.freeP = r.freeP[:n-1]
	} else {
		pr = &peer{}
	}
	*pr = peer{addr: addr}
	r.peers[addr] = pr
	r.heaps[byBytes].push(pr)
	r.heaps[byEntries].push(pr)
	return pr
}

// retire handles a peer that holds no partial message any more: the most recent such peer
// stays registered (with weight 0 in the heaps, so eviction never picks it) because the next
// message usually comes from the same peer; an older idle peer is freed. So the peer table
// never holds more than one peer without partial messages.
func (r *Reassembler) retire(pr *peer) {
	r.heaps[byBytes].fixPeer(pr)
	r.heaps[byEntries].fixPeer(pr)
	if r.idle != nil && r.idle != pr {
		r.freePeer(r.idle)
	}
	r.idle = pr
}

// freePeer unregisters a peer without partial messages.
func (r *Reassembler) freePeer(pr *peer) {
	delete(r.peers, pr.addr)
	r.heaps[byBytes].remove(pr)
	r.heaps[byEntries].remove(pr)
	r.freeP = append(r.freeP, pr)
}
