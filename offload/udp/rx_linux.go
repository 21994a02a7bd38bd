//go:build linux

package udp

import (
	"encoding/binary"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// rxBufLen holds the largest GRO batch (a 64 KB UDP payload) with room to spare.
const rxBufLen = 68 << 10

// rxStats are the receive counters of one listening address.
type rxStats struct {
	datagrams, segments, bytes, short, unknownPeer atomic.Uint64
}

// drainLimit bounds how long a stopping worker keeps reading its socket (normally it runs
// empty within microseconds of leaving its group).
const drainLimit = 250 * time.Millisecond

// leaveSettle is how long a receive group keeps reading after its sockets left the
// SO_REUSEPORT group, before it drains them: a datagram whose socket lookup happened just
// before the leave is still being queued for a few microseconds.
const leaveSettle = 20 * time.Millisecond

// rxGroup is the SO_REUSEPORT group of receive sockets bound to one local address and port,
// one worker (goroutine + fallback.Worker) per socket.
type rxGroup struct {
	local    netip.AddrPort
	pipe     *fallback.Pipeline
	ports    *fallback.PortTable
	fds      []int
	stopfd   int
	stopping atomic.Bool
	wg       sync.WaitGroup
	refs     int
	st       rxStats
	expire   time.Duration
	workers  []*rxWorker
	nice     int
	// left and stopped are set (under Datapath.mu) once the sockets left the reuseport
	// group and once the workers drained and closed them.
	left, stopped bool
	// standby holds the workers before their first read until the group is activated
	// (Options.Standby); activate closes it (activated, under Datapath.mu, says so). nil:
	// active from the start. Never reassigned once the workers run.
	standby   chan struct{}
	activated bool
}

// rxWorker is the per-socket receive state; everything the hot path touches is here.
type rxWorker struct {
	g    *rxGroup
	fd   int
	w    *fallback.Worker
	buf  []byte
	name unix.RawSockaddrInet4
	cmsg []byte
	iov  unix.Iovec
	msg  unix.Msghdr
	// chunks is the scratch list of a zero-copy run (see run).
	chunks [][]byte
	// segments counts the segments this worker received (shows how SO_REUSEPORT spreads).
	segments atomic.Uint64
	// drops is the socket's receive-queue drop count (SO_RXQ_OVFL), updated on each read.
	drops atomic.Uint64
}

func newRxWorker(g *rxGroup, fd int, w *fallback.Worker) *rxWorker {
	r := &rxWorker{g: g, fd: fd, w: w, buf: make([]byte, rxBufLen), cmsg: make([]byte, 2*unix.CmsgSpace(4)),
		chunks: make([][]byte, 0, fallback.MaxChunks)}
	r.iov = unix.Iovec{Base: &r.buf[0], Len: uint64(len(r.buf))}
	r.msg.Name = (*byte)(unsafe.Pointer(&r.name))
	r.msg.Iov = &r.iov
	r.msg.Iovlen = 1
	r.msg.Control = &r.cmsg[0]
	return r
}

// run is the receive loop. After stop is requested it keeps reading until the socket is
// empty: the group has left the reuseport group by then (leave), so nothing new arrives and
// every datagram already queued is delivered rather than dropped at close.
func (r *rxWorker) run() {
	defer r.g.wg.Done()
	workerThread(r.g.nice)
	pfd := [2]unix.PollFd{{Fd: int32(r.fd), Events: unix.POLLIN}, {Fd: int32(r.g.stopfd), Events: unix.POLLIN}}
	if r.g.standby != nil {
		<-r.g.standby // activated, or stopping
	}
	last := time.Now()
	var deadline time.Time // bounds the drain should the socket never run empty
	for {
		n, gso, e := r.recv()
		now := time.Now()
		if r.g.stopping.Load() {
			if deadline.IsZero() {
				deadline = now.Add(drainLimit)
			} else if now.After(deadline) {
				return
			}
		}
		if now.Sub(last) >= r.g.expire {
			r.w.Expire(now)
			last = now
		}
		switch {
		case e == unix.EAGAIN:
			if r.g.stopping.Load() {
				return // drained
			}
			_, _ = unix.Poll(pfd[:], int(r.g.expire/time.Millisecond)+1)
			continue
		case e == unix.EINTR:
			continue
		case e != 0:
			if r.g.stopping.Load() {
				return
			}
			// A transient device error (the veth went down, ENETDOWN/ENXIO): keep the worker
			// and retry after a pause rather than stopping the port for good.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		r.split(now, r.buf[:n], gso)
	}
}

// recv reads one datagram or GRO batch; gso is the segment size (n when not merged).
func (r *rxWorker) recv() (n, gso int, e unix.Errno) {
	r.msg.Namelen = unix.SizeofSockaddrInet4
	r.msg.SetControllen(len(r.cmsg))
	m, _, e := unix.Syscall(unix.SYS_RECVMSG, uintptr(r.fd), uintptr(unsafe.Pointer(&r.msg)), unix.MSG_DONTWAIT)
	if e != 0 {
		return 0, 0, e
	}
	n, gso = int(m), int(m)
	// Control messages: UDP_GRO (segment size) and SO_RXQ_OVFL (the socket's drop count).
	c := r.cmsg[:min(int(r.msg.Controllen), len(r.cmsg))]
	for len(c) >= unix.CmsgLen(4) {
		h := (*unix.Cmsghdr)(unsafe.Pointer(&c[0]))
		if int(h.Len) < unix.CmsgLen(0) || int(h.Len) > len(c) {
			break
		}
		v := binary.NativeEndian.Uint32(c[unix.CmsgLen(0):])
		switch {
		case h.Level == unix.SOL_UDP && h.Type == unix.UDP_GRO && v > 0:
			gso = int(v)
		case h.Level == unix.SOL_SOCKET && h.Type == unix.SO_RXQ_OVFL:
			r.drops.Store(uint64(v))
		}
		c = c[min(cmsgAlign(int(h.Len)), len(c)):]
	}
	return n, gso, 0
}

// cmsgAlign rounds a control message length up to the kernel's alignment.
func cmsgAlign(n int) int {
	const a = int(unsafe.Sizeof(uintptr(0)))
	return (n + a - 1) &^ (a - 1)
}

// wholeRun checks whether the segments at the start of b (first is the first one, announcing rem
// more bytes) carry one whole message in order: same ports and id, no F bit, each remaining
// equal to the previous minus its chunk, ending at 0. If so it leaves their chunks in
// r.chunks and returns how many segments they are; 0 otherwise.
func (r *rxWorker) wholeRun(b []byte, gso int, first []byte, rem int) int {
	r.chunks = append(r.chunks[:0], first[sclp.HeaderLen:])
	for off := gso; rem > 0 && off < len(b) && len(r.chunks) < fallback.MaxChunks; off += gso {
		seg := b[off:min(off+gso, len(b))]
		if len(seg) <= sclp.HeaderLen || binary.BigEndian.Uint32(seg[0:]) != binary.BigEndian.Uint32(first[0:]) ||
			binary.BigEndian.Uint32(seg[4:]) != binary.BigEndian.Uint32(first[4:])&^1 {
			return 0
		}
		chunk := seg[sclp.HeaderLen:]
		next := int(binary.BigEndian.Uint16(seg[8:]))
		if next != rem-len(chunk) {
			return 0
		}
		rem = next
		r.chunks = append(r.chunks, chunk)
	}
	if rem != 0 {
		return 0
	}
	return len(r.chunks)
}

// split cuts a GRO batch into SCLP segments and hands each to the worker.
func (r *rxWorker) split(now time.Time, b []byte, gso int) {
	st := &r.g.st
	st.datagrams.Add(1)
	st.bytes.Add(uint64(len(b)))
	key := sclp.Key{Src: netip.AddrFrom4(r.name.Addr), Dst: r.g.local.Addr(),
		OuterSrcPort: ntohs(r.name.Port), OuterDstPort: r.g.local.Port()}
	if !r.g.ports.HasPeer(key.Src) {
		// Not a configured peer: drop the whole batch before it takes reassembly memory.
		st.unknownPeer.Add(1)
		r.w.Count(sclp.DropUnknownPeer)
		return
	}
	segs := 0
	for off := 0; off < len(b); {
		seg := b[off:min(off+gso, len(b))]
		if len(seg) < sclp.HeaderLen {
			segs++
			st.short.Add(1)
			r.w.Count(sclp.DropShort)
			off += gso
			continue
		}
		w := binary.BigEndian.Uint32(seg[4:])
		key.SrcPort = binary.BigEndian.Uint16(seg[0:])
		key.DstPort = binary.BigEndian.Uint16(seg[2:])
		key.ID = w &^ 1
		rem := int(binary.BigEndian.Uint16(seg[8:]))
		if w&1 != 0 && rem > 0 {
			if n := r.wholeRun(b[off:], gso, seg, rem); n > 0 && r.w.HandleRun(key, r.chunks) {
				segs += n
				off += n * gso
				continue
			}
		}
		segs++
		r.w.Handle(now, sclp.Piece{Key: key, First: w&1 != 0, Remaining: rem, Payload: seg[sclp.HeaderLen:]})
		off += gso
	}
	st.segments.Add(uint64(segs))
	r.segments.Add(uint64(segs))
}

func ntohs(v uint16) uint16 { return htons(v) }

// socketDrops sums the workers' socket drop counters.
func (g *rxGroup) socketDrops() uint64 {
	var n uint64
	for _, w := range g.workers {
		n += w.drops.Load()
	}
	return n
}
