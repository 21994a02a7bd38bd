package sclp

import (
	"bytes"
	"math/rand/v2"
	"testing"
	"time"
)

// roundTripper segments messages into wire-format segments and reassembles them, reusing
// its buffers, so that tests can push every message size through quickly.
type roundTripper struct {
	tb   testing.TB
	r    *Reassembler
	seg  Segmenter
	bufs [][]byte
	id   uint32
}

func newRoundTripper(tb testing.TB, mtu int) *roundTripper {
	rt := &roundTripper{tb: tb, r: newTestReassembler(tb, Config{})}
	n := SegmentCount(MaxMessageLen, mtu-IPv4Overhead)
	for i := 0; i < n; i++ {
		rt.bufs = append(rt.bufs, make([]byte, mtu-IPv4HeaderLen))
	}
	return rt
}

// run segments msg at mss, checks every segment's header and checksum, feeds the segments
// to the reassembler in order and checks the delivered message.
func (rt *roundTripper) run(msg []byte, mss int) {
	tb := rt.tb
	tb.Helper()
	rt.id += 2
	k := testKey(1, rt.id)
	if err := rt.seg.Reset(msg, mss, Header{SrcPort: k.SrcPort, DstPort: k.DstPort, ID: k.ID}); err != nil {
		tb.Fatalf("size %d mss %d: %v", len(msg), mss, err)
	}
	want := SegmentCount(len(msg), mss)
	for i := 0; i < want; i++ {
		n, err := rt.seg.NextInto(rt.bufs[i])
		if err != nil {
			tb.Fatalf("size %d mss %d segment %d: %v", len(msg), mss, i, err)
		}
		seg := rt.bufs[i][:n]
		var h Header
		_ = h.UnmarshalBinary(seg)
		chunk := seg[HeaderLen:]
		wantRem := max(0, len(msg)-(i+1)*mss)
		if h.First != (i == 0) || int(h.Remaining) != wantRem || h.ID != k.ID || Fold(Sum(seg, 0)) != 0xFFFF {
			tb.Fatalf("size %d mss %d segment %d: header %+v (remaining want %d)", len(msg), mss, i, h, wantRem)
		}
		if i < want-1 && len(chunk) != mss {
			tb.Fatalf("size %d mss %d segment %d: %d bytes", len(msg), mss, i, len(chunk))
		}
		m, res := rt.r.Add(t0, Piece{Key: k, First: h.First, Remaining: int(h.Remaining), Payload: chunk})
		if i < want-1 {
			if res.Status != Buffered {
				tb.Fatalf("size %d mss %d segment %d: %v", len(msg), mss, i, res)
			}
			continue
		}
		if res.Status != Completed || !bytes.Equal(m.Payload, msg) {
			tb.Fatalf("size %d mss %d: %v, identical %v", len(msg), mss, res, bytes.Equal(m.Payload, msg))
		}
		rt.r.Release(m)
	}
	if _, err := rt.seg.NextInto(rt.bufs[0]); err == nil {
		tb.Fatalf("size %d mss %d: more than %d segments", len(msg), mss, want)
	}
}

// roundTripSizes returns the sizes to test at one MSS: 0..600, every MSS multiple +-1, the
// limits, and random sizes.
func roundTripSizes(rng *rand.Rand, mss int) []int {
	var sizes []int
	for s := 0; s <= 600; s++ {
		sizes = append(sizes, s)
	}
	for m := mss; m <= MaxMessageLen+1; m += mss {
		sizes = append(sizes, m-1, m, m+1)
	}
	sizes = append(sizes, 65535, 65536, MaxMessageLen-1, MaxMessageLen)
	for i := 0; i < 200; i++ {
		sizes = append(sizes, rng.IntN(MaxMessageLen+1))
	}
	return sizes
}

func TestRoundTripMTUs(t *testing.T) {
	rng := rand.New(rand.NewPCG(11, 12))
	msg := randBytes(rng, MaxMessageLen)
	for _, mtu := range []int{576, 577, 1280, 1500, 1501, 4000, 8999, 9000, 576 + rng.IntN(8424)} {
		rt := newRoundTripper(t, mtu)
		mss := mtu - IPv4Overhead
		for _, size := range roundTripSizes(rng, mss) {
			if size <= MaxMessageLen {
				rt.run(msg[:size], mss)
			}
		}
		if s := rt.r.Stats(); s.BufferedEntries != 0 || s.TotalDrops() != 0 {
			t.Fatalf("mtu %d: stats %+v", mtu, s)
		}
	}
}

// TestRoundTripEverySize pushes every message size 0..MaxMessageLen through at MTUs 576,
// 1500 and 9000.
func TestRoundTripEverySize(t *testing.T) {
	if testing.Short() {
		t.Skip("every size takes a few seconds")
	}
	msg := randBytes(rand.New(rand.NewPCG(13, 14)), MaxMessageLen)
	for _, mtu := range []int{576, 1500, 9000} {
		rt := newRoundTripper(t, mtu)
		start := time.Now()
		for size := 0; size <= MaxMessageLen; size++ {
			rt.run(msg[:size], mtu-IPv4Overhead)
		}
		t.Logf("mtu %d: %d sizes in %v", mtu, MaxMessageLen+1, time.Since(start))
	}
}
