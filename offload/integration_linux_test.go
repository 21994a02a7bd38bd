package offload

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// checkWire asserts that host 1's underlay received protocol-234 segments only as real
// frames of at most 1514 bytes (1500-byte IP packets).
func checkWire(t *testing.T, w *wireCapture) { checkWireMTU(t, w, 1500) }

func checkWireMTU(t *testing.T, w *wireCapture, mtu int) {
	t.Helper()
	n, maxLen := w.counts()
	if n == 0 || maxLen > mtu+14 {
		t.Fatalf("wire: %d SCLP frames, largest %d bytes (want >0, <= %d)", n, maxLen, mtu+14)
	}
	t.Logf("wire: %d SCLP frames, largest %d bytes", n, maxLen)
}

func TestNativePingTCPUDP(t *testing.T) {
	for _, txOff := range []bool{false, true} {
		name := "tx_on"
		if txOff {
			name = "tx_off"
		}
		t.Run(name, func(t *testing.T) {
			b := newNativeBed(t, bedOptions{TxChecksumOff: txOff})
			w := b.capture(1)
			before := b.stats(1)
			for _, size := range []int{56, 1000, b.innerMTU - 28} {
				st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: 5, Interval: 20 * time.Millisecond, Size: size, DF: true})
				if err != nil {
					t.Fatalf("ping size %d: %v (%v)", size, err, st)
				}
			}
			b.tcpTransfer(4<<20, 1)
			if got := b.udpExchange(300, 1400); got < 290 {
				t.Fatalf("udp: %d of 300 datagrams arrived", got)
			}
			checkWire(t, w)
			tx, rx := b.stats(0), b.stats(1).Sub(before)
			t.Logf("host0 %+v", tx)
			t.Logf("host1 delta %+v", rx)
			if rx.RxFast == 0 || rx.RxDropBadChecksum != 0 || rx.RxExcMulti != 0 || tx.TxDropError != 0 || tx.TxDropCsum != 0 {
				t.Fatalf("unexpected counters: host0 %+v host1 %+v", tx, rx)
			}
			// A VM with tx checksum offload sends CHECKSUM_PARTIAL TCP/UDP: the tx program
			// must have finalised those and cleared PARTIAL (else tx off corrupts SCLP bytes).
			if tx.TxCsumFinalized == 0 {
				t.Fatalf("no CHECKSUM_PARTIAL frame was finalised: %+v", tx)
			}
		})
	}
}

// TestNativeLargeFrames: VMs with TSO send 64 KB frames; the wire carries them as 1500-byte
// segments, the receiving BPF program hands them to offload/fallback, which reassembles and
// injects GSO frames: the receiving VM gets fewer, larger frames, byte-identical.
func TestNativeLargeFrames(t *testing.T) {
	for _, txOff := range []bool{false, true} {
		name := "tx_on"
		if txOff {
			name = "tx_off"
		}
		t.Run(name, func(t *testing.T) {
			b := newNativeBed(t, bedOptions{TxChecksumOff: txOff, VMOffloads: true, Fallback: true})
			w := b.capture(1)
			vmBefore := rxPackets(t, b.vms[1].NS, b.vms[1].Dev)
			before := b.stats(1)
			b.tcpTransfer(32<<20, 2)
			checkWire(t, w)
			segs, _ := w.counts()
			vmFrames := rxPackets(t, b.vms[1].NS, b.vms[1].Dev) - vmBefore
			tx, rx := b.stats(0), b.stats(1).Sub(before)
			t.Logf("host0 %+v", tx)
			t.Logf("host1 delta %+v; VM received %d frames for %d wire segments", rx, vmFrames, segs)
			if tx.TxSegments <= tx.TxMessages || rx.RxExcMulti == 0 || rx.RxDropBadChecksum != 0 || rx.RxRingFull != 0 {
				t.Fatalf("unexpected counters: host0 %+v host1 %+v", tx, rx)
			}
			if vmFrames*2 > segs {
				t.Fatalf("receiving VM got %d frames for %d segments: not merged", vmFrames, segs)
			}
		})
	}
}

