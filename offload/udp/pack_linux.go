//go:build linux

package udp

import (
	"errors"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Packing the segments of consecutive messages into UDP GSO sends.
//
// One UDP_SEGMENT sendmsg carries at most 65,507 bytes, i.e. 44 segments of 1,472 bytes at a
// 1500-byte underlay. A VM's 64 KB TSO frame is 45 segments (45 MSS of payload: 65,234 bytes
// with its headers and VXLAN), so sent one message at a time it takes two sendmsg (44 + 1),
// which the receiving host's GRO turns into two batches and its worker into two recvmsg: the
// second sendmsg, GRO flow and recvmsg per message measured 1.11x the rate and 0.88x the CPU
// when the VM's frames were capped at 44 segments (docs/performance.md). Packing removes that
// second round without asking anything of the VM: a message's segments that do not fill a
// sendmsg are held and leave at the front of the next message's sendmsg. A UDP GSO send's
// segments must all have the same size except the last, so each sendmsg carries the oldest
// held full-size segments, then the current message's, and at most one short segment, last:
// about 1.02 sendmsg per 45-segment message instead of 2. Only messages that do not fit one
// sendmsg are packed: one that fits leaves whole and alone (fitsOne). Segments of one message may then
// arrive out of order (its short last one before some full ones), which the receiver's
// reassembler takes as it takes any reordering.
//
// Held segments point into the message's buffer, so the caller keeps that buffer untouched
// until the next send, queue or flushHeld; only the latest message's segments are held after
// a send returns (older ones are always sent), so a caller alternating two buffers is safe.
// Nothing is held longer than it takes the caller to find no next frame: the transmit worker
// calls flushHeld before it waits (txWorker.run), so packing adds no latency to the last
// frame of a burst.

// heldSeg is one segment waiting to be sent: its header and chunk iovecs.
type heldSeg struct {
	iov [2]unix.Iovec
	msg uint32 // the sequence number of its message (packState.seq)
	// ends marks the last segment of a message without a short one: the message is complete
	// at the receiver once this segment is.
	ends bool
}

// packState is the sender's packing state.
type packState struct {
	fd     int
	fulls  []heldSeg // full-size segments, oldest first
	shorts []heldSeg // segments shorter than mss (each the last of its message), oldest first
	hdrs   [2][]byte // SCLP headers of held segments, by message sequence parity
	seq    uint32    // sequence number of the latest message
}

// initPack sizes the packing state for messages of up to sclp.MaxMessageLen bytes.
func (s *sender) initPack() {
	n := sclp.SegmentCount(sclp.MaxMessageLen, s.mss)
	s.pk.fulls = make([]heldSeg, 0, 2*n+s.perSend)
	s.pk.shorts = make([]heldSeg, 0, 4)
	for i := range s.pk.hdrs {
		s.pk.hdrs[i] = make([]byte, n*sclp.HeaderLen)
	}
	if cap(s.iov) < 2*(maxSegsPerSend) {
		s.iov = make([]unix.Iovec, 2*maxSegsPerSend)
	}
}

// holding reports whether segments are held.
func (s *sender) holding() bool { return len(s.pk.fulls)+len(s.pk.shorts) > 0 }

// fullsWithShort is how many full-size segments fit in one sendmsg before a short segment
// of n payload bytes.
func (s *sender) fullsWithShort(n int) int {
	return min((maxUDPPayload-sclp.HeaderLen-n)/(sclp.HeaderLen+s.mss), maxSegsPerSend-1)
}

// sendPacked sends msg (VXLAN header + inner frame) as SCLP segments with the given base
// header, packed behind the segments still held from the previous message. With hold, the
// segments that do not fill a sendmsg stay held (msg must stay valid until the next call or
// flushHeld); without, everything is sent before it returns. It returns the number of
// msg's segments sent or held. On an error every held segment is dropped; segments of an
// earlier message lost with them count in s.dropped.
func (s *sender) sendPacked(fd int, dst *unix.RawSockaddrInet4, msg []byte, base sclp.Header, hold bool) (int, error) {
	if s.holding() && fd != s.pk.fd {
		if err := s.flushHeld(); errors.Is(err, errStopped) {
			return 0, err
		}
	}
	if err := s.seg.Reset(msg, s.mss, base); err != nil {
		return 0, err
	}
	// A message that fits one sendmsg leaves whole, alone: it then arrives in one GRO batch
	// and takes the receiver's zero-copy path, and packing would save no sendmsg. What is
	// held goes first.
	fits := s.fitsOne(len(msg))
	if fits && s.holding() {
		if err := s.flushHeld(); errors.Is(err, errStopped) {
			return 0, err
		}
	}
	s.dst = *dst
	s.pk.fd = fd
	s.pk.seq++
	seq := s.pk.seq
	hdrs := s.pk.hdrs[seq&1]
	k := 0
	for {
		h, chunk, ok := s.seg.Next()
		if !ok {
			break
		}
		hb := hdrs[k*sclp.HeaderLen : (k+1)*sclp.HeaderLen]
		h.Put(hb)
		g := heldSeg{msg: seq, iov: [2]unix.Iovec{{Base: &hb[0], Len: sclp.HeaderLen},
			{Base: unsafe.SliceData(chunk), Len: uint64(len(chunk))}}}
		if len(chunk) == s.mss {
			s.pk.fulls = append(s.pk.fulls, g)
		} else {
			s.pk.shorts = append(s.pk.shorts, g)
		}
		k++
	}
	if n := len(s.pk.fulls); n > 0 && s.pk.fulls[n-1].msg == seq && (len(s.pk.shorts) == 0 || s.pk.shorts[len(s.pk.shorts)-1].msg != seq) {
		s.pk.fulls[n-1].ends = true
	}
	if err := s.packFull(); err != nil {
		return 0, err
	}
	// Only the latest message may stay held: its buffer is the one the caller keeps.
	if !hold || fits || s.olderHeld(seq) {
		if err := s.flushAll(seq); err != nil {
			return 0, err
		}
	}
	return k, nil
}

// fitsOne reports whether a message of n bytes fits one sendmsg.
func (s *sender) fitsOne(n int) bool {
	segs := sclp.SegmentCount(n, s.mss)
	last := n - (segs-1)*s.mss
	if last == s.mss {
		return segs <= s.perSend
	}
	return segs-1 <= s.fullsWithShort(last)
}

// olderHeld reports whether a segment of a message before seq is held.
func (s *sender) olderHeld(seq uint32) bool {
	return len(s.pk.fulls) > 0 && s.pk.fulls[0].msg != seq || len(s.pk.shorts) > 0 && s.pk.shorts[0].msg != seq
}

// packFull sends every sendmsg that is full: the held full-size segments with a short one
// behind them when they reach the most that fit before it (or when two short ones are held:
// only one can go per sendmsg), or perSend full-size segments without one.
func (s *sender) packFull() error {
	for {
		switch {
		case len(s.pk.shorts) > 0 && (len(s.pk.shorts) > 1 || len(s.pk.fulls) >= s.fullsWithShort(int(s.pk.shorts[0].iov[1].Len))):
			if err := s.emit(min(len(s.pk.fulls), s.fullsWithShort(int(s.pk.shorts[0].iov[1].Len))), true, s.pk.seq); err != nil {
				return err
			}
		case len(s.pk.fulls) >= s.perSend:
			if err := s.emit(s.perSend, false, s.pk.seq); err != nil {
				return err
			}
		default:
			return nil
		}
	}
}

// flushHeld sends every held segment (the transmit worker calls it before it waits, before
// a buffer holding them is reused, and before a one-segment message that must not overtake
// them). Held segments are of messages already reported sent: a failure counts them in
// s.dropped.
func (s *sender) flushHeld() error {
	return s.flushAll(s.pk.seq + 1)
}

// flushAll sends every held segment; cur is the sequence number of a message not yet
// reported to the caller (a failure is that message's own error, not a drop).
func (s *sender) flushAll(cur uint32) error {
	for s.holding() {
		short := len(s.pk.shorts) > 0
		k := len(s.pk.fulls)
		if short {
			k = min(k, s.fullsWithShort(int(s.pk.shorts[0].iov[1].Len)))
		} else {
			k = min(k, s.perSend)
		}
		if err := s.emit(k, short, cur); err != nil {
			return err
		}
	}
	return nil
}

// emit sends the k oldest held full-size segments, followed by the oldest short one if
// withShort, as one sendmsg, and forgets them. On an error it forgets every held segment and
// counts in s.dropped the messages before cur that lost segments.
//
// Messages must complete at the receiver in the order they were read (they may be segments
// of one TCP stream), and a message completes with its last segment. Short segments leave
// oldest first, so messages that end in one do; but a message of full-size segments only
// completes with its last full one, which, in the same sendmsg as an older message's short
// segment, would arrive before it. So that segment waits for a later sendmsg.
func (s *sender) emit(k int, withShort bool, cur uint32) error {
	if withShort {
		for i, g := range s.pk.fulls[:k] {
			if g.ends && int32(g.msg-s.pk.shorts[0].msg) > 0 {
				k = i
				break
			}
		}
	}
	n := 0
	for i := range k {
		s.iov[2*n], s.iov[2*n+1] = s.pk.fulls[i].iov[0], s.pk.fulls[i].iov[1]
		n++
	}
	if withShort {
		s.iov[2*n], s.iov[2*n+1] = s.pk.shorts[0].iov[0], s.pk.shorts[0].iov[1]
		n++
	}
	s.msg.Iov = &s.iov[0]
	err := s.flush(s.pk.fd, n)
	if err != nil {
		s.dropped += uint64(s.lostBefore(cur))
		s.pk.fulls, s.pk.shorts = s.pk.fulls[:0], s.pk.shorts[:0]
		return err
	}
	s.pk.fulls = s.pk.fulls[:copy(s.pk.fulls, s.pk.fulls[k:])]
	if withShort {
		s.pk.shorts = s.pk.shorts[:copy(s.pk.shorts, s.pk.shorts[1:])]
	}
	return nil
}

// lostBefore counts the distinct messages before cur with held segments (at most two
// messages are ever held, so the count is 0, 1 or 2).
func (s *sender) lostBefore(cur uint32) int {
	var a, b uint32
	n := 0
	note := func(m uint32) {
		if m == cur || n > 0 && m == a || n > 1 && m == b {
			return
		}
		if n == 0 {
			a = m
		} else {
			b = m
		}
		n++
	}
	for _, g := range s.pk.fulls {
		note(g.msg)
	}
	for _, g := range s.pk.shorts {
		note(g.msg)
	}
	return n
}
