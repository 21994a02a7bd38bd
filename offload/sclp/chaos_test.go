package sclp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// chaosOptions drives one randomised reassembly run.
type chaosOptions struct {
	Seed      uint64
	Messages  int
	Peers     int
	MSS       int
	Loss      float64 // probability a segment is lost
	Dup       float64 // probability a segment is sent twice
	Window    int     // segments are shuffled within windows of this many
	Coalesce  bool    // pass pieces through a Coalescer first
	Config    Config
	Step      time.Duration // clock advance per piece
	MaxMsgLen int
}

// checkCaps fails unless the reassembler's usage is within its caps, globally and per peer.
func checkCaps(tb testing.TB, r *Reassembler) {
	tb.Helper()
	s, c := r.Stats(), r.Config()
	if s.BufferedBytes > c.MaxBytes || s.BufferedEntries > c.MaxEntries {
		tb.Fatalf("caps exceeded: %d bytes (max %d), %d entries (max %d)", s.BufferedBytes, c.MaxBytes, s.BufferedEntries, c.MaxEntries)
	}
	bytes, entries := 0, 0
	for _, p := range r.peers {
		if p.bytes > c.MaxPeerBytes || p.entries > c.MaxPeerEntries {
			tb.Fatalf("peer %v over its caps: %d bytes %d entries", p.addr, p.bytes, p.entries)
		}
		bytes += p.bytes
		entries += p.entries
	}
	if bytes != s.BufferedBytes || entries != s.BufferedEntries {
		tb.Fatalf("accounting: peers %d/%d, total %d/%d", bytes, entries, s.BufferedBytes, s.BufferedEntries)
	}
}

// runChaos sends messages with losses, duplicates and reordering and checks that every
// delivered message is byte-identical to one sent and every message of which anything
// arrived is delivered or reported dropped (by OnDrop, or in the Result of a refused piece).
func runChaos(t *testing.T, o chaosOptions) Stats {
	rng := rand.New(rand.NewPCG(o.Seed, 99))
	sent := map[Key][]byte{}
	var wire []Piece
	for i := 0; i < o.Messages; i++ {
		k := testKey(byte(1+rng.IntN(o.Peers)), uint32(2*i))
		msg := randBytes(rng, rng.IntN(o.MaxMsgLen+1))
		sent[k] = msg
		for _, p := range segmentPieces(t, k, msg, o.MSS) {
			if rng.Float64() < o.Loss {
				continue
			}
			wire = append(wire, p)
			if rng.Float64() < o.Dup {
				wire = append(wire, p)
			}
		}
	}
	for lo := 0; lo < len(wire); lo += o.Window {
		w := wire[lo:min(lo+o.Window, len(wire))]
		rng.Shuffle(len(w), func(i, j int) { w[i], w[j] = w[j], w[i] })
	}
	arrived, delivered, dropped := map[Key]bool{}, map[Key]int{}, map[Key]int{}
	cfg := o.Config
	cfg.OnDrop = func(k Key, _ DropReason, _ int) { dropped[k]++ }
	r := newTestReassembler(t, cfg)
	co, _ := NewCoalescer(0)
	now := t0
	deliver := func(p Piece) {
		m, res := r.Add(now, p)
		checkCaps(t, r)
		if res.Status == Dropped {
			dropped[p.Key]++
		}
		if res.Status != Completed {
			return
		}
		if want, ok := sent[m.Key]; !ok || !bytes.Equal(m.Payload, want) {
			t.Fatalf("delivered a corrupted message %+v (%d bytes, sent %d)", m.Key, len(m.Payload), len(want))
		}
		delivered[m.Key]++
		r.Release(m)
	}
	for i, p := range wire {
		now = now.Add(o.Step)
		arrived[p.Key] = true
		if !o.Coalesce {
			deliver(p)
			continue
		}
		if run, ok := co.Add(p); ok {
			deliver(run)
		}
		if i%8 == 7 { // batches of 8, like recvmmsg
			if run, ok := co.Flush(); ok {
				deliver(run)
			}
		}
	}
	if run, ok := co.Flush(); ok {
		deliver(run)
	}
	r.Expire(now.Add(time.Hour))
	for k := range arrived {
		if delivered[k] == 0 && dropped[k] == 0 {
			t.Fatalf("message %+v: segments arrived but it was neither delivered nor dropped", k)
		}
	}
	s := r.Stats()
	if s.BufferedBytes != 0 || s.BufferedEntries != 0 || s.Peers != 0 {
		t.Fatalf("left over after expiry: %+v", s)
	}
	return s
}

func TestChaosReorderOnly(t *testing.T) {
	s := runChaos(t, chaosOptions{Seed: 1, Messages: 300, Peers: 3, MSS: 1468, Window: 64, MaxMsgLen: MaxMessageLen, Step: time.Microsecond})
	if s.Completed != 300 || s.TotalDrops() != 0 {
		t.Fatalf("reordering alone lost messages: %+v", s)
	}
}

func TestChaosLossDupReorder(t *testing.T) {
	for seed := uint64(1); seed <= 6; seed++ {
		s := runChaos(t, chaosOptions{Seed: seed, Messages: 200, Peers: 4, MSS: 536 + int(seed)*300, Loss: 0.03, Dup: 0.05,
			Window: 100, MaxMsgLen: 40000, Step: time.Millisecond, Coalesce: seed%2 == 0})
		if s.Completed == 0 || s.Drops[DropDuplicate] == 0 {
			t.Fatalf("seed %d: implausible stats %+v", seed, s)
		}
	}
}

func TestChaosTightCaps(t *testing.T) {
	cfg := Config{MaxBytes: 600 << 10, MaxEntries: 12, MaxPeerBytes: 300 << 10, MaxPeerEntries: 6, MaxPieces: 4, Timeout: 50 * time.Millisecond}
	s := runChaos(t, chaosOptions{Seed: 7, Messages: 400, Peers: 5, MSS: 1468, Loss: 0.02, Dup: 0.02, Window: 400,
		MaxMsgLen: MaxMessageLen, Step: 100 * time.Microsecond, Config: cfg})
	if s.Drops[DropEvicted] == 0 || s.Completed == 0 {
		t.Fatalf("tight caps should evict and still complete: %+v", s)
	}
}
