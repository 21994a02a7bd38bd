//go:build linux

package udp

import (
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
	frames atomic.Uint64 // frames this worker sent (shows how the fanout spreads flows)
}

// run is the transmit loop; it returns when the port stops.
func (w *txWorker) run() {
	defer w.p.wg.Done()
	workerThread(w.p.nice)
	pfd := [2]unix.PollFd{{Fd: int32(w.fd), Events: unix.POLLIN}, {Fd: int32(w.p.stopfd), Events: unix.POLLIN}}
	for !w.p.stopping.Load() {
		n, e := w.recv()
		switch {
		case e == unix.EAGAIN:
			w.p.tx.socketDrops.Add(packetDrops(w.fd))
			_, _ = unix.Poll(pfd[:], -1)
			continue
		case e == unix.EINTR:
			continue
		case e != 0:
			// A transient device error (the veth went down, ENETDOWN/ENXIO): keep the worker
			// and retry after a pause rather than stopping the port for good.
			time.Sleep(10 * time.Millisecond)
			continue
		}
		w.handle(n)
	}
}

// recv reads one frame (with its vnet header) into the buffer; n is the full length.
func (w *txWorker) recv() (int, unix.Errno) {
	b := w.buf[frameOff-VnetHdrLen:]
	n, _, e := unix.Syscall6(unix.SYS_RECVFROM, uintptr(w.fd), uintptr(unsafe.Pointer(&b[0])),
		uintptr(len(b)), unix.MSG_DONTWAIT|unix.MSG_TRUNC, 0, 0)
	return int(n), e
}

// VnetHdrLen is the virtio_net_hdr length in front of every frame read.
const VnetHdrLen = 10

// handle turns the frame just read (n bytes including the vnet header) into one message.
func (w *txWorker) handle(n int) {
	st := &w.p.tx
	if n > len(w.buf)-(frameOff-VnetHdrLen) {
		st.truncated.Add(1)
		return
	}
	if n < VnetHdrLen+14 {
		return
	}
	vh := w.buf[frameOff-VnetHdrLen : frameOff]
	if gso := vh[1] &^ 0x80; gso != 0 && gso != 1 && gso != 4 { // only TCPv4/TCPv6 GSO survive
		st.unsupported.Add(1)
		return
	}
	frame := w.buf[frameOff : frameOff-VnetHdrLen+n]
	if len(frame)+sclp.VXLANHeaderLen > sclp.MaxMessageLen {
		st.tooLarge.Add(1)
		return
	}
	msg := w.buf[frameOff-sclp.VXLANHeaderLen : frameOff+len(frame)]
	sclp.PutVXLAN(msg, w.p.spec.VNI)
	sport := sclp.SourcePort(frame)
	fd := w.p.src.fd(sport)
	base := sclp.Header{SrcPort: sport, DstPort: sclp.VXLANPort, ID: w.p.ids.Next()}
	before := w.snd.backpressure
	segs, err := w.snd.send(fd, &w.p.dst, msg, base)
	st.backpressure.Add(w.snd.backpressure - before)
	st.segments.Add(uint64(segs))
	if err != nil {
		st.sendErrs.Add(1)
		return
	}
	st.frames.Add(1)
	w.frames.Add(1)
	st.bytes.Add(uint64(len(frame)))
	st.messages.Add(1)
}
