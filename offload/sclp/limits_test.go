package sclp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

// TestFloodRefusedAtPeerCap: peers flooding first segments (66) and early non-first
// segments (67) of messages that never complete are refused once at their cap, without the
// reassembler evicting anything for them at their per-peer cap; they never push out another
// peer's partial messages; memory stays within every cap; and a legitimate peer's messages,
// in progress before the flood or started during it, complete.
func TestFloodRefusedAtPeerCap(t *testing.T) {
	evicted := map[byte]int{}
	cfg := Config{MaxBytes: 40 * MaxMessageLen, MaxEntries: 100, MaxPeerBytes: 30 * MaxMessageLen, MaxPeerEntries: 60,
		OnDrop: func(k Key, why DropReason, _ int) {
			if why == DropEvicted {
				evicted[k.Src.As4()[3]]++
			}
		}}
	r := newTestReassembler(t, cfg)
	rng := rand.New(rand.NewPCG(1, 2))
	legit := map[uint32][]Piece{}
	msgs := map[uint32][]byte{}
	// The legitimate peer 1 has 10 partial messages, each missing its last segment, and
	// starts 10 more during the flood.
	for id := uint32(2); id <= 40; id += 2 {
		msgs[id] = randBytes(rng, 60000)
		legit[id] = segmentPieces(t, testKey(1, id), msgs[id], 1468)
		if id > 20 {
			continue
		}
		for _, p := range legit[id][:len(legit[id])-1] {
			if _, res := r.Add(t0, p); res.Status != Buffered {
				t.Fatal(res)
			}
		}
	}
	refused := map[byte]int{}
	now := t0
	flood := func(i int) {
		now = now.Add(time.Microsecond) // 2 M flood segments a second
		for _, src := range []byte{66, 67} {
			p := Piece{Key: testKey(src, uint32(2*i)), First: src == 66, Remaining: 64000, Payload: make([]byte, 1468)}
			if src == 67 {
				p.Remaining = 1000
			}
			if _, res := r.Add(now, p); res.Status == Dropped {
				if res.Reason != DropOverLimit {
					t.Fatalf("flood piece of peer %d dropped as %v", src, res.Reason)
				}
				refused[src]++
			}
		}
		checkCaps(t, r)
	}
	for i := 0; i < 2500; i++ {
		flood(i)
	}
	// Under the flood: the held messages complete, and new ones start and complete.
	done := 0
	for id, ps := range legit {
		if id <= 20 {
			ps = ps[len(ps)-1:]
		}
		for j, p := range ps {
			flood(2500 + done*len(ps) + j)
			m, res := r.Add(now, p)
			if j < len(ps)-1 {
				if res.Status != Buffered {
					t.Fatalf("legitimate message %d piece %d: %v", id, j, res)
				}
				continue
			}
			if res.Status != Completed || !bytes.Equal(m.Payload, msgs[id]) {
				t.Fatalf("legitimate message %d: %v", id, res)
			}
			r.Release(m)
		}
		done++
	}
	if evicted[1] != 0 {
		t.Fatalf("the flood evicted %d of the legitimate peer's partial messages", evicted[1])
	}
	if refused[66] < 2000 || refused[67] < 2000 {
		t.Fatalf("flooders were not refused at their cap: %v", refused)
	}
	// Neither flooder has credit: at its per-peer cap it evicts only its spare one per
	// 100 us; the others are global-cap evictions of the heavier flooder by the lighter one
	// (or by peer 1), which stop once they hold the same.
	spares := int(now.Sub(t0) / (100 * time.Microsecond))
	if n := evicted[66] + evicted[67]; n > 2*spares+40 {
		t.Fatalf("%d flood messages evicted (%v) in %v: eviction work for a flooder", n, evicted, now.Sub(t0))
	}
	t.Logf("in %v: refused %v, evicted %v, stats %+v", now.Sub(t0), refused, evicted, r.Stats())
}

