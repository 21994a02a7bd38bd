package udp

import (
	"log"
	"runtime"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Options configure a Datapath. The zero value is usable.
type Options struct {
	// Workers is the number of transmit workers per tunnel port and of receive sockets per
	// listening address (default runtime.NumCPU()).
	Workers int
	// SourcePorts is the number of transmit sockets, each bound to one UDP source port in
	// 49152-65535; a flow's hash picks one (default 32, at most 1024).
	SourcePorts int
	// Reassembly configures each receive worker's reassembler (default sclp.DefaultConfig()).
	Reassembly *sclp.Config
	// ExpireInterval is how often partial messages are expired (default 100 ms).
	ExpireInterval time.Duration
	// SocketBuffer is SO_SNDBUFFORCE/SO_RCVBUFFORCE of every socket (default 32 MB).
	SocketBuffer int
	// SkipGRO leaves the underlay device's GRO setting alone.
	SkipGRO bool
	// WorkerNice, if not zero, runs every transmit and receive worker on its own OS thread
	// with this nice value (for example -10), so that on a busy host the datapath competes
	// like the kernel's softirq work it replaces rather than like a batch job. The thread is
	// discarded when the worker ends.
	WorkerNice int
	// Standby opens receive sockets without taking traffic until Activate: they join the
	// SO_REUSEPORT group connected (so the kernel does not pick them) and their workers do
	// not read. A successor agent sets it while it registers every port alongside the
	// running agent, then calls Activate once all are registered: a receive group shared by
	// several ports (one local address, many peers) would otherwise get datagrams from peers
	// whose ports it has not registered yet, and drop them as unknown_peer.
	Standby bool
	// NoFastPath turns off the tc-BPF fast path for one-segment messages (offload/bpf
	// udpfast.h; docs/udp-mode.md, "Fast path for one-segment messages"): a program at the
	// underlay's TCX ingress delivers datagrams that carry a whole message straight into the
	// tunnel port, and one at the tunnel veth's ingress sends frames that fit one segment
	// itself (the transmit packet sockets then skip them). It is on by default: measured 1.4x
	// the goodput of 1 KB UDP at 0.66x the CPU per Gbit/s, and 0.82x the datapath's CPU for
	// TCP at a fixed rate (docs/performance.md). The frames it carries are counted in
	// PortStats.RxFast*/TxFast* and Stats.FastPath (and exported with the socket path's:
	// controller/metrics FromUDP). If a program cannot be loaded or attached, the datapath
	// logs it once (Logf) and runs without it.
	NoFastPath bool
	// FastPathAllFrames lets the fast path take every frame that fits one segment. By
	// default it takes only frames that may overtake the rest of their flow, whose other
	// frames (multi-segment messages, GSO frames) take the userspace path: TCP ACKs without
	// payload, ICMP, and on receive non-IP frames (offload/bpf udpfast.h, uf_order_safe).
	// TCP data and UDP then keep their order; with this set, a small datagram or TCP segment
	// can arrive before a larger one of its flow sent earlier (measured in review: thousands
	// of out-of-order TCP segments at the receiving VM). For ports whose UDP applications
	// never mix GSO and single sends on one flow and whose TCP is not throughput-critical.
	FastPathAllFrames bool
	// NoFastPathTx keeps the receive half of the fast path but sends every
	// frame through the transmit workers (the transmit half: a program on the tunnel veth that sends frames
	// of one segment itself, which the workers' packet sockets then skip).
	NoFastPathTx bool
	// Logf logs the few events worth a line (the fast path not loading); nil uses log.Printf.
	Logf func(format string, args ...any)
	// Exec runs a command (used for `ethtool -K DEV gro on`); nil uses os/exec in the calling
	// thread's network namespace.
	Exec func(name string, args ...string) error
}

func (o *Options) defaults() {
	if o.Workers <= 0 {
		o.Workers = runtime.NumCPU()
	}
	if o.SourcePorts <= 0 {
		o.SourcePorts = 32
	}
	o.SourcePorts = min(o.SourcePorts, 1024)
	if o.Reassembly == nil {
		c := sclp.DefaultConfig()
		o.Reassembly = &c
	}
	if o.ExpireInterval <= 0 {
		o.ExpireInterval = 100 * time.Millisecond
	}
	if o.Logf == nil {
		o.Logf = log.Printf
	}
	if o.SocketBuffer <= 0 {
		o.SocketBuffer = 32 << 20
	}
}
