package sclp

import (
	"bytes"
	"errors"
	"testing"
	"time"
)

func FuzzHeader(f *testing.F) {
	f.Add([]byte{0xC0, 0x01, 0x12, 0xB5, 0xDE, 0xAD, 0xBE, 0xEF, 0x05, 0xFC, 0x12, 0x34})
	f.Add([]byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, b []byte) {
		var h Header
		err := h.UnmarshalBinary(b)
		if len(b) < HeaderLen {
			if err == nil {
				t.Fatal("short header accepted")
			}
			return
		}
		if err != nil || h.ID&1 != 0 {
			t.Fatalf("unmarshal: %v id %#x", err, h.ID)
		}
		out, _ := h.MarshalBinary()
		if !bytes.Equal(out, b[:HeaderLen]) {
			t.Fatalf("round trip %x -> %x", b[:HeaderLen], out)
		}
	})
}

func FuzzParsePacket(f *testing.F) {
	for _, udp := range []uint16{0, 4795} {
		pkt, _ := AppendPacket(nil, PacketOptions{Src: outerA, Dst: outerB, UDPDstPort: udp}, Header{SrcPort: 50000, DstPort: VXLANPort, ID: 6, First: true}, []byte{0x08, 0, 0, 0, 0, 0, 1, 0, 9, 9})
		f.Add(pkt, true)
	}
	f.Add([]byte{0x45, 0, 0, 20}, false)
	f.Fuzz(func(t *testing.T, frame []byte, verify bool) {
		// Capture analysis's lenient checksum rules (AcceptPartial) must not panic either.
		_, _ = ParseFrame(frame, ParseOptions{UDPPort: 4795, Verify: true, AcceptPartial: true})
		p, err := ParseFrame(frame, ParseOptions{UDPPort: 4795, Verify: verify})
		if err != nil && !errors.Is(err, ErrChecksum) {
			if !errors.Is(err, ErrShort) && !errors.Is(err, ErrBadIPv4) && !errors.Is(err, ErrNotSCLP) {
				t.Fatalf("untyped error %v", err)
			}
			return
		}
		if len(p.Payload) > len(frame) {
			t.Fatal("payload longer than the frame")
		}
		if err != nil || p.OuterDstPort != 0 {
			return
		}
		// A verified native packet re-encodes to the same SCLP bytes.
		re, err := AppendPacket(nil, PacketOptions{NoEthernet: true, Src: p.Src, Dst: p.Dst}, p.Header, p.Payload)
		if err != nil {
			return // more than 65535 bytes cannot have parsed
		}
		_, _, h, payload, err := ParseIPv4(re, true)
		if err != nil || (verify && h != p.Header) || !bytes.Equal(payload, p.Payload) {
			t.Fatalf("re-encode: %v %+v vs %+v", err, h, p.Header)
		}
		_, _, _ = ParseVXLAN(p.Payload)
		_ = SourcePort(p.Payload)
	})
}

// FuzzReassembler drives a reassembler with pieces chosen by the fuzzer: real segments of
// three messages (any order, duplicates, losses) and arbitrary byte ranges of those messages
// with made-up boundaries, plus clock jumps. Invariants: no panic, caps respected after every
// call, and every delivered message is byte-identical to the one sent under its key.
func FuzzReassembler(f *testing.F) {
	f.Add([]byte{0, 10, 0, 0, 1, 0, 2, 0, 3, 0, 0, 1, 0, 2})
	f.Add([]byte{200, 50, 99, 0, 2, 5, 5, 1, 0, 3, 1, 2, 3, 4, 1, 9, 9, 9, 2, 0, 0, 0, 3, 7})
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 3 {
			return
		}
		cfg := Config{Timeout: 10 * time.Millisecond, MaxBytes: 5 * MaxMessageLen, MaxEntries: 4, MaxPeerBytes: 3 * MaxMessageLen, MaxPeerEntries: 3, MaxPieces: 3}
		r := newTestReassembler(t, cfg)
		const mss = 600
		var msgs [3][]byte
		var keys [3]Key
		var segs [3][]Piece
		for i := range msgs {
			n := int(ops[i]) * 97
			msgs[i] = make([]byte, n)
			for j := range msgs[i] {
				msgs[i][j] = byte(j*7 + i)
			}
			keys[i] = testKey(byte(1+i%2), uint32(2*i))
			segs[i] = segmentPieces(t, keys[i], msgs[i], mss)
		}
		ops = ops[3:]
		now := t0
		for len(ops) >= 4 {
			op, mi, a, b := ops[0]%4, int(ops[1]%3), int(ops[2]), int(ops[3])
			ops = ops[4:]
			var p Piece
			switch op {
			case 0, 1: // a real segment
				p = segs[mi][a%len(segs[mi])]
			case 2: // an arbitrary range of the true message
				size := len(msgs[mi])
				off := (a * 257) % (size + 1)
				n := min((b*31)%(size+1), size-off)
				p = Piece{Key: keys[mi], First: off == 0, Remaining: size - off - n, Payload: msgs[mi][off : off+n]}
			case 3:
				now = now.Add(time.Duration(a) * time.Millisecond)
				r.Expire(now)
				continue
			}
			m, res := r.Add(now, p)
			checkCaps(t, r)
			if res.Status == Completed {
				want := msgs[0]
				for i := range keys {
					if keys[i] == m.Key {
						want = msgs[i]
					}
				}
				if !bytes.Equal(m.Payload, want) {
					t.Fatalf("delivered %d bytes that differ from the %d sent", len(m.Payload), len(want))
				}
				r.Release(m)
			}
		}
	})
}
