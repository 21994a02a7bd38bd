package testbed

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
)

// ErrPingLoss is returned (wrapped) when some echo requests got no reply.
var ErrPingLoss = errors.New("ping: replies missing")

// PingOptions configures PingWith. The machine has no ping binary, so the testbed sends ICMP
// echo requests itself from a raw socket opened inside the namespace.
type PingOptions struct {
	// Count is the number of requests (default 3). With 0 and a context, PingContext sends until
	// the context ends.
	Count int
	// Interval between requests (default 200 ms).
	Interval time.Duration
	// Timeout is how long to wait for the last replies after the last request (default 1 s).
	Timeout time.Duration
	// Size is the ICMP payload length (default 56; 8972 fills a 9000-byte MTU).
	Size int
	// DF sets Don't Fragment (IP_PMTUDISC_DO): a request larger than the path MTU fails.
	DF bool
}

// PingStats summarises a ping run.
type PingStats struct {
	Sent, Received int
	// LongestLoss is the longest run of consecutive unanswered requests: multiplied by the
	// interval it bounds an outage.
	LongestLoss int
	// MaxRTT is the largest round-trip time seen.
	MaxRTT time.Duration
}

// String formats the statistics like ping's summary line.
func (s PingStats) String() string {
	return fmt.Sprintf("%d sent, %d received, longest loss run %d, max rtt %v",
		s.Sent, s.Received, s.LongestLoss, s.MaxRTT)
}

// Ping sends count echo requests 200 ms apart to dst and returns a summary, and an error
// wrapping ErrPingLoss if any reply was missing.
func (n *NS) Ping(dst netip.Addr, count int) (string, error) {
	st, err := n.PingWith(dst, PingOptions{Count: count})
	return st.String(), err
}

// PingWith sends echo requests from inside the namespace to dst.
func (n *NS) PingWith(dst netip.Addr, opts PingOptions) (PingStats, error) {
	return n.PingContext(context.Background(), dst, opts)
}

// PingContext is PingWith that stops sending when ctx ends (the run is then not an error by
// itself). With opts.Count 0 it sends until ctx ends: a continuous ping in a goroutine.
func (n *NS) PingContext(ctx context.Context, dst netip.Addr, opts PingOptions) (PingStats, error) {
	if opts.Count == 0 && ctx.Done() == nil {
		opts.Count = 3
	}
	if opts.Interval == 0 {
		opts.Interval = 200 * time.Millisecond
	}
	if opts.Timeout == 0 {
		opts.Timeout = time.Second
	}
	if opts.Size == 0 {
		opts.Size = 56
	}
	if !dst.Is4() {
		return PingStats{}, fmt.Errorf("ping %v: only IPv4", dst)
	}
	conn, err := n.rawICMP(opts.DF)
	if err != nil {
		return PingStats{}, err
	}
	defer conn.Close()
	p := &pinger{conn: conn, dst: dst, opts: opts, sent: map[uint16]time.Time{}, got: map[uint16]bool{}}
	var idb [2]byte
	_, _ = rand.Read(idb[:])
	p.id = binary.BigEndian.Uint16(idb[:])
	return p.run(ctx)
}

func (n *NS) rawICMP(df bool) (*net.IPConn, error) {
	var conn *net.IPConn
	err := n.Do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW|syscall.SOCK_CLOEXEC, syscall.IPPROTO_ICMP)
		if err != nil {
			return fmt.Errorf("ping: raw socket: %w", err)
		}
		f := os.NewFile(uintptr(fd), "icmp")
		defer f.Close()
		if df {
			if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_MTU_DISCOVER, syscall.IP_PMTUDISC_DO); err != nil {
				return fmt.Errorf("ping: IP_MTU_DISCOVER: %w", err)
			}
		}
		c, err := net.FilePacketConn(f)
		if err != nil {
			return fmt.Errorf("ping: %w", err)
		}
		conn = c.(*net.IPConn)
		return nil
	})
	return conn, err
}

