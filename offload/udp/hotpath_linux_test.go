//go:build linux

package udp

import (
	"encoding/binary"
	"net/netip"
	"strconv"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// countPort counts injected frames without keeping them.
type countPort struct{ n, bytes int }

func (c *countPort) Inject(b []byte) error { c.n++; c.bytes += len(b); return nil }

// chunkPort also takes frames as pieces (the zero-copy path).
type chunkPort struct{ countPort }

func (c *chunkPort) InjectChunks(cs [][]byte) error {
	c.n++
	for _, b := range cs {
		c.bytes += len(b)
	}
	return nil
}

// loopSockets opens, in a fresh namespace, a UDP_GRO receiver and a sender on loopback.
func loopSockets(tb testing.TB) (tx, rx int, dst unix.RawSockaddrInet4) {
	testbed.RequireRoot(tb)
	ns := testbed.NewNS(tb, "udphp")
	err := ns.Do(func() error {
		lo := netip.MustParseAddr("127.0.0.1")
		var err error
		if rx, err = rxSocket(netip.AddrPortFrom(lo, 4795), 64<<20); err != nil {
			return err
		}
		tx, err = txSocket(netip.AddrPortFrom(lo, 50000), 64<<20)
		return err
	})
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { unix.Close(tx); unix.Close(rx) })
	return tx, rx, sockaddr4(netip.MustParseAddrPort("127.0.0.1:4795"))
}

// TestSendAndSplitAllocs proves the segment+sendmsg path and the receive split+reassemble
// path allocate nothing per message, with a real UDP_SEGMENT send and UDP_GRO receive.
func TestSendAndSplitAllocs(t *testing.T) {
	t.Run("reassembler", func(t *testing.T) { testSendAndSplitAllocs(t, &countPort{}) })
	t.Run("zerocopy", func(t *testing.T) { testSendAndSplitAllocs(t, &chunkPort{}) })
}

func testSendAndSplitAllocs(t *testing.T, port interface {
	fallback.Port
	counts() (int, int)
}) {
	tx, rx, dst := loopSockets(t)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	msg := make([]byte, 8+64000)
	sclp.PutVXLAN(msg, 9)
	copy(msg[8:], testTCPFrame(63986))
	ports := new(fallback.PortTable)
	ports.Set(fallback.PortKey{Peer: netip.MustParseAddr("127.0.0.1"), VNI: 9}, port)
	w, _ := fallback.NewWorker(sclp.Config{}, ports)
	g := &rxGroup{local: netip.MustParseAddrPort("127.0.0.1:4795"), ports: ports, expire: time.Second}
	r := newRxWorker(g, rx, w)
	ids := sclp.NewIDGenerator(1)
	var segs int
	sendAllocs := testing.AllocsPerRun(200, func() {
		n, err := snd.send(tx, &dst, msg, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: ids.Next()})
		if err != nil {
			t.Fatal(err)
		}
		segs = n
	})
	// Drain what arrived: GRO batches of segments.
	now := time.Now()
	batches := 0
	recvAllocs := testing.AllocsPerRun(1, func() {
		for {
			n, gso, e := r.recv()
			if e != 0 {
				return
			}
			batches++
			r.split(now, r.buf[:n], gso)
		}
	})
	n, by := port.counts()
	zc := w.Stats().ZeroCopy
	t.Logf("%d segments per message; %d messages delivered (%d zero-copy) from %d recvmsg calls (%d bytes each)",
		segs, n, zc, batches, by/max(n, 1))
	if sendAllocs != 0 {
		t.Errorf("segment+sendmsg allocates %v times per message", sendAllocs)
	}
	if recvAllocs != 0 {
		t.Errorf("recvmsg+split+reassemble allocates %v times for %d batches", recvAllocs, batches)
	}
	if n < 150 || by/max(n, 1) != 64000 {
		t.Errorf("delivered %d messages of %d bytes; want about 201 of 64000", n, by/max(n, 1))
	}
	if _, ok := port.(fallback.ChunkPort); ok != (zc > 0) {
		t.Errorf("zero-copy deliveries %d with a chunk port: %v", zc, ok)
	}
}

