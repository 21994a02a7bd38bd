//go:build linux

package udp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"runtime"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sockopt is one setsockopt(level, name, value).
type sockopt struct{ level, name, value int }

func setsockopts(fd int, opts ...sockopt) error {
	for _, o := range opts {
		if err := unix.SetsockoptInt(fd, o.level, o.name, o.value); err != nil {
			return fmt.Errorf("setsockopt %d/%d=%d: %w", o.level, o.name, o.value, err)
		}
	}
	return nil
}

// udpSocket opens a non-blocking UDP socket with opts and binds it to local.
func udpSocket(local netip.AddrPort, opts ...sockopt) (int, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("udp socket: %w", err)
	}
	if err := setsockopts(fd, opts...); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: local.Addr().As4(), Port: int(local.Port())}); err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("bind %v: %w", local, err)
	}
	return fd, nil
}

// txSocket is a transmit socket bound to one source port.
func txSocket(local netip.AddrPort, buf int) (int, error) {
	return udpSocket(local,
		sockopt{unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, buf},
		sockopt{unix.IPPROTO_IP, unix.IP_MTU_DISCOVER, unix.IP_PMTUDISC_DO},
		sockopt{unix.IPPROTO_IP, unix.IP_RECVERR, 1}, // report ENOBUFS from a full qdisc
	)
}

// rxSocket is one receive socket of a SO_REUSEPORT group bound to local.
func rxSocket(local netip.AddrPort, buf int) (int, error) {
	return udpSocket(local,
		sockopt{unix.SOL_SOCKET, unix.SO_REUSEADDR, 1},
		sockopt{unix.SOL_SOCKET, unix.SO_REUSEPORT, 1},
		sockopt{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf},
		sockopt{unix.SOL_UDP, unix.UDP_GRO, 1},
		sockopt{unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1}, // drop count in a cmsg
	)
}

// disconnect dissolves a UDP socket's association (connect with AF_UNSPEC); its bound
// address and port stay.
func disconnect(fd int) error {
	sa := unix.RawSockaddrInet4{Family: unix.AF_UNSPEC}
	_, _, e := unix.Syscall(unix.SYS_CONNECT, uintptr(fd), uintptr(unsafe.Pointer(&sa)), unsafe.Sizeof(sa))
	if e != 0 {
		return e
	}
	return nil
}

// packetSocket opens an AF_PACKET socket on ifindex that reads every frame (ETH_P_ALL) with a
// virtio_net_hdr in front, ignores frames sent out of the device (our own injections), and
// joins fanout group (PACKET_FANOUT_HASH) when group >= 0.
func packetSocket(ifindex, group, buf int) (int, error) {
	// Protocol 0 at socket(): the socket sees nothing until bind names the device and
	// ETH_P_ALL (opened with ETH_P_ALL it would take every device's frames until then, and
	// during a takeover send frames the running agent's sockets send too).
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return -1, fmt.Errorf("packet socket: %w", err)
	}
	err = setsockopts(fd,
		sockopt{unix.SOL_PACKET, unix.PACKET_VNET_HDR, 1},
		sockopt{unix.SOL_PACKET, unix.PACKET_IGNORE_OUTGOING, 1},
		sockopt{unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, buf})
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: ifindex})
	}
	if err == nil && group >= 0 {
		// A fanout group has its own hook: PACKET_IGNORE_OUTGOING on the member socket does
		// not apply to it, the group needs PACKET_FANOUT_FLAG_IGNORE_OUTGOING, or every frame
		// we inject would be read back and sent again (a loop).
		arg := group&0xffff | (unix.PACKET_FANOUT_HASH|unix.PACKET_FANOUT_FLAG_IGNORE_OUTGOING)<<16
		err = setsockopts(fd, sockopt{unix.SOL_PACKET, unix.PACKET_FANOUT, arg})
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("packet socket on ifindex %d: %w", ifindex, err)
	}
	return fd, nil
}

// packetDrops returns and resets the socket's drop counter (PACKET_STATISTICS).
func packetDrops(fd int) uint64 {
	st, err := unix.GetsockoptTpacketStats(fd, unix.SOL_PACKET, unix.PACKET_STATISTICS)
	if err != nil {
		return 0
	}
	return uint64(st.Drops)
}

// eventFD is a non-blocking eventfd used to wake pollers on stop.
func eventFD() (int, error) {
	fd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return -1, fmt.Errorf("eventfd: %w", err)
	}
	return fd, nil
}

func signalFD(fd int) {
	var b [8]byte
	binary.NativeEndian.PutUint64(b[:], 1)
	_, _ = unix.Write(fd, b[:])
}

// sockaddr4 is the raw sockaddr_in of ap.
func sockaddr4(ap netip.AddrPort) unix.RawSockaddrInet4 {
	return unix.RawSockaddrInet4{Family: unix.AF_INET, Addr: ap.Addr().As4(), Port: htons(ap.Port())}
}

// htons converts v to network byte order.
func htons(v uint16) uint16 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return binary.NativeEndian.Uint16(b[:])
}

// workerThread pins the calling goroutine to its OS thread and sets the thread's nice value
// (no-op when nice is 0). The goroutine must not unlock: when it returns, the runtime ends the
// thread, so the priority never leaks to other goroutines.
func workerThread(nice int) {
	if nice == 0 {
		return
	}
	runtime.LockOSThread()
	_ = unix.Setpriority(unix.PRIO_PROCESS, unix.Gettid(), nice)
}
