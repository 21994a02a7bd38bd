package sclp

import (
	"net/netip"
	"time"
)

// Eviction budget of a peer at its cap (see Reassembler): creditPerByte bytes of its own
// partial messages (counted by their buffer class) per payload byte of a message it
// completes, plus one spare eviction per spareGap.
const (
	creditPerByte = 4
	spareGap      = int64(100 * time.Microsecond)
)

// Reassembler is stage 2 of SCLP receive: it restores whole messages from pieces (segments
// or coalesced runs) that may arrive out of order, duplicated or not at all.
//
// A partial message is keyed by Key and holds one pooled buffer; every piece is copied once,
// straight to its final place (messages are stored right-aligned, so a piece that arrives
// before the first one, whose message size is still unknown, already knows its position
// from the end). Duplicates and overlaps are dropped and never touch held bytes. A partial
// message expires Timeout after its first piece arrived.
//
// Buffer bytes and partial messages are capped per peer (Key.Src) and globally. Pieces of a
// partial message already held are always accepted; the caps decide only whether a new
// partial message may start:
//   - A peer at its own cap is refused a new partial message at once (DropOverLimit, before
//     any buffer is taken), like Linux IP reassembly since 4.17 (no evictor, CVE-2018-5391),
//     unless it can pay for evicting its own oldest partial message (DropEvicted) to make
//     room. Credit is counted in bytes: a message of B payload bytes of the peer that
//     completes (here, or outside the reassembler as reported through NoteCompleted) earns
//     4*B bytes, banked up to MaxPeerBytes, and an eviction spends the bytes the evicted
//     message holds in the caps (its buffer class: up to 64 KiB, the largest for a message
//     that started with a later piece). Besides, a peer has one spare eviction every 100 us
//     (10,000 a second, a fraction of a percent of a core). A legitimate peer on a lossy
//     path, whose cap fills with messages that lost a segment, so keeps recycling those
//     stale messages (its oldest) as an evictor would, about 4 per completion when its
//     messages fill their class, instead of being refused until they time out; a peer that
//     only opens messages (a flood of first segments) costs two map lookups per segment
//     once full, plus at most the spare evictions; a peer that mixes both gets evictions of
//     at most 4 times the bytes it completes, so small completions (a 1.5 KB zero-copy
//     message earns 6 KB) do not pay for evicting 64 KiB-class flood messages. What byte
//     credit does not bound is the number of evictions of small-class messages: a flood of
//     first segments announcing messages of at most 1 KiB still gets about 6 evictions per
//     1.5 KB completion. The trade-off: a peer whose cap is full of stale messages and more
//     than 80% of whose messages lose a segment (3.5% segment loss with 45-segment
//     messages; less for messages that fill only part of their class, which earn less
//     than 4 evictions each) gets only part of its new messages admitted (those the spare
//     evictions and the credit of their completions pay for), where an evictor would have
//     admitted all of them.
//   - Under a global cap the oldest partial message of the peer holding the most (bytes, or
//     entries for the entry cap) is evicted, if that peer holds more than the requesting
//     peer would after admission; otherwise the requester is itself the heaviest and the
//     per-peer rule applies. So a flooder cannot evict another peer's messages, and no peer
//     is starved by others.
//
// The clock is whatever the caller passes to Add and Expire; it is made monotonic (a time
// before the latest one seen counts as the latest). A Reassembler is not safe for concurrent
// use: run one per worker. In the steady state it allocates nothing.
type Reassembler struct {
	cfg     Config
	timeout int64
	now     int64
	entries map[Key]*entry
	peers   map[netip.Addr]*peer
	age     ageList
	heaps   [2]peerHeap
	bufs    bufferPool
	free    []*entry
	freeP   []*peer
	last    *entry // cache of the most recent entry: consecutive pieces skip the map
	idle    *peer  // the one registered peer without partial messages, if any
	bytes   int
	stats   Stats
}

// NewReassembler returns a reassembler with cfg's limits (zero fields take DefaultConfig
// values). It returns an error wrapping ErrBadConfig for negative limits.
func NewReassembler(cfg Config) (*Reassembler, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	r := &Reassembler{
		cfg:     cfg,
		timeout: int64(cfg.Timeout),
		entries: make(map[Key]*entry),
		peers:   make(map[netip.Addr]*peer),
		bufs:    bufferPool{maxFree: 64},
	}
	r.heaps[byBytes].which = byBytes
	r.heaps[byEntries].which = byEntries
	return r, nil
}

