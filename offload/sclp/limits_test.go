package sclp

import (
	"bytes"
	"errors"
	"math/rand/v2"
	"testing"
	"time"
)

// TestFloodEvictsFlooderFirst: a peer flooding first segments that never complete must not
// push out another peer's partial messages, under either the per-peer or the global caps.
func TestFloodEvictsFlooderFirst(t *testing.T) {
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
	// The legitimate peer 1 has 10 partial messages, each missing its last segment.
	for id := uint32(2); id <= 20; id += 2 {
		msgs[id] = randBytes(rng, 60000)
		legit[id] = segmentPieces(t, testKey(1, id), msgs[id], 1468)
		for _, p := range legit[id][:len(legit[id])-1] {
			if _, res := r.Add(t0, p); res.Status != Buffered {
				t.Fatal(res)
			}
		}
	}
	// Peer 66 floods 5000 first segments of 64 KB messages; peer 67 floods early non-first
	// segments.
	for i := 0; i < 5000; i++ {
		r.Add(t0, Piece{Key: testKey(66, uint32(2*i)), First: true, Remaining: 64000, Payload: make([]byte, 1468)})
		r.Add(t0, Piece{Key: testKey(67, uint32(2*i)), Remaining: 1000, Payload: make([]byte, 1468)})
		checkCaps(t, r)
	}
	if evicted[1] != 0 {
		t.Fatalf("the flood evicted %d of the legitimate peer's partial messages", evicted[1])
	}
	if evicted[66] == 0 || evicted[67] == 0 {
		t.Fatalf("flooders were not evicted: %v", evicted)
	}
	for id, ps := range legit {
		m, res := r.Add(t0, ps[len(ps)-1])
		if res.Status != Completed || !bytes.Equal(m.Payload, msgs[id]) {
			t.Fatalf("legitimate message %d: %v", id, res)
		}
		r.Release(m)
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
