//go:build linux

package testbed

import (
	"encoding/binary"
	"net"
	"net/netip"
	"slices"
	"sync"
	"testing"
	"time"
)

// TestImpairerDeterministic: ten numbered UDP datagrams through the impairer, with matched
// frame 3 dropped, 5 duplicated and 7 held behind 8, arrive exactly as 1 2 4 5 5 6 8 7 9 10;
// the other direction and unmatched traffic (ARP, another port) pass untouched.
func TestImpairerDeterministic(t *testing.T) {
	RequireRoot(t)
	const port = 4999
	var mu sync.Mutex
	var seen []ImpairAction
	hosts, im := NewImpairedHosts(t, HostsOptions{}, ImpairConfig{
		Match: MatchUDPDstPort(port), Drop: Numbers(3), Duplicate: Numbers(5), Reorder: Every(7),
		OneWay: true,
		OnFrame: func(_ Direction, _ uint64, act ImpairAction, _ []byte) {
			mu.Lock()
			seen = append(seen, act)
			mu.Unlock()
		},
	})
	dst := netip.AddrPortFrom(hosts[1].IP, port)
	var rc, sc *net.UDPConn
	if err := hosts[1].Do(func() (err error) {
		rc, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if err := hosts[0].Do(func() (err error) {
		sc, err = net.DialUDP("udp4", &net.UDPAddr{IP: hosts[0].IP.AsSlice(), Port: port}, net.UDPAddrFromAddrPort(dst))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	// Resolve neighbours first (ARP is relayed untouched), so the datagrams leave back to back.
	if out, err := hosts[0].Ping(hosts[1].IP, 1); err != nil {
		t.Log(out)
		t.Fatal(err)
	}
	var b [4]byte
	for i := range 10 {
		binary.BigEndian.PutUint32(b[:], uint32(i+1))
		if _, err := sc.Write(b[:]); err != nil {
			t.Fatal(err)
		}
	}
	for i := range 3 { // b->a is not impaired (OneWay)
		binary.BigEndian.PutUint32(b[:], uint32(100+i))
		if _, err := rc.WriteToUDPAddrPort(b[:], netip.AddrPortFrom(hosts[0].IP, port)); err != nil {
			t.Fatal(err)
		}
	}
	var got []uint32
	buf := make([]byte, 64)
	for len(got) < 10 {
		rc.SetReadDeadline(time.Now().Add(time.Second))
		n, err := rc.Read(buf)
		if err != nil {
			break
		}
		got = append(got, binary.BigEndian.Uint32(buf[:n]))
	}
	var ret []uint32
	for len(ret) < 3 {
		sc.SetReadDeadline(time.Now().Add(time.Second))
		n, err := sc.Read(buf)
		if err != nil {
			break
		}
		ret = append(ret, binary.BigEndian.Uint32(buf[:n]))
	}
	if want := []uint32{1, 2, 4, 5, 5, 6, 8, 7, 9, 10}; !slices.Equal(got, want) {
		t.Errorf("a->b received %v, want %v", got, want)
	}
	if want := []uint32{100, 101, 102}; !slices.Equal(ret, want) {
		t.Errorf("b->a received %v, want %v", ret, want)
	}
	a, r := im.Counters(AtoB), im.Counters(BtoA)
	if a.Matched != 10 || a.Dropped != 1 || a.Duplicated != 1 || a.Reordered != 1 || a.Missed != 0 || r.Matched != 0 || r.Relayed < 3 {
		t.Errorf("counters a->b %+v, b->a %+v", a, r)
	}
	mu.Lock()
	defer mu.Unlock()
	want := []ImpairAction{Forward, Forward, Drop, Forward, Duplicate, Forward, Reorder, Forward, Forward, Forward}
	if !slices.Equal(seen, want) {
		t.Errorf("OnFrame saw %v, want %v", seen, want)
	}
}