// Config returns the effective configuration.
func (r *Reassembler) Config() Config { return r.cfg }

// clock advances the monotonic clock to now and returns it.
func (r *Reassembler) clock(now time.Time) int64 {
	if t := now.UnixNano(); t > r.now {
		r.now = t
	}
	return r.now
}

// Add offers a piece at time now. It first expires partial messages older than the timeout.
// The Result says whether the piece completed a message (returned, valid until Release),
// was buffered, or was dropped and why (the drop is counted). The piece's payload is copied
// unless it is the whole message by itself (First with Remaining 0), in which case the
// returned Message aliases it. Add never retains p.Payload.
func (r *Reassembler) Add(now time.Time, p Piece) (Message, Result) {
	return r.AddPiece(now, &p)
}

// AddPiece is Add with the piece passed by reference, which saves copying the piece on
// every call in a hot loop. It does not retain p.
func (r *Reassembler) AddPiece(now time.Time, p *Piece) (Message, Result) {
	t := r.clock(now)
	if h := r.age.head; h != nil && t-h.created >= r.timeout {
		r.expire(t)
	}
	s, rem := len(p.Payload), p.Remaining
	if e := r.last; e != nil && !p.First && rem > 0 && s > 0 && len(e.spans) == 1 && e.spans[0].lo == rem+s && e.key.same(&p.Key) {
		// Fast path: the next piece in order extends the only run of the partial message
		// that took the previous piece, and does not complete it.
		e.spans[0].lo = rem
		end := e.end - rem
		copy(e.buf.b[end-s:end], p.Payload)
		e.held += s
		r.stats.Buffered++
		return Message{}, Result{Status: Buffered}
	}
	switch {
	case rem < 0 || rem > MaxRemaining || s+rem > MaxMessageLen:
		return r.reject(DropOverLimit)
	case p.First && rem == 0:
		r.stats.Completed++
		r.stats.Direct++
		r.stats.CompletedBytes += uint64(s)
		return Message{Key: p.Key, Payload: p.Payload}, Result{Status: Completed}
	case !p.First && s == 0:
		return r.reject(DropShort)
	}
	e := r.last
	if e == nil || !e.key.same(&p.Key) {
		e = r.entries[p.Key]
	}
	if e == nil {
		size := -1
		if p.First {
			size = s + rem
		}
		if e = r.create(t, p.Key, size); e == nil {
			return r.reject(DropOverLimit)
		}
	}
	r.last = e
	if reason := e.place(p, r.cfg.MaxPieces); reason != DropNone {
		return r.reject(reason)
	}
	r.stats.Buffered++
	if e.size < 0 || len(e.spans) != 1 || e.spans[0].lo != 0 || e.spans[0].hi != e.size {
		return Message{}, Result{Status: Buffered}
	}
	return r.complete(e), Result{Status: Completed}
}

// reject counts a dropped piece.
func (r *Reassembler) reject(reason DropReason) (Message, Result) {
	r.stats.Drops[reason]++
	return Message{}, Result{Status: Dropped, Reason: reason}
}

// place records piece p in e; it returns the drop reason if p must be dropped.
func (e *entry) place(p *Piece, maxSpans int) DropReason {
	s, rem := len(p.Payload), p.Remaining
	if !p.First && len(e.spans) == 1 && e.spans[0].lo == rem+s && s > 0 {
		// Fast path: the next piece in order (or the previous one of a run held from the
		// end) extends the only run towards the end of the message.
		e.spans[0].lo = rem
		end := e.end - rem
		copy(e.buf.b[end-s:end], p.Payload)
		e.held += s
		return DropNone
	}
	if p.First {
		size := s + rem
		switch {
		case e.size >= 0 && e.size != size:
			return DropOverlap
		case e.size < 0 && len(e.spans) > 0 && e.spans[len(e.spans)-1].hi > size:
			return DropOverlap
		case size > e.end:
			return DropOverLimit // cannot happen: an unknown size always has the largest class
		}
	} else if e.size >= 0 && s+rem > e.size {
		return DropOverlap
	}
	if s == 0 { // an empty first piece only announces the size
		if e.size == rem {
			return DropDuplicate
		}
	} else if reason := e.insert(span{rem, rem + s}, maxSpans); reason != DropNone {
		return reason
	}
	if p.First {
		e.size = s + rem
	}
	end := e.end - rem
	copy(e.buf.b[end-s:end], p.Payload)
	e.held += s
	return DropNone
}

