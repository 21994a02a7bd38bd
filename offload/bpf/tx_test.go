package bpf

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// txBed is a namespace with a veth pair ul0 <-> cap0: the tx program (run through
// BPF_PROG_TEST_RUN inside the namespace, where the test skb arrives on lo, ifindex 1)
// clone-redirects segments out of ul0, and a packet socket on cap0 captures them.
type txBed struct {
	o    *SclpObjects
	ns   *testbed.NS
	sock int
}

func newTxBed(t testing.TB, mss int) *txBed {
	t.Helper()
	o := loadObjects(t)
	ns := testbed.NewNS(t, "bpftx")
	ns.MustRun(t, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1")
	ns.MustRun(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "cap0")
	ns.MustRun(t, "ip", "link", "set", "ul0", "up")
	ns.MustRun(t, "ip", "link", "set", "cap0", "up")
	b := &txBed{o: o, ns: ns, sock: -1}
	err := ns.Do(func() error {
		ul, err := net.InterfaceByName("ul0")
		if err != nil {
			return err
		}
		capIf, err := net.InterfaceByName("cap0")
		if err != nil {
			return err
		}
		port := SclpTxPort{Vni: testVNI, Local: be32(localB), Peer: be32(peerA), Ifindex: uint32(ul.Index),
			Mss: uint16(mss), Ttl: 33, Tos: 0x10, Dmac: macA, Smac: macB}
		if err := o.TxPorts.Put(uint32(1), port); err != nil {
			return err
		}
		if err := AddCounters(o.PortStats, 1); err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		b.sock = fd
		tv := unix.Timeval{Usec: 200000}
		if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return err
		}
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 8<<20); err != nil {
			return err
		}
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: capIf.Index})
	})
	if b.sock >= 0 {
		t.Cleanup(func() { unix.Close(b.sock) })
	}
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// send runs the tx program on frame and returns the verdict and every segment it produced,
// in order: the clones captured on cap0, then the redirected last one from the run output.
func (b *txBed) send(t testing.TB, frame []byte) (uint32, [][]byte) {
	t.Helper()
	var ret uint32
	var last []byte
	err := b.ns.Do(func() error {
		opts := ebpf.RunOptions{Data: append([]byte(nil), frame...), DataOut: make([]byte, 70000)}
		var err error
		ret, err = b.o.SclpTx.Run(&opts)
		last = opts.DataOut
		return err
	})
	if err != nil {
		t.Fatalf("run on %d-byte frame %x: %v", len(frame), frame[:min(len(frame), 40)], err)
	}
	if ret != actRedirect {
		return ret, nil
	}
	want := sclp.SegmentCount(len(frame)+sclp.VXLANHeaderLen, int(b.mss(t)))
	segs := b.capture(t, want-1)
	return ret, append(segs, last)
}

func (b *txBed) mss(t testing.TB) uint16 {
	var p SclpTxPort
	if err := b.o.TxPorts.Lookup(uint32(1), &p); err != nil {
		t.Fatal(err)
	}
	return p.Mss
}

// capture reads n SCLP frames from cap0 (other frames are skipped).
func (b *txBed) capture(t testing.TB, n int) [][]byte {
	t.Helper()
	var segs [][]byte
	buf := make([]byte, 70000)
	deadline := time.Now().Add(3 * time.Second)
	for len(segs) < n && time.Now().Before(deadline) {
		k, _, err := unix.Recvfrom(b.sock, buf, 0)
		if err != nil {
			continue
		}
		f := buf[:k]
		if k >= 34 && binary.BigEndian.Uint16(f[12:]) == 0x0800 && f[23] == sclp.IPProtocol {
			segs = append(segs, append([]byte(nil), f...))
		}
	}
	if len(segs) != n {
		t.Fatalf("captured %d of %d clones", len(segs), n)
	}
	return segs
}

