package sclp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

var t0 = time.Unix(1_700_000_000, 0)

func TestReassemblePaperExampleAllOrders(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	msg := randBytes(rng, 3000)
	k := testKey(1, 0x100)
	pieces := segmentPieces(t, k, msg, 1468)
	for _, order := range [][]int{{0, 1, 2}, {0, 2, 1}, {1, 0, 2}, {1, 2, 0}, {2, 0, 1}, {2, 1, 0}} {
		r := newTestReassembler(t, Config{})
		for i, idx := range order {
			m, res := r.Add(t0, pieces[idx])
			if i < 2 {
				if res.Status != Buffered {
					t.Fatalf("order %v step %d: %v %v", order, i, res.Status, res.Reason)
				}
				continue
			}
			if res.Status != Completed || !bytes.Equal(m.Payload, msg) || m.Key != k {
				t.Fatalf("order %v: %v, equal %v", order, res, bytes.Equal(m.Payload, msg))
			}
			r.Release(m)
		}
		if s := r.Stats(); s.BufferedEntries != 0 || s.BufferedBytes != 0 || s.Completed != 1 {
			t.Fatalf("order %v: stats %+v", order, s)
		}
	}
}

func TestReassembleUnsegmentedAliases(t *testing.T) {
	r := newTestReassembler(t, Config{})
	p := Piece{Key: testKey(1, 2), First: true, Payload: []byte("hello")}
	m, res := r.Add(t0, p)
	if res.Status != Completed || &m.Payload[0] != &p.Payload[0] {
		t.Fatalf("unsegmented: %v, aliases %v", res, &m.Payload[0] == &p.Payload[0])
	}
	r.Release(m)
}

func TestReassembleDuplicateOverlapTimeout(t *testing.T) {
	msg := randBytes(rand.New(rand.NewPCG(1, 1)), 5000)
	k := testKey(3, 0x200)
	ps := segmentPieces(t, k, msg, 1468)
	var dropped []DropReason
	r := newTestReassembler(t, Config{Timeout: time.Second, OnDrop: func(_ Key, why DropReason, _ int) { dropped = append(dropped, why) }})
	if _, res := r.Add(t0, ps[1]); res.Status != Buffered {
		t.Fatal(res)
	}
	if _, res := r.Add(t0, ps[1]); res.Reason != DropDuplicate {
		t.Fatalf("duplicate: %v", res)
	}
	bad := ps[2]
	bad.Payload = bad.Payload[:len(bad.Payload)-10] // claims bytes that overlap ps[1]
	bad.Remaining += 20
	if _, res := r.Add(t0, bad); res.Reason != DropOverlap {
		t.Fatalf("overlap: %v", res)
	}
	if n := r.Expire(t0.Add(2 * time.Second)); n != 1 || len(dropped) != 1 || dropped[0] != DropOrphan {
		t.Fatalf("expire %d %v", n, dropped)
	}
	if _, res := r.Add(t0.Add(3*time.Second), ps[0]); res.Status != Buffered {
		t.Fatal(res)
	}
	r.Expire(t0.Add(5 * time.Second))
	if dropped[1] != DropTimeout {
		t.Fatalf("timeout: %v", dropped)
	}
	s := r.Stats()
	if s.Drops[DropDuplicate] != 1 || s.Drops[DropOverlap] != 1 || s.Drops[DropOrphan] != 1 || s.Drops[DropTimeout] != 1 || s.BufferedBytes != 0 {
		t.Fatalf("stats %+v", s)
	}
}
