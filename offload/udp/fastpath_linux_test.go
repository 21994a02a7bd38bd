//go:build linux

package udp

import (
	"testing"
	"time"
)

// TestFastPathUDPAndPing: with the fast path on, ping and 1 KB datagrams (one segment each)
// take the BPF path on the receiving host, arrive intact, and the userspace injection path
// does not carry them.
func TestFastPathUDPAndPing(t *testing.T) {
	p := newPair(t, pairOptions{})
	p.ping(t)
	before := p.dps[1].Stats()
	const n = 1000
	ok, bad, _ := p.udpTransfer(t, n, 1000, 20*time.Microsecond)
	after := p.dps[1].Stats()
	p.dump(t)
	fp := after.FastPath
	t.Logf("fast path on the receiver: %+v", fp)
	if !fp.Loaded {
		t.Fatal("fast path not loaded")
	}
	if bad != 0 || ok < n*95/100 {
		t.Fatalf("udp 1000 B: %d intact, %d corrupt of %d", ok, bad, n)
	}
	fast := after.Ports["sclp1"].RxFastFrames - before.Ports["sclp1"].RxFastFrames
	inj := after.Ports["sclp1"].RxInjectedFrames - before.Ports["sclp1"].RxInjectedFrames
	t.Logf("datagrams: %d intact; frames by BPF %d, by injection %d", ok, fast, inj)
	if fast < uint64(ok) {
		t.Errorf("fast path delivered %d frames, want >= %d", fast, ok)
	}
}
