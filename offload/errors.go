package offload

import "errors"

// Errors of the native datapath manager, returned wrapped: test with errors.Is.
var (
	// ErrNotSupported reports a kernel without what the datapath needs (BPF program types,
	// helpers or kfuncs, or neither TCX nor clsact to attach with).
	ErrNotSupported = errors.New("not supported by this kernel")
	// ErrNoDevice reports a device named by a PortSpec that does not exist.
	ErrNoDevice = errors.New("device not found")
	// ErrConflict reports a port whose (peer, VNI) or datapath-side device another port
	// already uses.
	ErrConflict = errors.New("conflicting tunnel port")
	// ErrNoNeighbor reports a next hop whose MAC address could not be resolved in time. The
	// port is installed anyway and resolves through bpf_fib_lookup once the kernel knows
	// the neighbour; retrying EnsurePort writes the MAC into the port entry.
	ErrNoNeighbor = errors.New("next hop not resolved")
	// ErrUnsupportedMode reports a PortSpec whose mode this datapath does not carry.
	ErrUnsupportedMode = errors.New("mode not carried by this datapath")
	// ErrIncompatible reports pinned maps whose layout differs from this program version.
	ErrIncompatible = errors.New("pinned state incompatible with this version")
	// ErrClosed reports a call on a closed manager.
	ErrClosed = errors.New("datapath manager closed")
)
