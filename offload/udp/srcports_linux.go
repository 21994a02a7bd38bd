//go:build linux

package udp

import (
	"errors"
	"fmt"
	"net/netip"

	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// srcRange is the number of source ports in 49152-65535.
const srcRange = 65536 - sclp.SrcPortMin

// srcSockets are the transmit sockets of one local address, one per source-port bucket. A
// flow's hash (sclp.SourcePort, 49152-65535) picks bucket (hash-49152)*len/16384, and the
// datagram leaves from that bucket's port: the UDP source port carries the flow hash reduced
// to len(fds) values, which is what ECMP and the receiver's SO_REUSEPORT spread on.
type srcSockets struct {
	local netip.Addr
	fds   []int
	ports []uint16
	refs  int
}

// openSrcSockets binds n sockets, bucket i to the first free port of its stride.
func openSrcSockets(local netip.Addr, n, buf int) (*srcSockets, error) {
	s := &srcSockets{local: local}
	stride := srcRange / n
	for i := range n {
		var lastErr error
		for j := range stride {
			port := uint16(sclp.SrcPortMin + i*stride + j)
			fd, err := txSocket(netip.AddrPortFrom(local, port), buf)
			if err == nil {
				s.fds, s.ports = append(s.fds, fd), append(s.ports, port)
				lastErr = nil
				break
			}
			lastErr = err
			if !errors.Is(err, unix.EADDRINUSE) {
				break
			}
		}
		if lastErr != nil {
			s.close()
			return nil, fmt.Errorf("source port bucket %d: %w", i, lastErr)
		}
	}
	return s, nil
}

// fd returns the socket of the bucket of flow hash sport.
func (s *srcSockets) fd(sport uint16) int {
	i := int(max(sport, sclp.SrcPortMin)-sclp.SrcPortMin) * len(s.fds) / srcRange
	return s.fds[i]
}

func (s *srcSockets) close() {
	for _, fd := range s.fds {
		unix.Close(fd)
	}
	s.fds = nil
}
