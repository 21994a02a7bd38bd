//go:build linux

package udp

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// NOPACK=1 in the environment turns packing off in this test binary, for A/B runs of the
// benchmarks (docs/performance.md).
func init() { packSends = os.Getenv("NOPACK") == "" }

// tsoFrame45 is the inner frame of a VM's 64 KB TSO frame: 45 MSS of 1448 bytes plus 66 bytes
// of headers, 45 SCLP segments at a 1500-byte underlay (one more than a sendmsg holds).
const tsoFrame45 = 45*1448 + 66

// TestPackedSends sends messages the way the transmit worker does (two frame buffers used in
// turn, the end of each message held until the next) over a real UDP_SEGMENT socket and
// reassembles what arrives with the receive worker: every frame arrives byte-identical and
// in order, the 45-segment messages take about one sendmsg each instead of two, and the
// packed path allocates nothing.
func TestPackedSends(t *testing.T) {
	tx, rx, dst := loopSockets(t)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	rp := &recordPort{}
	ports := new(fallback.PortTable)
	ports.Set(fallback.PortKey{Peer: netip.MustParseAddr("127.0.0.1"), VNI: 9}, rp)
	fw, err := fallback.NewWorker(sclp.Config{}, ports)
	if err != nil {
		t.Fatal(err)
	}
	r := newRxWorker(&rxGroup{local: netip.MustParseAddrPort("127.0.0.1:4795"), ports: ports, expire: time.Second}, rx, fw)
	drain := func() {
		for {
			n, gso, e := r.recv()
			if e != 0 {
				return
			}
			r.split(time.Now(), r.buf[:n], gso)
		}
	}
	rng := rand.New(rand.NewPCG(1, 2))
	bufs := [2][]byte{make([]byte, sclp.MaxMessageLen), make([]byte, sclp.MaxMessageLen)}
	ids := sclp.NewIDGenerator(1)
	var want [][]byte
	sendAll := func(sizes []int) {
		for _, n := range sizes {
			msg := bufs[len(want)%2][:sclp.VXLANHeaderLen+n]
			sclp.PutVXLAN(msg, 9)
			f := msg[sclp.VXLANHeaderLen:]
			copy(f, testTCPFrame(n))
			for i := 54; i < n; i++ {
				f[i] = byte(rng.Uint32())
			}
			want = append(want, append([]byte(nil), f...))
			if _, err := snd.sendPacked(tx, &dst, msg, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: ids.Next()}, true); err != nil {
				t.Fatal(err)
			}
			drain()
		}
	}

	// Steady TCP: 45-segment messages.
	steady := make([]int, 40)
	for i := range steady {
		steady[i] = tsoFrame45
	}
	sendAll(steady)
	if err := snd.flushHeld(); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages of 45 segments: %d sendmsg", len(steady), snd.sends)
	if snd.sends > uint64(len(steady))*21/20+1 {
		t.Errorf("%d sendmsg for %d messages of 45 segments, want about one each (two without packing)", snd.sends, len(steady))
	}
	// Messages that fit one sendmsg (60 KB UDP datagrams over a jumbo inner MTU: 42
	// segments) leave whole, one sendmsg each, so the receiver takes them without a copy.
	sends, zc := snd.sends, fw.Stats().ZeroCopy
	sendAll([]int{60042, 60042, 60042, 60042})
	if got := snd.sends - sends; got != 4 || snd.holding() {
		t.Errorf("4 messages of 42 segments: %d sendmsg (want 4), holding %v", got, snd.holding())
	}
	drain()
	if got := fw.Stats().ZeroCopy - zc; got != 4 {
		t.Errorf("%d of 4 messages that fit one sendmsg arrived zero-copy", got)
	}
	// Everything else: messages of one segment, of exact multiples of the MSS, of 44 and 45
	// segments, the largest, mixed.
	sendAll([]int{100, tsoFrame45, 3000, 44*1460 - 8, tsoFrame45, 1000, 1400, sclp.MaxMessageLen - 8,
		64000, tsoFrame45, 2*1460 - 8, 1452, tsoFrame45, 20000, tsoFrame45})
	if err := snd.flushHeld(); err != nil {
		t.Fatal(err)
	}
	if snd.holding() {
		t.Fatal("segments held after flushHeld")
	}
	drain()
	if len(rp.frames) != len(want) {
		t.Fatalf("%d frames arrived, want %d", len(rp.frames), len(want))
	}
	for i := range want {
		if !bytes.Equal(rp.frames[i], want[i]) {
			t.Fatalf("frame %d (%d bytes) arrived different (%d bytes) or out of order", i, len(want[i]), len(rp.frames[i]))
		}
	}

	// Zero allocations per packed message.
	i := 0
	allocs := testing.AllocsPerRun(100, func() {
		msg := bufs[i%2][:sclp.VXLANHeaderLen+tsoFrame45]
		i++
		if _, err := snd.sendPacked(tx, &dst, msg, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: ids.Next()}, true); err != nil {
			t.Fatal(err)
		}
		for { // keep the receiver's queue short without the reassembler
			if _, err := unix.Read(rx, r.buf); err != nil {
				break
			}
		}
	})
	if allocs != 0 {
		t.Errorf("a packed send allocates %v times per message", allocs)
	}
}

