//go:build linux

package udp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// maxUDPPayload is the largest UDP payload of one IPv4 datagram, hence of one GSO sendmsg.
const maxUDPPayload = 65507

// maxSegsPerSend caps the segments of one sendmsg (the kernel's UDP_MAX_SEGMENTS is 64 on
// older kernels, 128 since 6.7).
const maxSegsPerSend = 64

// errStopped is returned by a blocked send when its worker is stopping.
var errStopped = errors.New("udp: worker stopped")

// sender turns one message into UDP_SEGMENT sendmsg calls without copying payload and without
// allocating: SCLP headers go to hdrs, iovecs point at them and into the message. One per
// transmit worker.
type sender struct {
	mss     int // SCLP payload bytes per segment
	perSend int // segments per sendmsg
	seg     sclp.Segmenter
	iov     []unix.Iovec
	msg     unix.Msghdr
	cmsg    []byte
	dst     unix.RawSockaddrInet4
	// stopped reports whether the worker is stopping (ends a backpressure wait).
	stopped func() bool

	backpressure uint64 // waits for room (EAGAIN/ENOBUFS)
	sends        uint64 // successful sendmsg calls of segments (not the one-segment queue's)
	// dropped counts queued one-segment messages a failed flushQueue discarded unsent,
	// wherever it ran (end of a batch, or before a longer message, another socket or a full
	// queue): the worker adds the difference to its send errors as it does backpressure.
	dropped uint64

	// The queue of one-segment messages sent together with one sendmmsg (queue, flushQueue).
	qk    int
	qfd   int
	qhdrs []byte
	qiov  []unix.Iovec
	qmm   []mmsghdr

	// pk holds the segments of the latest message that did not fill a sendmsg, to be sent
	// at the front of the next one (pack_linux.go).
	pk packState
}

// mmsghdr is struct mmsghdr of sendmmsg(2) and recvmmsg(2).
type mmsghdr struct {
	hdr unix.Msghdr
	len uint32
	_   [4]byte
}

// sendBatch is how many one-segment messages one sendmmsg carries at most.
const sendBatch = 16

