//go:build linux

package fallback

import (
	"fmt"
	"net"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// InjectorOptions configure an Injector.
type InjectorOptions struct {
	// Interface is the datapath-side veth of the tunnel port (PortSpec.PeerName). Frames
	// written to it come out of its peer, the tunnel port.
	Interface string
	// MTU is the tunnel port's MTU: TCP frames whose IP packet is larger become GSO frames
	// with gso_size = MTU - IP header - TCP header.
	MTU int
}

// Injector writes whole inner Ethernet frames into a tunnel port through an AF_PACKET socket
// with PACKET_VNET_HDR, one write per frame, so that a 64 KB frame reaches the receiving
// stack as one GSO packet. It is safe for concurrent use: Inject keeps its scratch state on
// the caller's stack.
type Injector struct {
	fd      int
	ifindex int
	mtu     int
	name    string
	closed  atomic.Bool
	// fdMu is held for reading around every use of fd and for writing by Close, so the
	// descriptor is never closed under a write: a late write to a number the kernel has
	// handed to a newer socket would send the frame out of another port.
	fdMu sync.RWMutex

	frames, bytes, errs atomic.Uint64
}

// NewInjector opens the injection socket in the calling thread's network namespace. The
// socket is created with protocol 0, so it receives nothing: it only sends.
func NewInjector(opts InjectorOptions) (*Injector, error) {
	ifi, err := net.InterfaceByName(opts.Interface)
	if err != nil {
		return nil, fmt.Errorf("new injector: %w", err)
	}
	if opts.MTU <= 0 {
		opts.MTU = ifi.MTU
	}
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("new injector: socket: %w", err)
	}
	for _, o := range [][2]int{{unix.PACKET_VNET_HDR, 1}, {unix.PACKET_IGNORE_OUTGOING, 1}} {
		if err := unix.SetsockoptInt(fd, unix.SOL_PACKET, o[0], o[1]); err != nil {
			unix.Close(fd)
			return nil, fmt.Errorf("new injector: setsockopt %d: %w", o[0], err)
		}
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, 4<<20)
	if err := unix.Bind(fd, &unix.SockaddrLinklayer{Ifindex: ifi.Index}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("new injector: bind %s: %w", opts.Interface, err)
	}
	return &Injector{fd: fd, ifindex: ifi.Index, mtu: opts.MTU, name: opts.Interface}, nil
}

// Interface returns the name of the interface the injector writes to.
func (in *Injector) Interface() string { return in.name }

// MTU returns the tunnel port MTU the injector segments for.
func (in *Injector) MTU() int { return in.mtu }

// Inject writes one Ethernet frame. It rewrites the frame's L4 checksum field (see
// PrepareFrame) and does not allocate.
func (in *Injector) Inject(frame []byte) error {
	h, err := PrepareFrame(frame, in.mtu)
	if err != nil {
		in.errs.Add(1)
		return err
	}
	var hdr [VnetHdrLen]byte
	h.Put(hdr[:])
	if err := in.writev(hdr[:], frame); err != nil {
		in.errs.Add(1)
		return err
	}
	in.frames.Add(1)
	in.bytes.Add(uint64(len(frame)))
	return nil
}

// MaxChunks is the largest number of pieces InjectChunks takes.
const MaxChunks = 96

// InjectChunks writes one frame given as consecutive pieces (for example the chunks of SCLP
// segments that arrived in order in one receive batch), with one writev and no userspace copy.
// chunks[0] must hold the frame's L2-L4 headers; it is modified like Inject modifies a frame.
func (in *Injector) InjectChunks(chunks [][]byte) error {
	if len(chunks) == 0 || len(chunks) > MaxChunks {
		in.errs.Add(1)
		return fmt.Errorf("inject chunks: %d pieces: %w", len(chunks), ErrShortFrame)
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	h, err := prepareFrame(chunks[0], total, in.mtu)
	if err != nil {
		in.errs.Add(1)
		return err
	}
	var hdr [VnetHdrLen]byte
	h.Put(hdr[:])
	var iov [MaxChunks + 1]unix.Iovec
	iov[0].Base, iov[0].Len = &hdr[0], VnetHdrLen
	n := 1
	for _, c := range chunks {
		if len(c) > 0 {
			iov[n].Base, iov[n].Len = &c[0], uint64(len(c))
			n++
		}
	}
	if err := in.writeIov(iov[:n]); err != nil {
		in.errs.Add(1)
		return err
	}
	in.frames.Add(1)
	in.bytes.Add(uint64(total))
	return nil
}

// writev sends hdr and frame as one packet, retrying on EINTR and waiting for room on EAGAIN.
func (in *Injector) writev(hdr, frame []byte) error {
	var iov [2]unix.Iovec
	iov[0].Base, iov[0].Len = &hdr[0], uint64(len(hdr))
	iov[1].Base, iov[1].Len = &frame[0], uint64(len(frame))
	return in.writeIov(iov[:])
}

// writeIov sends the iovecs as one packet, retrying on EINTR and waiting for room on EAGAIN.
// It fails with net.ErrClosed once Close has begun.
func (in *Injector) writeIov(iov []unix.Iovec) error {
	in.fdMu.RLock()
	defer in.fdMu.RUnlock()
	if in.closed.Load() {
		return fmt.Errorf("inject: %w", net.ErrClosed)
	}
	for {
		_, _, e := unix.Syscall(unix.SYS_WRITEV, uintptr(in.fd), uintptr(unsafe.Pointer(&iov[0])), uintptr(len(iov)))
		switch e {
		case 0:
			return nil
		case unix.EINTR:
			continue
		case unix.ENOBUFS, unix.EAGAIN:
			if in.closed.Load() {
				return fmt.Errorf("inject: %w", net.ErrClosed)
			}
			waitWritable(in.fd)
			continue
		}
		return fmt.Errorf("inject into %s: %w", in.name, e)
	}
}

// Counters returns the frames and bytes written and the frames that failed.
func (in *Injector) Counters() (frames, bytes, errs uint64) {
	return in.frames.Load(), in.bytes.Load(), in.errs.Load()
}

// Close closes the socket, after any write in progress has returned (a write waiting for room
// gives up within 10 ms). Later writes fail with net.ErrClosed.
func (in *Injector) Close() error {
	if in.closed.Swap(true) {
		return nil
	}
	in.fdMu.Lock()
	defer in.fdMu.Unlock()
	return unix.Close(in.fd)
}

// waitWritable blocks up to 10 ms for POLLOUT on fd.
func waitWritable(fd int) {
	var p [1]unix.PollFd
	p[0] = unix.PollFd{Fd: int32(fd), Events: unix.POLLOUT}
	_, _ = unix.Poll(p[:], 10)
}