// TestNativeRestartAndReload: a continuous ping loses nothing while the managers close and
// restart (adopting pinned links and maps, replacing programs in place) and reload.
func TestNativeRestartAndReload(t *testing.T) {
	b := newNativeBed(t, bedOptions{})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	type result struct {
		st  testbed.PingStats
		err error
	}
	res := make(chan result, 1)
	go func() {
		st, err := b.vms[0].PingContext(ctx, b.vms[1].IP, testbed.PingOptions{Interval: 5 * time.Millisecond, Timeout: time.Second})
		res <- result{st, err}
	}()
	time.Sleep(300 * time.Millisecond)
	for round := 0; round < 3; round++ {
		for i := range b.hosts {
			old := b.manager(i)
			if err := old.Close(); err != nil {
				t.Fatal(err)
			}
			m, err := NewManager(b.opts[i])
			if err != nil {
				t.Fatalf("restart %d: %v", i, err)
			}
			b.mu.Lock()
			b.mgrs[i] = m
			b.mu.Unlock()
			if got := m.Ports(); len(got) != 1 || got[0] != b.specs[i] {
				t.Fatalf("adopted ports %+v, want %+v", got, b.specs[i])
			}
			// The controller's resync after a restart: idempotent.
			if err := m.EnsurePort(context.Background(), b.specs[i]); err != nil {
				t.Fatal(err)
			}
			time.Sleep(100 * time.Millisecond)
			if err := m.Reload(); err != nil {
				t.Fatalf("reload %d: %v", i, err)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	time.Sleep(300 * time.Millisecond)
	cancel()
	r := <-res
	t.Logf("ping: %v", r.st)
	if r.st.Sent < 100 || r.st.Received != r.st.Sent {
		t.Fatalf("ping during restarts: %v (%v)", r.st, r.err)
	}
}

func TestNativePortLifecycle(t *testing.T) {
	b := newNativeBed(t, bedOptions{})
	m := b.manager(0)
	ctx := context.Background()
	spec := b.specs[0]
	if err := m.EnsurePort(ctx, spec); err != nil {
		t.Fatalf("ensure twice: %v", err)
	}
	conflict := spec
	conflict.Name = "other"
	if err := m.EnsurePort(ctx, conflict); !errorsIs(err, ErrConflict) {
		t.Fatalf("conflicting port: %v", err)
	}
	missing := spec
	missing.Name, missing.PeerName, missing.VNI = "gone", "nosuchdev", 9
	if err := m.EnsurePort(ctx, missing); !errorsIs(err, ErrNoDevice) {
		t.Fatalf("missing device: %v", err)
	}
	udp := spec
	udp.Mode = ModeUDP
	if err := m.EnsurePort(ctx, udp); !errorsIs(err, ErrUnsupportedMode) {
		t.Fatalf("udp mode: %v", err)
	}
	if err := m.RemovePort(ctx, spec.Name); err != nil {
		t.Fatal(err)
	}
	if err := m.RemovePort(ctx, spec.Name); err != nil {
		t.Fatalf("remove twice: %v", err)
	}
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: 2, Interval: 50 * time.Millisecond, Timeout: 300 * time.Millisecond}); err == nil {
		t.Fatalf("ping through a removed port succeeded: %v", st)
	}
	if err := m.EnsurePort(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: 3, Interval: 50 * time.Millisecond}); err != nil {
		t.Fatalf("ping after re-adding the port: %v (%v)", err, st)
	}
}

// TestNativeChecksumTrapIsReal is the negative control of the checksum fix: with the fix
// switched off and tx checksumming off on the underlay, the kernel writes the VM's L4
// checksum into SCLP bytes and the receiver drops the segments as bad_checksum. (With the
// fix, TestNativePingTCPUDP/tx_off delivers everything.)
func TestNativeChecksumTrapIsReal(t *testing.T) {
	b := newNativeBed(t, bedOptions{TxChecksumOff: true, NoCsumFix: true})
	before := b.stats(1)
	got := b.udpExchange(50, 1000)
	d := b.stats(1).Sub(before)
	t.Logf("without the fix: %d of 50 datagrams arrived; receiver %+v", got, d)
	if d.RxDropBadChecksum == 0 || got == 50 {
		t.Fatalf("the checksum trap did not show: %d of 50 arrived, %d bad checksums", got, d.RxDropBadChecksum)
	}
}