// TestPackedFailureCountsHeld: held segments that a later send fails to deliver belong to a
// message already reported sent, so they count as a dropped message; the sender holds
// nothing afterwards.
func TestPackedFailureCountsHeld(t *testing.T) {
	tx, _, dst := loopSockets(t)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Dup(tx)
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, sclp.VXLANHeaderLen+tsoFrame45)
	if _, err := snd.sendPacked(fd, &dst, msg, sclp.Header{ID: 2}, true); err != nil {
		t.Fatal(err)
	}
	if !snd.holding() {
		t.Fatal("a 45-segment message left nothing held")
	}
	unix.Close(fd)
	if err := snd.flushHeld(); err == nil {
		t.Fatal("flushing to a closed socket succeeded")
	}
	if snd.dropped != 1 || snd.holding() {
		t.Errorf("dropped %d (want 1), still holding %v", snd.dropped, snd.holding())
	}
	// A failing send of a new message behind held segments: the held message is dropped,
	// the new one is the caller's error.
	if fd, err = unix.Dup(tx); err != nil {
		t.Fatal(err)
	}
	if _, err := snd.sendPacked(fd, &dst, msg, sclp.Header{ID: 4}, true); err != nil {
		t.Fatal(err)
	}
	unix.Close(fd)
	if _, err := snd.sendPacked(fd, &dst, msg, sclp.Header{ID: 6}, true); err == nil {
		t.Fatal("send on a closed socket succeeded")
	}
	if snd.dropped != 2 || snd.holding() {
		t.Errorf("dropped %d (want 2), still holding %v", snd.dropped, snd.holding())
	}
}

// TestDroppedFrameKeepsHeldBuffer drives the transmit worker's loop over a socketpair: a
// 45-segment frame A (its end held), a frame the worker drops without sending (truncated),
// then frame C. The held end of A must not be overwritten by the read of C (the worker once
// moved its idea of the held buffer to the dropped frame's, so C's read landed on A's held
// chunks and A arrived with C's bytes: found in review).
func TestDroppedFrameKeepsHeldBuffer(t *testing.T) {
	tx, rx, dst := loopSockets(t)
	sp, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK, 0)
	if err != nil {
		t.Fatal(err)
	}
	unix.SetsockoptInt(sp[0], unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	unix.SetsockoptInt(sp[1], unix.SOL_SOCKET, unix.SO_RCVBUF, 4<<20)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	stopfd, _ := eventFD()
	p := &port{dst: dst, ids: sclp.NewIDGenerator(1), src: &srcSockets{fds: []int{tx}}, stopfd: stopfd}
	p.spec.VNI = 9
	w := &txWorker{p: p, fd: sp[1], snd: snd, buf: make([]byte, frameOff+sclp.MaxMessageLen+64),
		ubuf: make([]byte, sclp.MaxMessageLen)}

	rng := rand.New(rand.NewPCG(1, 2))
	mk := func(n int) []byte {
		f := testTCPFrame(n)
		for i := 54; i < n; i++ {
			f[i] = byte(rng.Uint32())
		}
		return f
	}
	a, c := mk(tsoFrame45), mk(tsoFrame45)
	vh := make([]byte, VnetHdrLen)
	for _, f := range [][]byte{a, make([]byte, 70000), c} {
		if _, err := unix.Write(sp[0], append(append([]byte(nil), vh...), f...)); err != nil {
			t.Fatal(err)
		}
	}
	p.wg.Add(1)
	go w.run()
	time.Sleep(200 * time.Millisecond)
	p.stopping.Store(true)
	signalFD(stopfd)
	p.wg.Wait()
	t.Logf("truncated %d, sent messages %d", p.tx.truncated.Load(), p.tx.messages.Load())

	rp := &recordPort{}
	ports := new(fallback.PortTable)
	ports.Set(fallback.PortKey{Peer: netip.MustParseAddr("127.0.0.1"), VNI: 9}, rp)
	fw, err := fallback.NewWorker(sclp.Config{}, ports)
	if err != nil {
		t.Fatal(err)
	}
	r := newRxWorker(&rxGroup{local: netip.MustParseAddrPort("127.0.0.1:4795"), ports: ports, expire: time.Second}, rx, fw)
	for {
		n, gso, e := r.recv()
		if e != 0 {
			break
		}
		r.split(time.Now(), r.buf[:n], gso)
	}
	if len(rp.frames) != 2 {
		t.Fatalf("%d frames arrived, want 2", len(rp.frames))
	}
	if !bytes.Equal(rp.frames[0], a) {
		d := 0
		for i := range a {
			if rp.frames[0][i] != a[i] {
				d++
			}
		}
		t.Errorf("frame A arrived corrupted: %d of %d bytes differ", d, len(a))
	}
	if !bytes.Equal(rp.frames[1], c) {
		t.Errorf("frame C arrived corrupted")
	}
}
