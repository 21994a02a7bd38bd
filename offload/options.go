package offload

import (
	"time"

	"github.com/cilium/ebpf"
)

// DefaultPinRoot is where the native datapath pins its maps and links.
const DefaultPinRoot = "/sys/fs/bpf/sclp-ovs"

// DefaultRingSize is the size of the exceptions ring buffer (bytes, a power of two).
const DefaultRingSize = 16 << 20

// ManagerOptions configures NewManager. The zero value is usable.
type ManagerOptions struct {
	// PinRoot is the bpffs directory for maps (PinRoot/maps) and links (PinRoot/links).
	// Default DefaultPinRoot. Tests use their own root. bpffs is mounted at /sys/fs/bpf if
	// it is not.
	PinRoot string
	// NetNS, if set, is the path of the network namespace (e.g. /var/run/netns/NAME) where
	// the devices live; every operation then runs on a thread inside it. Default: the
	// caller's namespace.
	NetNS string
	// RingSize is the exceptions ring size in bytes when the ring is created (power of two,
	// default DefaultRingSize). An adopted ring keeps its size.
	RingSize uint32
	// UseFIB makes the tx program look the next hop up with bpf_fib_lookup for every
	// message instead of using the MACs the manager resolved (follows neighbour changes
	// at once, costs a lookup per message).
	UseFIB bool
	// NeighborTimeout bounds the wait for the kernel to resolve a peer's MAC (default 2s).
	NeighborTimeout time.Duration
	// ReplaceIncompatible makes NewManager remove pinned maps whose layout differs from this
	// version (traffic stops until the ports are ensured again) instead of failing with
	// ErrIncompatible.
	ReplaceIncompatible bool

	// specHook, for tests in this package, edits the collection spec before loading.
	specHook func(*ebpf.CollectionSpec) error
	// forceLegacy, for tests in this package, attaches with clsact as on a kernel without TCX.
	forceLegacy bool
}

func (o *ManagerOptions) defaults() {
	if o.PinRoot == "" {
		o.PinRoot = DefaultPinRoot
	}
	if o.RingSize == 0 {
		o.RingSize = DefaultRingSize
	}
	if o.NeighborTimeout == 0 {
		o.NeighborTimeout = 2 * time.Second
	}
}
