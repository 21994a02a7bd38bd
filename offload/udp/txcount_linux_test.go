//go:build linux

package udp

import (
	"net/netip"
	"testing"

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
