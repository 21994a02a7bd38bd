//go:build linux

package udp

import (
	"encoding/binary"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// frameOff is where a frame starts in a transmit buffer: the vnet header is read into
// [frameOff-10, frameOff) and the VXLAN header then overwrites [frameOff-8, frameOff).
const frameOff = 16

// txStats are one tunnel port's transmit counters (all workers).
type txStats struct {
	frames, bytes, messages, segments    atomic.Uint64
	tooLarge, unsupported, sendErrs      atomic.Uint64
	backpressure, socketDrops, truncated atomic.Uint64
}

// txWorker reads frames from one fanout member socket of a tunnel port and sends them.
type txWorker struct {
	p      *port
	fd     int
	snd    *sender
	buf    []byte
	ubuf   []byte        // scratch for datagrams cut from a UDP GSO frame
	frames atomic.Uint64 // frames this worker sent (shows how the fanout spreads flows)
	// The recvmmsg state: txBatch frame buffers (the first is buf), allocated on first use.
	bufs [txBatch][]byte
	iovs [txBatch]unix.Iovec
	mm   [txBatch]mmsghdr
	// small is set when the last frame read was a one-segment message: only then does the
	// next read take a batch (large frames are read one at a time, each still in cache when
	// it is sent).
	small bool
	// heldBuf is the index in bufs of the frame whose segments the sender holds (meaningful
	// while snd.holding()): the next read must not overwrite it.
	heldBuf int
}

// txBatch is how many frames one recvmmsg on the packet socket takes at most. The frames of
// a batch are handled in order and their one-segment messages (small frames: ACKs, small
// datagrams) leave with one sendmmsg (sender.queue): measured 0.91x the datapath CPU per
// Gbit/s and 1.13x the goodput for 1 KB UDP datagrams, neutral for TCP (docs/performance.md).
const txBatch = 8

// run is the transmit loop; it returns when the port stops. A packet socket cannot leave
// its fanout group except by closing, and a close discards what is queued on it, so a
// stopping worker reads until its socket is empty and then closes it at once itself: frames
// the fanout steers to it until that moment are sent, and from the close on the kernel
// steers them to the remaining members (a successor agent's sockets during a takeover).
func (w *txWorker) run() {
	defer w.p.wg.Done()
	workerThread(w.p.nice)
	pfd := [2]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.p.stopfd), Events: unix.POLLIN}}
	var deadline time.Time // bounds the drain should the socket never run empty
	for {
		start, n, e := w.recvMulti()
		if w.p.stopping.Load() {
			now := time.Now()
			if deadline.IsZero() {
				deadline = now.Add(drainLimit)
			}
			if e != 0 && e != unix.EINTR || now.After(deadline) {
				w.flushHeld()
				w.close()
				return
			}
		}
		switch {
		case e == unix.EAGAIN:
			w.flushHeld() // nothing to pack the held end of the last message with
			w.p.tx.socketDrops.Add(packetDrops(w.fd))
			_, _ = unix.Poll(pfd[:], -1)
			continue
		case e == unix.EINTR:
			continue
		case e != 0:
			// A transient device error (the veth went down, ENETDOWN/ENXIO): keep the worker
			// and retry after a pause rather than stopping the port for good.
			w.flushHeld()
			time.Sleep(10 * time.Millisecond)
			continue
		}
		for i := start; i < start+n; i++ {
			// The sender holds segments of the latest message it sent: this frame's only if
			// the frame became a message (handle drops some without sending anything).
			seq := w.snd.pk.seq
			w.handle(w.bufs[i], int(w.mm[i].len), true)
			if w.snd.holding() && w.snd.pk.seq != seq {
				w.heldBuf = i
			}
		}
		w.small = int(w.mm[start+n-1].len)-VnetHdrLen+sclp.VXLANHeaderLen <= w.snd.mss
		// Send the batch's queued one-segment messages (their chunks point into bufs). A
		// failure counts a send error per message not sent (TxMessages counted them queued).
		before, dropped := w.snd.backpressure, w.snd.dropped
		_, _ = w.snd.flushQueue()
		w.p.tx.sendErrs.Add(w.snd.dropped - dropped)
		w.p.tx.backpressure.Add(w.snd.backpressure - before)
	}
}