// TestPeerCreditEvictsOwnOldest: a peer at its cap whose messages complete (a legitimate
// peer on a lossy path, its cap full of messages that lost a segment) recycles its own
// oldest partial messages for new ones, paying each eviction with the bytes that message
// holds in the caps (its buffer class) out of 4 bytes of credit per payload byte it
// completed; a peer without completions is refused at its cap but for one spare eviction
// per 100 us; no other peer loses anything.
func TestPeerCreditEvictsOwnOldest(t *testing.T) {
	var evicted []uint32
	r := newTestReassembler(t, Config{MaxPeerEntries: 4, OnDrop: func(k Key, why DropReason, _ int) {
		if why == DropEvicted {
			if k.Src != testKey(1, 0).Src {
				t.Errorf("evicted a message of %v", k.Src)
			}
			evicted = append(evicted, k.ID)
		}
	}})
	rng := rand.New(rand.NewPCG(5, 6))
	other := segmentPieces(t, testKey(2, 1000), randBytes(rng, 3000), 1468)
	if _, res := r.Add(t0, other[0]); res.Status != Buffered {
		t.Fatal(res)
	}
	msgs := map[uint32][]Piece{}
	start := func(id uint32) Result {
		msgs[id] = segmentPieces(t, testKey(1, id), randBytes(rng, 3000), 1468)
		_, res := r.Add(t0, msgs[id][0])
		checkCaps(t, r)
		return res
	}
	// Peer 1 fills its cap with 4 messages (3000 bytes: 4 KiB class) that lost their last
	// segments.
	for id := uint32(2); id <= 8; id += 2 {
		if res := start(id); res.Status != Buffered {
			t.Fatal(res)
		}
	}
	// No credit: a fifth message is refused. Messages that arrive whole in one piece earn
	// nothing (they never held a buffer), nor does a zero-copy completion of a peer without
	// a record, nor one of no bytes.
	for i := range 2 {
		r.Add(t0, Piece{Key: testKey(1, uint32(100+2*i)), First: true, Payload: make([]byte, 100)})
	}
	r.NoteCompleted(testKey(3, 0).Src, 4096)
	r.NoteCompleted(testKey(1, 0).Src, 0)
	r.NoteCompleted(testKey(1, 0).Src, -5)
	if res := start(10); res.Status != Dropped || res.Reason != DropOverLimit {
		t.Fatalf("peer at its cap without credit: %v", res)
	}
	// A zero-copy completion of 1023 bytes earns 4092 bytes, not enough for one 4 KiB-class
	// eviction; one more byte is.
	r.NoteCompleted(testKey(1, 0).Src, 1023)
	if res := start(10); res.Reason != DropOverLimit {
		t.Fatalf("credit short of one eviction: %v", res)
	}
	r.NoteCompleted(testKey(1, 0).Src, 1)
	if res := start(10); res.Status != Buffered {
		t.Fatalf("credit of one eviction: %v", res)
	}
	// One of 4096 bytes earns 4 evictions of 4 KiB-class messages: 12..18 each evict the
	// oldest; 20 is refused.
	r.NoteCompleted(testKey(1, 0).Src, 4096)
	for _, id := range []uint32{12, 14, 16, 18} {
		if res := start(id); res.Status != Buffered {
			t.Fatalf("new message %d with credit: %v", id, res)
		}
	}
	if res := start(20); res.Reason != DropOverLimit {
		t.Fatalf("credit spent: %v", res)
	}
	// Completing 12 here (3000 bytes) earns 12000 and frees its room: 20 fits, 22 and 24
	// evict 14 and 16 (8192 bytes), and the 3808 left do not pay for 26.
	for _, p := range msgs[12][1:] {
		if m, res := r.Add(t0, p); res.Status == Completed {
			r.Release(m)
		}
	}
	for _, id := range []uint32{20, 22, 24, 26} {
		if res := start(id); (res.Status == Buffered) != (id != 26) {
			t.Fatalf("new message %d after a completion: %v", id, res)
		}
	}
	// Every 100 us a peer has one spare eviction without credit: 34 is admitted, 32 just
	// before and 36 right after are refused.
	for _, id := range []uint32{32, 34, 36} {
		now := t0.Add(100 * time.Microsecond)
		if id == 32 {
			now = now.Add(-time.Nanosecond)
		}
		msgs[id] = segmentPieces(t, testKey(1, id), randBytes(rng, 3000), 1468)
		if _, res := r.Add(now, msgs[id][0]); (res.Status == Buffered) != (id == 34) {
			t.Fatalf("message %d at %v: %v", id, now.Sub(t0), res)
		}
	}
	if want := []uint32{2, 4, 6, 8, 10, 14, 16, 18}; !slices.Equal(evicted, want) {
		t.Fatalf("evicted ids %v, want peer 1's oldest first %v", evicted, want)
	}
	if h, ok := r.Holds(other[0].Key); !ok || h != len(other[0].Payload) {
		t.Fatal("another peer's partial message was touched")
	}
}