// TestNativeJumboUnderlay: a 9000-byte underlay (MSS 8968, inner MTU 8946): frames up to
// 8960 bytes take the fast path in one segment, 64 KB TSO frames go through the fallback.
func TestNativeJumboUnderlay(t *testing.T) {
	b := newNativeBed(t, bedOptions{MTU: 9000, VMOffloads: true, Fallback: true})
	w := b.capture(1)
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: 3, Interval: 20 * time.Millisecond, Size: b.innerMTU - 28, DF: true}); err != nil {
		t.Fatalf("ping %d: %v (%v)", b.innerMTU-28, err, st)
	}
	before := b.stats(1)
	b.tcpTransfer(16<<20, 3)
	checkWireMTU(t, w, 9000)
	_, maxLen := w.counts()
	d := b.stats(1).Sub(before)
	t.Logf("largest wire frame %d; receiver %+v", maxLen, d)
	if maxLen <= 1514 || d.RxExcMulti == 0 || d.RxDropBadChecksum != 0 {
		t.Fatalf("jumbo underlay not used as expected: largest %d, %+v", maxLen, d)
	}
}

// TestNativeLegacyClsact: the clsact fallback for kernels without TCX (forced here) carries
// traffic, survives a manager restart and a reload under ping, and Uninstall removes it.
func TestNativeLegacyClsact(t *testing.T) {
	b := newNativeBed(t, bedOptions{Legacy: true})
	for i, h := range b.hosts {
		out := h.MustRun(t, "tc", "filter", "show", "dev", b.vms[i].HostDev, "ingress")
		if !strings.Contains(out, "sclp_tx") || !strings.Contains(out, "direct-action") {
			t.Fatalf("no clsact filter on %s: %s", b.vms[i].HostDev, out)
		}
		if out := h.MustRun(t, "bpftool", "net", "show", "dev", h.Underlay); strings.Contains(out, "tcx") {
			t.Fatalf("legacy mode attached with TCX: %s", out)
		}
	}
	b.tcpTransfer(2<<20, 4)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	res := make(chan testbed.PingStats, 1)
	go func() {
		st, _ := b.vms[0].PingContext(ctx, b.vms[1].IP, testbed.PingOptions{Interval: 5 * time.Millisecond, Timeout: time.Second})
		res <- st
	}()
	time.Sleep(200 * time.Millisecond)
	for i := range b.hosts {
		if err := b.manager(i).Close(); err != nil {
			t.Fatal(err)
		}
		m, err := NewManager(b.opts[i])
		if err != nil {
			t.Fatal(err)
		}
		b.mu.Lock()
		b.mgrs[i] = m
		b.mu.Unlock()
		if got := m.Ports(); len(got) != 1 || got[0] != b.specs[i] {
			t.Fatalf("adopted ports %+v", got)
		}
		if err := m.Reload(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	cancel()
	st := <-res
	if st.Sent < 50 || st.Received != st.Sent {
		t.Fatalf("ping across legacy restart: %v", st)
	}
	if err := b.manager(0).Uninstall(); err != nil {
		t.Fatal(err)
	}
	if out := b.hosts[0].MustRun(t, "tc", "filter", "show", "dev", b.vms[0].HostDev, "ingress"); strings.Contains(out, "sclp_tx") {
		t.Fatalf("filter left after Uninstall: %s", out)
	}
}

// TestNativeJumboOverlay: VM MTU 8000 over a 1500-byte underlay. Frames of up to 8014 bytes
// cross as up to 6 segments; the rx program reassembles them in BPF and delivers each as ONE
// frame (no userspace), so the receiving VM gets fewer, larger frames than the wire carried.
func TestNativeJumboOverlay(t *testing.T) {
	b := newNativeBed(t, bedOptions{InnerMTU: 8000, Fallback: true})
	w := b.capture(1)
	if st, err := b.vms[0].PingWith(b.vms[1].IP, testbed.PingOptions{Count: 3, Interval: 20 * time.Millisecond, Size: 8000 - 28, DF: true}); err != nil {
		t.Fatalf("ping 7972: %v (%v)", err, st)
	}
	vmBefore := rxPackets(t, b.vms[1].NS, b.vms[1].Dev)
	before := b.stats(1)
	b.tcpTransfer(16<<20, 5)
	checkWire(t, w)
	segs, _ := w.counts()
	vmFrames := rxPackets(t, b.vms[1].NS, b.vms[1].Dev) - vmBefore
	d := b.stats(1).Sub(before)
	t.Logf("receiver %+v; VM received %d frames for %d wire segments", d, vmFrames, segs)
	if d.RxMerged == 0 || d.RxDropBadChecksum != 0 || vmFrames*3 > segs {
		t.Fatalf("BPF reassembly did not carry the jumbo overlay: %d VM frames, %d segments, %+v", vmFrames, segs, d)
	}
}