// BenchmarkSend measures one 64 KB message cut into 44 segments and sent with UDP_SEGMENT.
func BenchmarkSend(b *testing.B) {
	tx, rx, dst := loopSockets(b)
	snd, _ := newSender(1460, func() bool { return false })
	msg := make([]byte, 8+64000)
	buf := make([]byte, rxBufLen)
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		if _, err := snd.send(tx, &dst, msg, sclp.Header{ID: uint32(i) << 1}); err != nil {
			b.Fatal(err)
		}
		for { // keep the receiver empty
			if _, err := unix.Read(rx, buf); err != nil {
				break
			}
		}
	}
}

// TestRestartDuringTraffic restarts the receiving datapath while TCP runs: the transfer
// completes byte-identical (TCP retransmits what was lost) and the stop reports the partial
// messages it lost.
func TestRestartDuringTraffic(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)
	done := make(chan float64, 1)
	go func() {
		defer close(done)
		done <- p.tcpTransfer(t, 64<<20, 64<<10)
	}()
	for _, h := range []int{1, 0} { // the receiver's datapath, then the sender's
		old := p.dps[h]
		for i := 0; i < 100 && old.Stats().Reassembly.InjectedFrames < 300; i++ {
			time.Sleep(20 * time.Millisecond) // restart while traffic flows
		}
		sent := old.Stats().Ports["sclp"+strconv.Itoa(h)].TxFrames
		if err := old.Close(); err != nil {
			t.Fatal(err)
		}
		st := old.Stats()
		t.Logf("stopped host %d's datapath: %d frames injected, %d sent, %d partial messages lost on stop",
			h, st.Reassembly.InjectedFrames, sent, st.Reassembly.LostOnStop)
		time.Sleep(100 * time.Millisecond)
		p.start(t, h)
	}
	gbps, ok := <-done
	if !ok {
		t.Fatal("transfer failed")
	}
	t.Logf("64 MB crossed intact through two datapath restarts (%.2f Gbit/s average)", gbps)
}

func (c *countPort) counts() (int, int) { return c.n, c.bytes }

// testTCPFrame is an Ethernet+IPv4+TCP frame of n bytes in total.
func testTCPFrame(n int) []byte {
	f := make([]byte, n)
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0], ip[9] = 0x45, 6
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	ip[20+12] = 5 << 4
	return f
}

// TestQueueAllocs: one-segment messages queued and sent with one sendmmsg allocate nothing,
// and every queued message arrives (as one datagram each, in order).
func TestQueueAllocs(t *testing.T) {
	tx, rx, dst := loopSockets(t)
	snd, err := newSender(1460, func() bool { return false })
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([][]byte, sendBatch+3) // more than one sendmmsg's worth
	for i := range msgs {
		msgs[i] = make([]byte, 8+100+i)
		sclp.PutVXLAN(msgs[i], 9)
	}
	ids := sclp.NewIDGenerator(1)
	allocs := testing.AllocsPerRun(50, func() {
		for _, m := range msgs {
			if _, err := snd.queue(tx, &dst, m, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: ids.Next()}); err != nil {
				t.Fatal(err)
			}
		}
		if _, err := snd.flushQueue(); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("queue+sendmmsg allocates %v times per batch", allocs)
	}
	buf := make([]byte, 70000)
	got := 0
	for {
		n, _, err := unix.Recvfrom(rx, buf, unix.MSG_DONTWAIT)
		if err != nil {
			break
		}
		// UDP GRO may merge equal-size datagrams; sizes here differ, so one per read.
		if want := sclp.HeaderLen + len(msgs[got%len(msgs)]); n != want {
			t.Fatalf("datagram %d: %d bytes, want %d", got, n, want)
		}
		got++
	}
	if want := 51 * len(msgs); got != want { // AllocsPerRun runs the function once more
		t.Errorf("received %d datagrams, want %d", got, want)
	}
}