// newSender prepares a sender for segments of mss payload bytes.
func newSender(mss int, stopped func() bool) (*sender, error) {
	if mss < sclp.MinMSS || mss > maxUDPPayload-sclp.HeaderLen {
		return nil, fmt.Errorf("new sender: mss %d: %w", mss, sclp.ErrBadMSS)
	}
	per := min(maxUDPPayload/(sclp.HeaderLen+mss), maxSegsPerSend)
	s := &sender{mss: mss, perSend: per, stopped: stopped,
		iov:   make([]unix.Iovec, 2*per),
		cmsg:  make([]byte, unix.CmsgSpace(2)),
		qhdrs: make([]byte, sendBatch*sclp.HeaderLen),
		qiov:  make([]unix.Iovec, 2*sendBatch),
		qmm:   make([]mmsghdr, sendBatch)}
	s.seg.NoChecksum = true // the UDP checksum covers the segment (SCLP.md, SCLP in UDP)
	h := (*unix.Cmsghdr)(unsafe.Pointer(&s.cmsg[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(s.cmsg[unix.CmsgLen(0):], uint16(sclp.HeaderLen+mss))
	s.msg.Name = (*byte)(unsafe.Pointer(&s.dst))
	s.msg.Namelen = unix.SizeofSockaddrInet4
	s.msg.Control = &s.cmsg[0]
	s.msg.SetControllen(len(s.cmsg))
	s.initPack()
	s.msg.Iov = &s.iov[0]
	return s, nil
}

// send transmits msg (VXLAN header + inner frame) to dst from fd as SCLP segments with the
// given base header (ports and id), behind any segments held from the previous message, and
// holds nothing back. It returns the number of msg's segments sent.
func (s *sender) send(fd int, dst *unix.RawSockaddrInet4, msg []byte, base sclp.Header) (int, error) {
	return s.sendMsg(fd, dst, msg, base, false)
}

// sendMsg sends the queued one-segment messages, then msg packed behind the held segments;
// with hold, the end of msg that does not fill a sendmsg stays held (sendPacked).
func (s *sender) sendMsg(fd int, dst *unix.RawSockaddrInet4, msg []byte, base sclp.Header, hold bool) (int, error) {
	// What the queue dropped is counted there (dropped); only a stop concerns msg too.
	if _, err := s.flushQueue(); errors.Is(err, errStopped) {
		return 0, err
	}
	return s.sendPacked(fd, dst, msg, base, hold && packSends)
}

// packSends turns packing on (pack_linux.go); off, every message leaves whole before the
// next is read. For A/B measurements.
var packSends = true

// flush sends the first k header/chunk pairs as one sendmsg, waiting for room when the
// socket or the device queue is full: backpressure instead of loss.
func (s *sender) flush(fd, k int) error {
	s.msg.SetIovlen(2 * k)
	if k == 1 {
		s.msg.SetControllen(0) // one datagram: no segmentation needed
		s.msg.Control = nil
	} else {
		s.msg.Control = &s.cmsg[0]
		s.msg.SetControllen(len(s.cmsg))
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&s.msg)), 0)
		switch e {
		case 0:
			s.sends++
			return nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			s.backpressure++
			if s.stopped() {
				return errStopped
			}
			var p [1]unix.PollFd
			p[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
			_, _ = unix.Poll(p[:], 20)
			continue
		case unix.ENOBUFS:
			// A full qdisc refused the datagram (reported because of IP_RECVERR): nothing of
			// this sendmsg left, so waiting and resending duplicates nothing.
			s.backpressure++
			if s.stopped() {
				return errStopped
			}
			time.Sleep(50 * time.Microsecond)
			continue
		}
		return fmt.Errorf("sendmsg: %w", e)
	}
}

// queue sends a message of one segment together with the next ones: it is kept (its chunk
// must stay valid until flushQueue) and sent with them by one sendmmsg. A longer message, a
// change of socket or a full queue sends what is queued first. A longer message is sent
// packed and its end may be held (sendPacked: msg must stay valid until the next call or
// flushHeld). dst must be the same for every
// message of a sender (one tunnel port's peer).
func (s *sender) queue(fd int, dst *unix.RawSockaddrInet4, msg []byte, base sclp.Header) (int, error) {
	if len(msg) > s.mss {
		return s.sendMsg(fd, dst, msg, base, true)
	}
	// Held segments go first: the small frame may belong to the same inner flow.
	if err := s.flushHeld(); errors.Is(err, errStopped) {
		return 0, err
	}
	if s.qk > 0 && (fd != s.qfd || s.qk == len(s.qmm)) {
		if _, err := s.flushQueue(); errors.Is(err, errStopped) {
			return 0, err
		}
	}
	if err := s.seg.Reset(msg, s.mss, base); err != nil {
		return 0, err
	}
	h, chunk, ok := s.seg.Next()
	if !ok {
		return 0, nil
	}
	s.dst, s.qfd = *dst, fd
	k := s.qk
	hb := s.qhdrs[k*sclp.HeaderLen : (k+1)*sclp.HeaderLen]
	h.Put(hb)
	s.qiov[2*k] = unix.Iovec{Base: &hb[0], Len: sclp.HeaderLen}
	s.qiov[2*k+1] = unix.Iovec{Base: &chunk[0], Len: uint64(len(chunk))}
	s.qmm[k].hdr = unix.Msghdr{Name: (*byte)(unsafe.Pointer(&s.dst)), Namelen: unix.SizeofSockaddrInet4, Iov: &s.qiov[2*k]}
	s.qmm[k].hdr.SetIovlen(2)
	s.qk++
	return 1, nil
}

// flushQueue sends the queued one-segment messages with sendmmsg, waiting for room as flush
// does (a partial send resumes after the last message sent: nothing is duplicated). A message
// the kernel refuses with another error is dropped alone, as its own sendmsg would have been,
// and the rest still go: an error can belong to one message only, e.g. an ICMP error that
// IP_RECVERR reports once, on the socket's next send (sendmmsg returns an error only for the
// first message of a call; a later failure ends the call short and the next call starts with
// that message). A stopping worker drops what is left. Dropped messages are counted in
// dropped; it returns how many this call dropped and the last error.
func (s *sender) flushQueue() (unsent int, err error) {
	for i := 0; i < s.qk; {
		m, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.qfd), uintptr(unsafe.Pointer(&s.qmm[i])), uintptr(s.qk-i), 0, 0, 0)
		switch e {
		case 0:
			i += int(m)
			continue
		case unix.EINTR:
			continue
		case unix.EAGAIN, unix.ENOBUFS:
			s.backpressure++
			if s.stopped() {
				n := s.qk - i
				unsent += n
				s.dropped += uint64(n)
				s.qk = 0
				return unsent, errStopped
			}
			if e == unix.EAGAIN {
				p := [1]unix.PollFd{{Fd: int32(s.qfd), Events: unix.POLLOUT}}
				_, _ = unix.Poll(p[:], 20)
			} else {
				time.Sleep(50 * time.Microsecond)
			}
			continue
		}
		unsent++
		s.dropped++
		err = fmt.Errorf("sendmmsg: %w", e)
		i++ // drop this message only
	}
	s.qk = 0
	return unsent, err
}
