package bpf

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TC verdicts.
const (
	actOK       = 0
	actShot     = 2
	actRedirect = 7
)

var (
	peerA   = netip.MustParseAddr("10.0.0.1")
	localB  = netip.MustParseAddr("10.0.0.2")
	macA    = [6]byte{0x02, 0, 0, 0, 0, 0xa}
	macB    = [6]byte{0x02, 0, 0, 0, 0, 0xb}
	testVNI = uint32(4242)
)

// loadObjects loads the collection without pinning; Cleanup closes it.
func loadObjects(tb testing.TB) *SclpObjects {
	tb.Helper()
	return loadObjectsWith(tb, nil)
}

// loadObjectsWith is loadObjects with a hook that edits the spec first.
func loadObjectsWith(tb testing.TB, hook func(*ebpf.CollectionSpec) error) *SclpObjects {
	tb.Helper()
	testbed.RequireRoot(tb)
	spec, err := Spec()
	if err != nil {
		tb.Fatal(err)
	}
	if hook != nil {
		if err := hook(spec); err != nil {
			tb.Fatal(err)
		}
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	spec.Maps[MapExceptions].MaxEntries = 1 << 22
	var objs SclpObjects
	if err := spec.LoadAndAssign(&objs, nil); err != nil {
		tb.Fatalf("load: %v", err)
	}
	tb.Cleanup(func() { objs.Close() })
	// The buckets of unattributed traffic, as offload.Manager creates them.
	addCounters(tb, objs.PortStats, UnattributedKey)
	addCounters(tb, objs.PeerStats, UnattributedKey)
	// Whatever a test runs, the per-port and per-peer counters add up to the host counters
	// (runs before the Close above: cleanups are last in, first out).
	tb.Cleanup(func() { checkBreakdown(tb, &objs) })
	return &objs
}

// addCounters creates a zeroed per-CPU counter entry (as the manager does per port/peer).
func addCounters(tb testing.TB, m *ebpf.Map, key uint32) {
	tb.Helper()
	if err := AddCounters(m, key); err != nil {
		tb.Fatal(err)
	}
}

// be32 returns an IPv4 address as the little-endian load of its network-order bytes, as the
// maps store it.
func be32(a netip.Addr) uint32 {
	b := a.As4()
	return binary.NativeEndian.Uint32(b[:])
}

// addRxPort makes peer known and binds (peer, vni) to ifindex with the given MTU.
func addRxPort(tb testing.TB, o *SclpObjects, peer netip.Addr, vni, ifindex, mtu uint32) {
	tb.Helper()
	addRxPortFlags(tb, o, peer, vni, ifindex, mtu, 0)
}

func addRxPortFlags(tb testing.TB, o *SclpObjects, peer netip.Addr, vni, ifindex, mtu, flags uint32) {
	tb.Helper()
	if err := o.Peers.Put(be32(peer), uint32(1)); err != nil {
		tb.Fatal(err)
	}
	addCounters(tb, o.PeerStats, be32(peer))
	addCounters(tb, o.PortStats, ifindex)
	if err := o.RxPorts.Put(SclpRxKey{Peer: be32(peer), Vni: vni}, SclpRxPort{Ifindex: ifindex, Mtu: mtu, Flags: flags}); err != nil {
		tb.Fatal(err)
	}
}

// innerFrame returns an Ethernet/IPv4/UDP frame of n bytes (n >= 42) with random payload.
func innerFrame(r *rand.Rand, n int) []byte {
	f := make([]byte, n)
	for i := range f {
		f[i] = byte(r.Uint32())
	}
	copy(f[0:6], []byte{0x02, 1, 2, 3, 4, 5})
	copy(f[6:12], []byte{0x02, 6, 7, 8, 9, 10})
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	ip[1] = 0
	binary.BigEndian.PutUint16(ip[2:], uint16(n-14))
	binary.BigEndian.PutUint16(ip[6:], 0x4000)
	ip[8] = 64
	ip[9] = 17
	ip[10], ip[11] = 0, 0
	copy(ip[12:], []byte{192, 168, 1, 1, 192, 168, 1, 2})
	binary.BigEndian.PutUint16(ip[10:], ^sclp.Fold(sclp.Sum(ip[:20], 0)))
	binary.BigEndian.PutUint16(ip[24:], uint16(n-34))
	return f
}

// message returns VXLAN header + frame.
func message(vni uint32, frame []byte) []byte {
	m := make([]byte, sclp.VXLANHeaderLen+len(frame))
	sclp.PutVXLAN(m, vni)
	copy(m[sclp.VXLANHeaderLen:], frame)
	return m
}

// segments cuts msg into native SCLP frames from src to dst at mss.
func segments(tb testing.TB, src, dst netip.Addr, id uint32, msg []byte, mss int) [][]byte {
	tb.Helper()
	var s sclp.Segmenter
	if err := s.Reset(msg, mss, sclp.Header{SrcPort: 50000, DstPort: sclp.VXLANPort, ID: id}); err != nil {
		tb.Fatal(err)
	}
	opts := sclp.PacketOptions{DstMAC: macB, SrcMAC: macA, Src: src, Dst: dst}
	var out [][]byte
	for {
		h, chunk, ok := s.Next()
		if !ok {
			return out
		}
		p, err := sclp.AppendPacket(nil, opts, h, chunk)
		if err != nil {
			tb.Fatal(err)
		}
		out = append(out, p)
	}
}

// packet builds one native SCLP frame with header h (checksum computed) and payload.
func packet(tb testing.TB, src netip.Addr, h sclp.Header, payload []byte) []byte {
	tb.Helper()
	p, err := sclp.AppendPacket(nil, sclp.PacketOptions{DstMAC: macB, SrcMAC: macA, Src: src, Dst: localB}, h, payload)
	if err != nil {
		tb.Fatal(err)
	}
	return p
}

// run runs prog on pkt and returns the verdict and the (possibly rewritten) packet.
func run(tb testing.TB, prog *ebpf.Program, pkt []byte) (uint32, []byte) {
	tb.Helper()
	out := make([]byte, len(pkt)+16384)
	opts := ebpf.RunOptions{Data: pkt, DataOut: out}
	ret, err := prog.Run(&opts)
	if err != nil {
		tb.Fatalf("prog run: %v", err)
	}
	return ret, opts.DataOut
}

// stats reads the summed counters.
func stats(tb testing.TB, o *SclpObjects) Stats {
	tb.Helper()
	s, err := ReadStats(o.Stats)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// onlyCounter checks that delta has exactly the named counters non-zero (with the given
// values); the rest must be 0.
func onlyCounter(tb testing.TB, delta Stats, want map[string]uint64) {
	tb.Helper()
	for name, v := range delta.Map() {
		if v != want[name] {
			tb.Errorf("counter %s = %d, want %d", name, v, want[name])
		}
	}
}

func equalBytes(tb testing.TB, what string, got, want []byte) {
	tb.Helper()
	if !bytes.Equal(got, want) {
		tb.Fatalf("%s: %d bytes differ from the %d expected", what, len(got), len(want))
	}
}

// drainRing discards the records in the exceptions ring.
func drainRing(tb testing.TB, o *SclpObjects) {
	tb.Helper()
	rd, err := ringbuf.NewReader(o.Exceptions)
	if err != nil {
		tb.Fatal(err)
	}
	defer rd.Close()
	rd.SetDeadline(time.Now())
	for {
		if _, err := rd.Read(); err != nil {
			return
		}
	}
}
