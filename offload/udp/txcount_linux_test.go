//go:build linux

package udp

import (
	"errors"
	"net/netip"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// TestQueuedDropsAreSendErrors: one-segment messages waiting in the sender's queue that a
// failed flush discards are send errors, also when the flush that fails is the one a longer
// message (send) or a change of socket (queue) runs first, not only the end of a batch. The
// source socket is an invalid descriptor, so every sendmsg/sendmmsg fails with EBADF; no
// privileges or sockets needed.
func TestQueuedDropsAreSendErrors(t *testing.T) {
	snd, err := newSender(1000, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	p := &port{ids: sclp.NewIDGenerator(1), src: &srcSockets{fds: []int{-1}},
		dst: sockaddr4(netip.MustParseAddrPort("192.0.2.1:4795"))}
	w := &txWorker{p: p, snd: snd}
	small := func() []byte { return make([]byte, sclp.VXLANHeaderLen+100) }
	for i := range 2 {
		if !w.sendMessage(small(), true) {
			t.Fatalf("queueing small message %d failed", i)
		}
	}
	if w.sendMessage(make([]byte, sclp.VXLANHeaderLen+3000), false) {
		t.Fatal("a send on an invalid socket succeeded")
	}
	if got, want := p.tx.sendErrs.Load(), uint64(3); got != want {
		t.Errorf("send errors after 2 queued + 1 failed longer message: %d, want %d (the queued ones were dropped uncounted)", got, want)
	}
	if snd.qk != 0 {
		t.Errorf("queue holds %d messages after a failed flush", snd.qk)
	}
}

// TestQueueOneErrorDropsOneMessage: an error the socket reports once (an ICMP port
// unreachable, which IP_RECVERR turns into ECONNREFUSED on the next send) fails only the
// first message of a sendmmsg; the other queued messages are still sent, as they were when
// every message had its own sendmsg (it used to drop the whole queue).
func TestQueueOneErrorDropsOneMessage(t *testing.T) {
	tx, rx, dst := loopSockets(t)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	// A datagram to a closed port: the ICMP error sets the socket's pending error.
	closed := sockaddr4(netip.MustParseAddrPort("127.0.0.1:9"))
	if _, _, e := unix.Syscall6(unix.SYS_SENDTO, uintptr(tx), uintptr(unsafe.Pointer(&[]byte("x")[0])), 1, 0,
		uintptr(unsafe.Pointer(&closed)), unix.SizeofSockaddrInet4); e != 0 {
		t.Fatal(e)
	}
	p := []unix.PollFd{{Fd: int32(tx), Events: unix.POLLERR}}
	if n, err := unix.Poll(p, 1000); err != nil || n != 1 {
		t.Fatalf("no ICMP error reported on the socket: poll %d %v", n, err)
	}
	const k = 3
	for i := range k {
		msg := make([]byte, sclp.VXLANHeaderLen+100+i)
		if _, err := snd.queue(tx, &dst, msg, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: uint32(i + 1)}); err != nil {
			t.Fatal(err)
		}
	}
	unsent, err := snd.flushQueue()
	if !errors.Is(err, unix.ECONNREFUSED) {
		t.Errorf("flush error %v, want ECONNREFUSED", err)
	}
	got := 0
	buf := make([]byte, 2048)
	for {
		if _, _, err := unix.Recvfrom(rx, buf, unix.MSG_DONTWAIT); err != nil {
			break
		}
		got++
	}
	if unsent != 1 || snd.dropped != 1 || got != k-1 {
		t.Errorf("one pending socket error: %d dropped (counted %d), %d of %d received; want 1 dropped, %d received",
			unsent, snd.dropped, got, k, k-1)
	}
}