// flushHeld sends the segments the sender holds, counting what fails as send errors.
func (w *txWorker) flushHeld() {
	if !w.snd.holding() {
		return
	}
	before, dropped := w.snd.backpressure, w.snd.dropped
	_ = w.snd.flushHeld()
	w.p.tx.sendErrs.Add(w.snd.dropped - dropped)
	w.p.tx.backpressure.Add(w.snd.backpressure - before)
}

// recvMulti reads up to txBatch frames (each with its vnet header) with one recvmmsg into
// bufs[start:]; it returns start and their count, and each frame's full length is in
// mm[i].len (MSG_TRUNC). A single frame is read into bufs[0], or bufs[1] while bufs[0] holds
// the sender's held segments; a batch overwrites every buffer, so the held segments are sent
// first.
func (w *txWorker) recvMulti() (start, n int, e unix.Errno) {
	if w.bufs[0] == nil {
		for i := range w.bufs {
			w.bufs[i] = w.buf
			if i > 0 {
				w.bufs[i] = make([]byte, len(w.buf))
			}
			b := w.bufs[i][frameOff-VnetHdrLen:]
			w.iovs[i] = unix.Iovec{Base: &b[0], Len: uint64(len(b))}
			w.mm[i].hdr.Iov = &w.iovs[i]
			w.mm[i].hdr.Iovlen = 1
		}
	}
	vlen := 1
	switch {
	case w.small:
		w.flushHeld()
		vlen = txBatch
	case w.snd.holding() && w.heldBuf == 0:
		start = 1
	}
	m, _, e := unix.Syscall6(unix.SYS_RECVMMSG, uintptr(w.fd), uintptr(unsafe.Pointer(&w.mm[start])), uintptr(vlen),
		unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	if e != 0 {
		return start, 0, e
	}
	if m == 0 {
		return start, 0, unix.EAGAIN
	}
	return start, int(m), 0
}

// close records the socket's drop count and closes it (once).
func (w *txWorker) close() {
	if w.fd < 0 {
		return
	}
	w.p.tx.socketDrops.Add(packetDrops(w.fd))
	unix.Close(w.fd)
	w.fd = -1
}

// VnetHdrLen is the virtio_net_hdr length in front of every frame read.
const VnetHdrLen = 10

// handle turns the frame just read into buf (n bytes including the vnet header) into one
// message, or, for a UDP GSO frame, into one message per datagram. With queue a one-segment
// message may wait for the sender's flushQueue (buf must stay untouched until then).
func (w *txWorker) handle(buf []byte, n int, queue bool) {
	st := &w.p.tx
	if n > len(buf)-(frameOff-VnetHdrLen) {
		st.truncated.Add(1)
		return
	}
	if n < VnetHdrLen+14 {
		return
	}
	vh := buf[frameOff-VnetHdrLen : frameOff]
	frame := buf[frameOff : frameOff-VnetHdrLen+n]
	switch gso := vh[1] &^ 0x80; gso {
	case 0, 1, 4: // none, TCPv4, TCPv6: the receiver re-derives TCP GSO from its port MTU
	case 5: // UDP L4 (UDP_SEGMENT inside the VM): one message per datagram
		w.splitUDP(frame, int(binary.LittleEndian.Uint16(vh[4:])))
		return
	default:
		st.unsupported.Add(1)
		return
	}
	if len(frame)+sclp.VXLANHeaderLen > sclp.MaxMessageLen {
		st.tooLarge.Add(1)
		return
	}
	if w.sendMessage(buf[frameOff-sclp.VXLANHeaderLen:frameOff+len(frame)], queue) {
		st.frames.Add(1)
		w.frames.Add(1)
		st.bytes.Add(uint64(len(frame)))
	}
}

// sendMessage sends one message: msg is the inner frame preceded by 8 bytes of room for the
// VXLAN header; with queue, a one-segment message may wait for the sender's flushQueue. It
// reports success.
func (w *txWorker) sendMessage(msg []byte, queue bool) bool {
	st := &w.p.tx
	sclp.PutVXLAN(msg, w.p.spec.VNI)
	frame := msg[sclp.VXLANHeaderLen:]
	sport := sclp.SourcePort(frame)
	fd := w.p.src.fd(sport)
	base := sclp.Header{SrcPort: sport, DstPort: sclp.VXLANPort, ID: w.p.ids.Next()}
	before, dropped := w.snd.backpressure, w.snd.dropped
	var segs int
	var err error
	if queue {
		segs, err = w.snd.queue(fd, &w.p.dst, msg, base)
	} else {
		segs, err = w.snd.send(fd, &w.p.dst, msg, base)
	}
	st.backpressure.Add(w.snd.backpressure - before)
	// Queued messages an earlier flush of this call dropped (send and queue flush the queue
	// first) are send errors too, besides this message's own.
	st.sendErrs.Add(w.snd.dropped - dropped)
	st.segments.Add(uint64(segs))
	if err != nil {
		st.sendErrs.Add(1)
		return false
	}
	st.messages.Add(1)
	return true
}

// splitUDP cuts a UDP GSO frame (gso_type UDP_L4, as a VM using UDP_SEGMENT sends it) into
// its datagrams, each sent as its own message: the receiver could not know the segment size
// of one large UDP frame. Each datagram gets the frame's headers with its own lengths (and,
// for IPv4, id and header checksum); its UDP checksum field is left as it is, since the
// receiver re-seeds it and delivers NEEDS_CSUM (docs/architecture.md, "Inner checksums").
func (w *txWorker) splitUDP(frame []byte, size int) {
	st := &w.p.tx
	l2, ip6, iphl, ok := l3Header(frame)
	hl := l2 + iphl + 8
	if !ok || size <= 0 || len(frame) < hl {
		st.unsupported.Add(1)
		return
	}
	payload := frame[hl:]
	out := w.ubuf[sclp.VXLANHeaderLen:]
	copy(out, frame[:hl])
	ip, udp := out[l2:l2+iphl], out[l2+iphl:hl]
	id := uint16(0)
	if !ip6 {
		id = binary.BigEndian.Uint16(ip[4:])
	}
	for off := 0; off < len(payload); off += size {
		chunk := payload[off:min(off+size, len(payload))]
		if hl+len(chunk) > len(out) {
			st.tooLarge.Add(1)
			return
		}
		copy(out[hl:], chunk)
		binary.BigEndian.PutUint16(udp[4:], uint16(8+len(chunk)))
		if ip6 {
			binary.BigEndian.PutUint16(ip[4:], uint16(8+len(chunk)))
		} else {
			binary.BigEndian.PutUint16(ip[2:], uint16(iphl+8+len(chunk)))
			binary.BigEndian.PutUint16(ip[4:], id)
			id++
			binary.BigEndian.PutUint16(ip[10:], 0)
			binary.BigEndian.PutUint16(ip[10:], sclp.Checksum(ip))
		}
		w.sendMessage(w.ubuf[:sclp.VXLANHeaderLen+hl+len(chunk)], false) // ubuf is reused: no queueing
	}
	st.frames.Add(1)
	w.frames.Add(1)
	st.bytes.Add(uint64(len(frame)))
}

// l3Header finds the L2 length and the IP header of an Ethernet frame carrying IPv4 (any
// header length) or IPv6 (fixed header, UDP next) with UDP.
func l3Header(f []byte) (l2 int, ip6 bool, iphl int, ok bool) {
	l2 = 14
	if len(f) < 18 {
		return 0, false, 0, false
	}
	et := binary.BigEndian.Uint16(f[12:])
	if et == 0x8100 {
		l2, et = 18, binary.BigEndian.Uint16(f[16:])
	}
	ip := f[l2:]
	switch {
	case et == 0x0800 && len(ip) >= 20 && ip[0]>>4 == 4 && ip[9] == 17:
		return l2, false, int(ip[0]&0xf) * 4, int(ip[0]&0xf) >= 5
	case et == 0x86dd && len(ip) >= 40 && ip[0]>>4 == 6 && ip[6] == 17:
		return l2, true, 40, true
	}
	return 0, false, 0, false
}