// TestSmallCompletionsDoNotBuyFloodEvictions pins the attack on per-message credit: a peer
// at its cap floods first segments of 64 KB messages (64 KB class, 1 us apart) and, after
// every 4, completes one in-order two-segment message of 1.5 KB through the zero-copy path
// (NoteCompleted). With 4 evictions per completed message it was never refused and every
// flood segment evicted its oldest; with credit by bytes each completion buys 6 KB, a tenth
// of one eviction, so the flood is refused and its evictions stay within the spare ones
// plus what the completed bytes pay for. A peer completing 64 KB messages the same way
// still recycles about 4 stale 64 KB-class entries per completion.
func TestSmallCompletionsDoNotBuyFloodEvictions(t *testing.T) {
	for _, size := range []int{1500, 65000} {
		evicted := 0
		r := newTestReassembler(t, Config{MaxPeerEntries: 16, OnDrop: func(_ Key, why DropReason, _ int) {
			if why == DropEvicted {
				evicted++
			}
		}})
		src := testKey(66, 0).Src
		const floods = 20000
		refused, completions := 0, 0
		now := t0
		for i := range floods {
			now = now.Add(time.Microsecond)
			p := Piece{Key: testKey(66, uint32(2*i)), First: true, Remaining: 64000, Payload: make([]byte, 1468)}
			if _, res := r.Add(now, p); res.Status == Dropped {
				if res.Reason != DropOverLimit {
					t.Fatalf("flood piece dropped as %v", res.Reason)
				}
				refused++
			}
			if i%4 == 3 {
				r.NoteCompleted(src, size)
				completions++
			}
			if i%256 == 0 {
				checkCaps(t, r)
			}
		}
		spares := int(now.Sub(t0) / (100 * time.Microsecond))
		paid := 4 * size * completions / MaxMessageLen
		t.Logf("%d-byte completions: %d of %d flood segments refused, %d evicted (%d spare, %d paid by credit)",
			size, refused, floods, evicted, spares, paid)
		if evicted > spares+paid+1 {
			t.Fatalf("%d-byte completions: %d evictions, more than %d spare and %d paid", size, evicted, spares, paid)
		}
		switch {
		case size < 2000 && (refused < floods*8/10 || evicted > floods/10):
			t.Fatalf("small completions: %d of %d refused, %d evicted: the flood buys evictions", refused, floods, evicted)
		case size > 60000 && evicted < 3*completions:
			t.Fatalf("64 KB completions: %d evictions for %d completions, want about 4 each", evicted, completions)
		}
	}
}

// TestLossyPeerAtCap: a peer sends 20000 messages of 3 segments in order, one per 50 us
// (timeout 1 s, 64 partial messages per peer); some lose their middle segment and stay
// partial until they time out. With 60% of its messages lossy,
// every message that lost nothing completes: its completions' credit recycles the stale ones
// as an evictor would. With 90% lossy, completions cannot pay for the stale ones, and the
// peer is refused part of its new messages (the documented trade-off; an evictor would have
// admitted them), while spare evictions keep most of its intact messages going.
func TestLossyPeerAtCap(t *testing.T) {
	for _, lossy := range []float64{0.6, 0.9} {
		r := newTestReassembler(t, Config{MaxPeerEntries: 64, Timeout: time.Second})
		rng := rand.New(rand.NewPCG(7, uint64(lossy*10)))
		good, completed, refused := 0, 0, 0
		now := t0
		for i := range 20000 {
			now = now.Add(50 * time.Microsecond)
			ps := segmentPieces(t, testKey(1, uint32(2*i)), randBytes(rng, 1468*3), 1468)
			if rng.Float64() < lossy {
				ps = append(ps[:1], ps[2:]...)
			} else {
				good++
			}
			for _, p := range ps {
				m, res := r.Add(now, p)
				switch {
				case res.Status == Completed:
					completed++
					r.Release(m)
				case res.Status == Dropped && res.Reason == DropOverLimit && p.First:
					refused++
				}
			}
			if i%64 == 0 {
				checkCaps(t, r)
			}
		}
		s := r.Stats()
		t.Logf("%.0f%% of messages lossy: %d of %d intact messages completed, %d refused, %d evicted, %d timed out",
			100*lossy, completed, good, refused, s.Drops[DropEvicted], s.Drops[DropTimeout])
		switch {
		case lossy < 0.8 && (completed != good || refused != 0):
			t.Fatalf("%.0f%% lossy: %d of %d intact messages completed, %d refused", 100*lossy, completed, good, refused)
		case lossy > 0.8 && (refused == 0 || completed < good/2):
			t.Fatalf("%.0f%% lossy: %d refused, %d of %d intact completed: want evictions bounded by completions and spares, and no lockout",
				100*lossy, refused, completed, good)
		}
	}
}