// insert adds the non-empty span sp to the sorted spans, merging adjacent ones. A span inside
// an existing one is a duplicate, one that intersects any is an overlap; neither is inserted.
func (e *entry) insert(sp span, maxSpans int) DropReason {
	n := len(e.spans)
	i := 0
	for i < n && e.spans[i].hi < sp.lo {
		i++
	}
	for j := i; j < n && e.spans[j].lo < sp.hi; j++ {
		if cur := e.spans[j]; cur.hi > sp.lo {
			if cur.lo <= sp.lo && sp.hi <= cur.hi {
				return DropDuplicate
			}
			return DropOverlap
		}
	}
	prevAdj := i < n && e.spans[i].hi == sp.lo
	k := i
	if prevAdj {
		k = i + 1
	}
	nextAdj := k < n && e.spans[k].lo == sp.hi
	switch {
	case prevAdj && nextAdj:
		e.spans[i].hi = e.spans[k].hi
		e.spans = append(e.spans[:k], e.spans[k+1:]...)
	case prevAdj:
		e.spans[i].hi = sp.hi
	case nextAdj:
		e.spans[k].lo = sp.lo
	case n >= maxSpans:
		return DropOverLimit
	default:
		e.spans = append(e.spans, span{})
		copy(e.spans[k+1:], e.spans[k:])
		e.spans[k] = sp
	}
	return DropNone
}

// complete removes e, which holds its whole message, and returns the message.
func (r *Reassembler) complete(e *entry) Message {
	m := Message{Key: e.key, Payload: e.buf.b[e.end-e.size : e.end : e.end], buf: e.buf}
	e.buf.out = true
	e.buf = nil
	r.stats.Completed++
	r.stats.CompletedBytes += uint64(e.size)
	e.peer.earn(e.size, r.cfg.MaxPeerBytes)
	r.remove(e)
	return m
}

// NoteCompleted tells the reassembler that a message of n payload bytes (the SCLP message,
// VXLAN header included, as Message.Payload would hold it) from src was completed without
// it (a zero-copy delivery of a run that arrived whole), which earns src the same eviction
// credit as a message of n bytes the reassembler completes (see Reassembler). It costs one
// map lookup (none while the reassembler tracks no peer).
func (r *Reassembler) NoteCompleted(src netip.Addr, n int) {
	if len(r.peers) == 0 {
		return
	}
	if pr := r.peers[src]; pr != nil {
		pr.earn(n, r.cfg.MaxPeerBytes)
	}
}

// Release returns a message's buffer to the reassembler's pool. Payload must not be used
// afterwards. Releasing a message that aliases its piece, or releasing twice, does nothing.
func (r *Reassembler) Release(m Message) {
	if m.buf != nil && m.buf.out {
		r.bufs.put(m.buf)
	}
}

// Expire drops every partial message whose timeout has passed at now and returns how many.
func (r *Reassembler) Expire(now time.Time) int {
	return r.expire(r.clock(now))
}

// expire drops timed-out partial messages, oldest first.
func (r *Reassembler) expire(t int64) int {
	n := 0
	for e := r.age.head; e != nil && t-e.created >= r.timeout; e = r.age.head {
		reason := DropTimeout
		if e.size < 0 {
			reason = DropOrphan
		}
		r.drop(e, reason)
		n++
	}
	return n
}

// Count adds one drop for reason, for drops its caller decides (bad checksum, bad VXLAN,
// unknown peer, short packet), so one Stats covers a whole receive pipeline.
func (r *Reassembler) Count(reason DropReason) {
	if reason < NumDropReasons {
		r.stats.Drops[reason]++
	}
}

// Holds reports whether a partial message for k is held and how many payload bytes it has.
func (r *Reassembler) Holds(k Key) (heldBytes int, ok bool) {
	if e := r.entries[k]; e != nil {
		return e.held, true
	}
	return 0, false
}

// Stats returns the counters and current usage.
func (r *Reassembler) Stats() Stats {
	s := r.stats
	s.BufferedBytes = r.bytes
	s.BufferedEntries = len(r.entries)
	s.Peers = len(r.peers)
	if r.idle != nil {
		s.Peers--
	}
	return s
}
