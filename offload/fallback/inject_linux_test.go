//go:build linux

package fallback

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// TestInjectGSO writes a 64 KB TCP frame into a 1500-MTU veth and checks that the peer
// receives it whole, as one GSO packet with the segment size derived from the MTU.
func TestInjectGSO(t *testing.T) {
	testbed.RequireRoot(t)
	ns := testbed.NewNS(t, "inj")
	testbed.Link(t, ns, "inja", ns, "injb")
	err := ns.Do(func() error {
		in, err := NewInjector(InjectorOptions{Interface: "inja", MTU: 1500})
		if err != nil {
			return err
		}
		defer in.Close()
		rx := openCapture(t, "injb")
		defer unix.Close(rx)
		frame := testFrame(protoTCP, 64000, 0)
		want := append([]byte(nil), frame...)
		if err := in.Inject(frame); err != nil {
			return err
		}
		buf := make([]byte, 70000)
		n, err := recvTimeout(rx, buf, time.Second)
		if err != nil {
			return err
		}
		var h VnetHdr
		_ = h.UnmarshalBinary(buf)
		got := buf[VnetHdrLen:n]
		if h.GSOType != VnetGSOTCPv4 || h.GSOSize != 1460 {
			t.Errorf("received vnet header %+v, want TCPV4 gso_size 1460", h)
		}
		if len(got) != len(want) || !bytes.Equal(got[54:], want[54:]) || !bytes.Equal(got[:50], want[:50]) {
			t.Errorf("received %d bytes, want %d identical (apart from the checksum)", len(got), len(want))
		}
		if f, b, e := in.Counters(); f != 1 || b != uint64(len(want)) || e != 0 {
			t.Errorf("counters %d/%d/%d", f, b, e)
		}
		// A 60 KB UDP frame cannot be GSO: refused before the write, and counted.
		if err := in.Inject(testFrame(protoUDP, 60000, 0)); !errors.Is(err, ErrFrameTooLarge) {
			t.Errorf("oversized UDP inject: %v", err)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestInjectAllocs(t *testing.T) {
	testbed.RequireRoot(t)
	ns := testbed.NewNS(t, "inj")
	testbed.Link(t, ns, "inja", ns, "injb")
	err := ns.Do(func() error {
		in, err := NewInjector(InjectorOptions{Interface: "inja", MTU: 1500})
		if err != nil {
			return err
		}
		defer in.Close()
		frame := testFrame(protoTCP, 64000, 0)
		if n := testing.AllocsPerRun(50, func() { _ = in.Inject(frame) }); n != 0 {
			t.Errorf("Inject allocates %v times per frame", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

// openCapture opens an AF_PACKET socket with PACKET_VNET_HDR on dev for IPv4 frames.
func openCapture(tb testing.TB, dev string) int {
	tb.Helper()
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		tb.Fatal(err)
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_IP)))
	if err != nil {
		tb.Fatal(err)
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1); err != nil {
		tb.Fatal(err)
	}
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_IP), Ifindex: ifi.Index}); err != nil {
		tb.Fatal(err)
	}
	return fd
}

func recvTimeout(fd int, buf []byte, d time.Duration) (int, error) {
	tv := unix.NsecToTimeval(d.Nanoseconds())
	_ = unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv)
	n, _, err := unix.Recvfrom(fd, buf, 0)
	return n, err
}

func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// BenchmarkInject measures ns per injected 64 KB GSO frame (write into a veth whose peer
// drops it: the cost is the write, the vnet header and the kernel's skb build).
func BenchmarkInject(b *testing.B) {
	testbed.RequireRoot(b)
	ns := testbed.NewNS(b, "inj")
	testbed.Link(b, ns, "inja", ns, "injb")
	var in *Injector
	if err := ns.Do(func() (err error) {
		in, err = NewInjector(InjectorOptions{Interface: "inja", MTU: 1500})
		return err
	}); err != nil {
		b.Fatal(err)
	}
	defer in.Close()
	frame := testFrame(protoTCP, 64000, 0)
	b.SetBytes(int64(len(frame)))
	b.ReportAllocs()
	for b.Loop() {
		if err := in.Inject(frame); err != nil {
			b.Fatal(err)
		}
	}
}

// TestInjectAfterClose: an injector that was closed writes nothing, even when a newer socket
// got its descriptor number (Close used to free the fd while Inject could still use it, so a
// late frame went out of another tunnel port).
func TestInjectAfterClose(t *testing.T) {
	testbed.RequireRoot(t)
	ns := testbed.NewNS(t, "inj")
	testbed.Link(t, ns, "inja", ns, "injb")
	testbed.Link(t, ns, "injc", ns, "injd")
	err := ns.Do(func() error {
		old, err := NewInjector(InjectorOptions{Interface: "inja", MTU: 1500})
		if err != nil {
			return err
		}
		if err := old.Close(); err != nil {
			return err
		}
		cur, err := NewInjector(InjectorOptions{Interface: "injc", MTU: 1500})
		if err != nil {
			return err
		}
		defer cur.Close()
		rx := openCapture(t, "injd")
		defer unix.Close(rx)
		if err := old.Inject(testFrame(protoTCP, 1000, 0)); !errors.Is(err, net.ErrClosed) {
			t.Errorf("Inject after Close: %v, want net.ErrClosed", err)
		}
		f := testFrame(protoTCP, 1000, 0)
		if err := old.InjectChunks([][]byte{f[:100], f[100:]}); !errors.Is(err, net.ErrClosed) {
			t.Errorf("InjectChunks after Close: %v, want net.ErrClosed", err)
		}
		if n, err := recvTimeout(rx, make([]byte, 2048), 200*time.Millisecond); err == nil {
			t.Errorf("a closed injector's frame (%d bytes) came out of another port", n)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}