// TestGlobalCapTakesFromHeavierPeer: under the global caps a peer may evict only from a peer
// holding more than it would; equal flooders refuse each other instead of evicting each
// other in turn, and a light peer still gets room from the heaviest one.
func TestGlobalCapTakesFromHeavierPeer(t *testing.T) {
	evicted := map[byte]int{}
	r := newTestReassembler(t, Config{MaxEntries: 8, OnDrop: func(k Key, why DropReason, _ int) {
		if why == DropEvicted {
			evicted[k.Src.As4()[3]]++
		}
	}})
	first := func(src byte, id uint32) Result {
		_, res := r.Add(t0, Piece{Key: testKey(src, id), First: true, Remaining: 500, Payload: make([]byte, 100)})
		checkCaps(t, r)
		return res
	}
	for i := uint32(0); i < 100; i++ {
		first(66, 2*i)
		first(67, 2*i)
	}
	s := r.Stats()
	if s.BufferedEntries != 8 || evicted[66]+evicted[67] > 2 {
		t.Fatalf("flooders: %d entries, evicted %v", s.BufferedEntries, evicted)
	}
	if res := first(1, 2); res.Status != Buffered {
		t.Fatalf("a light peer under the global cap: %v", res)
	}
	if evicted[66]+evicted[67] > 3 || evicted[1] != 0 {
		t.Fatalf("evicted %v", evicted)
	}
	// Peer 1 can go on taking until it holds as much as the heaviest flooder would.
	for i := uint32(1); i < 10; i++ {
		first(1, 2+2*i)
	}
	if h := r.peers[testKey(1, 0).Src].entries; h < 2 || h > 3 {
		t.Fatalf("peer 1 holds %d of 8 entries next to two flooders", h)
	}
}

// TestFloodRefusalAllocs: a refused flood piece allocates nothing.
func TestFloodRefusalAllocs(t *testing.T) {
	r := newTestReassembler(t, Config{MaxPeerEntries: 16})
	p := Piece{Key: testKey(66, 0), First: true, Remaining: 64000, Payload: make([]byte, 1468)}
	id := uint32(0)
	flood := func() {
		id += 2
		p.Key.ID = id
		r.Add(t0, p)
	}
	for range 100 {
		flood()
	}
	if n := testing.AllocsPerRun(1000, flood); n != 0 {
		t.Fatalf("%v allocs per refused piece", n)
	}
	if s := r.Stats(); s.Drops[DropOverLimit] < 1000 || s.BufferedEntries != 16 {
		t.Fatalf("stats %+v", s)
	}
}