type pinger struct {
	conn *net.IPConn
	dst  netip.Addr
	opts PingOptions
	id   uint16

	mu     sync.Mutex
	sent   map[uint16]time.Time
	got    map[uint16]bool
	maxRTT time.Duration
}

func (p *pinger) run(ctx context.Context) (PingStats, error) {
	done := make(chan struct{})
	go func() { defer close(done); p.receive() }()
	sendErr := p.send(ctx)
	// Wait for late replies, then stop the reader through the deadline.
	_ = p.conn.SetReadDeadline(time.Now().Add(p.opts.Timeout))
	<-done
	st := p.stats()
	if sendErr != nil {
		return st, sendErr
	}
	if st.Received < st.Sent {
		return st, fmt.Errorf("%w: %v to %v", ErrPingLoss, st, p.dst)
	}
	return st, nil
}

func (p *pinger) send(ctx context.Context) error {
	pkt := make([]byte, 8+p.opts.Size)
	addr := &net.IPAddr{IP: p.dst.AsSlice()}
	t := time.NewTicker(p.opts.Interval)
	defer t.Stop()
	for seq := 0; p.opts.Count == 0 || seq < p.opts.Count; seq++ {
		if seq > 0 {
			select {
			case <-ctx.Done():
				return nil
			case <-t.C:
			}
		}
		s := uint16(seq)
		echoRequest(pkt, p.id, s)
		p.mu.Lock()
		p.sent[s] = time.Now()
		p.mu.Unlock()
		if _, err := p.conn.WriteTo(pkt, addr); err != nil {
			p.mu.Lock()
			delete(p.sent, s)
			p.mu.Unlock()
			return fmt.Errorf("ping %v: send: %w", p.dst, err)
		}
	}
	return nil
}

// receive reads until the read deadline set by run. IPConn.ReadFrom strips the IPv4 header
// of a raw socket's packets, so buf starts with the ICMP header.
func (p *pinger) receive() {
	buf := make([]byte, 66000)
	for {
		n, from, err := p.conn.ReadFrom(buf)
		if err != nil {
			return
		}
		ip, ok := from.(*net.IPAddr)
		if !ok || !ip.IP.Equal(p.dst.AsSlice()) {
			continue
		}
		icmp := buf[:n]
		if len(icmp) < 8 || icmp[0] != 0 || binary.BigEndian.Uint16(icmp[4:]) != p.id {
			continue
		}
		seq := binary.BigEndian.Uint16(icmp[6:])
		p.mu.Lock()
		if at, ok := p.sent[seq]; ok && !p.got[seq] {
			p.got[seq] = true
			p.maxRTT = max(p.maxRTT, time.Since(at))
		}
		p.mu.Unlock()
	}
}

func (p *pinger) stats() PingStats {
	p.mu.Lock()
	defer p.mu.Unlock()
	st := PingStats{Sent: len(p.sent), Received: len(p.got), MaxRTT: p.maxRTT}
	run := 0
	for s := 0; s < len(p.sent); s++ {
		if p.got[uint16(s)] {
			run = 0
			continue
		}
		run++
		st.LongestLoss = max(st.LongestLoss, run)
	}
	return st
}

// echoRequest fills b (8-byte ICMP header + payload) as an echo request.
func echoRequest(b []byte, id, seq uint16) {
	b[0], b[1] = 8, 0
	binary.BigEndian.PutUint16(b[2:], 0)
	binary.BigEndian.PutUint16(b[4:], id)
	binary.BigEndian.PutUint16(b[6:], seq)
	for i := 8; i < len(b); i++ {
		b[i] = byte(i)
	}
	var sum uint32
	for i := 0; i+1 < len(b); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(b[i:]))
	}
	if len(b)%2 == 1 {
		sum += uint32(b[len(b)-1]) << 8
	}
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	binary.BigEndian.PutUint16(b[2:], ^uint16(sum))
}