// checkSegments parses segs with the Go codec and reassembles them; it returns the message.
func checkSegments(t testing.TB, segs [][]byte, frame []byte, mss int) []byte {
	t.Helper()
	if want := sclp.SegmentCount(len(frame)+sclp.VXLANHeaderLen, mss); len(segs) != want {
		t.Fatalf("%d segments, want %d", len(segs), want)
	}
	ra, err := sclp.NewReassembler(sclp.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	var msg []byte
	var id uint32
	for i, s := range segs {
		if len(s) > mss+46 {
			t.Fatalf("segment %d: %d bytes above mss %d + 46", i, len(s), mss)
		}
		if [6]byte(s[0:6]) != macA || [6]byte(s[6:12]) != macB {
			t.Fatalf("segment %d: MACs %x %x", i, s[0:6], s[6:12])
		}
		if s[14+1] != 0x10 || s[14+8] != 33 || binary.BigEndian.Uint16(s[14+6:]) != 0x4000 {
			t.Fatalf("segment %d: tos %#x ttl %d frag %#x", i, s[15], s[22], s[20:22])
		}
		p, err := sclp.ParseFrame(s, sclp.ParseOptions{Verify: true})
		if err != nil {
			t.Fatalf("segment %d: %v", i, err)
		}
		if p.Src != localB || p.Dst != peerA || p.Header.DstPort != sclp.VXLANPort {
			t.Fatalf("segment %d: %v -> %v port %d", i, p.Src, p.Dst, p.Header.DstPort)
		}
		if sp := sclp.SourcePort(frame); p.Header.SrcPort != sp {
			t.Fatalf("segment %d: source port %d, Go SourcePort %d", i, p.Header.SrcPort, sp)
		}
		if i == 0 {
			id = p.Header.ID
		} else if p.Header.ID != id {
			t.Fatalf("segment %d: id %#x, first %#x", i, p.Header.ID, id)
		}
		if p.Header.First != (i == 0) {
			t.Fatalf("segment %d: first=%v", i, p.Header.First)
		}
		m, res := ra.Add(time.Now(), p.Piece())
		if res.Status == sclp.Completed {
			msg = append([]byte(nil), m.Payload...)
			ra.Release(m)
		}
	}
	return msg
}

func TestTxSegments(t *testing.T) {
	for _, mss := range []int{1468, 512, 8968} {
		t.Run(fmt.Sprint("mss", mss), func(t *testing.T) {
			b := newTxBed(t, mss)
			r := rand.New(rand.NewPCG(uint64(mss), 9))
			for _, n := range []int{42, 60, 500, 1459, 1460, 1461, 2000, 2936, 3600} {
				frame := innerFrame(r, n)
				before := stats(t, b.o)
				ret, segs := b.send(t, frame)
				if ret != actRedirect {
					t.Fatalf("frame %d: verdict %d; stats %+v", n, ret, stats(t, b.o).Sub(before))
				}
				msg := checkSegments(t, segs, frame, mss)
				equalBytes(t, fmt.Sprintf("frame %d reassembled", n), msg, message(testVNI, frame))
				wire := 0
				for _, s := range segs {
					wire += len(s)
				}
				onlyCounter(t, stats(t, b.o).Sub(before), map[string]uint64{
					"tx_messages": 1, "tx_segments": uint64(len(segs)), "tx_bytes": uint64(n),
					"tx_wire_bytes": uint64(wire),
				})
			}
		})
	}
}

func TestTxIDsAreFresh(t *testing.T) {
	b := newTxBed(t, 1468)
	r := rand.New(rand.NewPCG(10, 11))
	seen := map[uint32]bool{}
	for i := 0; i < 50; i++ {
		_, segs := b.send(t, innerFrame(r, 100))
		p, err := sclp.ParseFrame(segs[0], sclp.ParseOptions{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if seen[p.Header.ID] {
			t.Fatalf("id %#x repeated after %d messages", p.Header.ID, i)
		}
		seen[p.Header.ID] = true
	}
}

// TestTxSourcePortMatchesGo is the differential test of the flow hash: random frames of
// every shape SourcePort distinguishes (IPv4/IPv6, TCP/UDP/SCTP/other, fragments, VLAN tags,
// truncated headers), BPF and Go must agree on every one.
func TestTxSourcePortMatchesGo(t *testing.T) {
	b := newTxBed(t, 1468)
	r := rand.New(rand.NewPCG(12, 13))
	for i := 0; i < 400; i++ {
		frame := randomFlowFrame(r)
		ret, segs := b.send(t, frame)
		if ret != actRedirect || len(segs) != 1 {
			t.Fatalf("frame %d (%d bytes): verdict %d, %d segments", i, len(frame), ret, len(segs))
		}
		p, err := sclp.ParseFrame(segs[0], sclp.ParseOptions{Verify: true})
		if err != nil {
			t.Fatal(err)
		}
		if want := sclp.SourcePort(frame); p.Header.SrcPort != want {
			t.Fatalf("frame %d %x: BPF port %d, Go %d", i, frame[:min(len(frame), 64)], p.Header.SrcPort, want)
		}
	}
}

// randomFlowFrame returns a random frame of 64..400 bytes with plausible headers. (The
// kernel's test run refuses IP frames shorter than their L3 header, so frames are at least
// 64 bytes; truncated L4 headers still occur behind VLAN tags and IPv4 options.)
func randomFlowFrame(r *rand.Rand) []byte {
	f := make([]byte, 64+r.IntN(337))
	for i := range f {
		f[i] = byte(r.Uint32())
	}
	p := 12
	if r.IntN(4) == 0 && len(f) >= p+6 {
		binary.BigEndian.PutUint16(f[p:], []uint16{0x8100, 0x88a8}[r.IntN(2)])
		p += 4
		if r.IntN(2) == 0 && len(f) >= p+6 {
			binary.BigEndian.PutUint16(f[p:], 0x8100)
			p += 4
		}
	}
	switch r.IntN(4) {
	case 0, 1:
		binary.BigEndian.PutUint16(f[p:], 0x0800)
		if ip := f[p+2:]; len(ip) > 0 {
			ip[0] = 0x40 | byte(5+r.IntN(3)*r.IntN(2))
			if len(ip) > 9 {
				ip[9] = []byte{6, 17, 132, 1}[r.IntN(4)]
			}
			if len(ip) > 7 && r.IntN(3) > 0 {
				ip[6], ip[7] = 0x40, 0
			}
		}
	case 2:
		binary.BigEndian.PutUint16(f[p:], 0x86dd)
		if ip := f[p+2:]; len(ip) > 6 {
			ip[0] = 0x60
			ip[6] = []byte{6, 17, 132, 58}[r.IntN(4)]
		}
	}
	return f
}