func TestOverLimitAndConfig(t *testing.T) {
	if _, err := NewReassembler(Config{MaxBytes: -1}); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("negative cap: %v", err)
	}
	r := newTestReassembler(t, Config{MaxPeerBytes: 1024, MaxPieces: 2})
	// A message needing a bigger buffer than a peer may hold.
	if _, res := r.Add(t0, Piece{Key: testKey(1, 2), First: true, Remaining: 5000, Payload: make([]byte, 100)}); res.Reason != DropOverLimit {
		t.Fatalf("over peer cap: %v", res)
	}
	r = newTestReassembler(t, Config{MaxPieces: 2})
	if _, res := r.Add(t0, Piece{Key: testKey(1, 2), First: true, Remaining: MaxMessageLen, Payload: make([]byte, 100)}); res.Reason != DropOverLimit {
		t.Fatalf("message too large: %v", res)
	}
	k := testKey(1, 4)
	for i, rem := range []int{9000, 7000} {
		if _, res := r.Add(t0, Piece{Key: k, Remaining: rem, Payload: make([]byte, 100)}); res.Status != Buffered {
			t.Fatalf("hole %d: %v", i, res)
		}
	}
	if _, res := r.Add(t0, Piece{Key: k, Remaining: 5000, Payload: make([]byte, 100)}); res.Reason != DropOverLimit {
		t.Fatalf("third hole: %v", res)
	}
	if _, res := r.Add(t0, Piece{Key: k, Remaining: 7100, Payload: make([]byte, 1900)}); res.Status != Buffered {
		t.Fatalf("piece joining two runs: %v", res)
	}
	if len(r.entries[k].spans) != 1 {
		t.Fatalf("spans %v", r.entries[k].spans)
	}
	if _, res := r.Add(t0, Piece{Key: k, Remaining: 3000}); res.Reason != DropShort {
		t.Fatalf("empty non-first: %v", res)
	}
	if _, res := r.Add(t0, Piece{Key: k, First: true, Remaining: 9000, Payload: make([]byte, 50)}); res.Reason != DropOverlap {
		t.Fatalf("first contradicting held bytes: %v", res)
	}
}

// TestReassemblerSteadyStateAllocs proves the hot path allocates nothing once warm.
func TestReassemblerSteadyStateAllocs(t *testing.T) {
	msg := randBytes(rand.New(rand.NewPCG(3, 3)), 65000)
	pieces := segmentPieces(t, testKey(1, 2), msg, 1468)
	order := rand.New(rand.NewPCG(4, 4)).Perm(len(pieces))
	r := newTestReassembler(t, Config{})
	id := uint32(0)
	now := t0
	run := func() {
		id += 2
		now = now.Add(time.Millisecond)
		for _, i := range order {
			p := pieces[i]
			p.Key.ID = id
			if m, res := r.Add(now, p); res.Status == Completed {
				r.Release(m)
			}
		}
	}
	for i := 0; i < 2000; i++ {
		run()
	}
	if n := testing.AllocsPerRun(200, run); n != 0 {
		t.Fatalf("%v allocs per reassembled message", n)
	}
	if s := r.Stats(); s.Completed != 2201 {
		t.Fatalf("completed %d", s.Completed)
	}
}

func TestCoalescer(t *testing.T) {
	msg := randBytes(rand.New(rand.NewPCG(5, 5)), 10000)
	k := testKey(1, 2)
	ps := segmentPieces(t, k, msg, 1468)
	c, err := NewCoalescer(0)
	if err != nil {
		t.Fatal(err)
	}
	var runs []Piece
	add := func(p Piece) {
		if out, ok := c.Add(p); ok {
			runs = append(runs, Piece{Key: out.Key, First: out.First, Remaining: out.Remaining, Payload: append([]byte(nil), out.Payload...)})
		}
	}
	// 0 1 2 | 4 5 6 | 3: three runs; the last completes at once since remaining reaches 0.
	for _, i := range []int{0, 1, 2, 4, 5, 6, 3} {
		add(ps[i])
	}
	if out, ok := c.Flush(); ok {
		runs = append(runs, out)
	}
	if len(runs) != 3 || !runs[0].First || runs[0].Remaining != ps[2].Remaining || runs[1].Remaining != 0 {
		t.Fatalf("runs %d: %+v", len(runs), runs)
	}
	if !bytes.Equal(runs[0].Payload, msg[:3*1468]) || !bytes.Equal(runs[1].Payload, msg[4*1468:]) {
		t.Fatal("run payloads differ from the message")
	}
	r := newTestReassembler(t, Config{})
	var got Message
	for _, run := range runs {
		if m, res := r.Add(t0, run); res.Status == Completed {
			got = m
		}
	}
	if !bytes.Equal(got.Payload, msg) {
		t.Fatal("runs do not reassemble to the message")
	}
	if _, err := NewCoalescer(-1); !errors.Is(err, ErrBadConfig) {
		t.Fatalf("bad limit: %v", err)
	}
}
