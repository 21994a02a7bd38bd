//go:build !linux

package offload

import (
	"context"
	"fmt"
)

// Manager is the native datapath; it exists only on Linux.
type Manager struct{}

// NewManager returns ErrNotSupported outside Linux.
func NewManager(ManagerOptions) (*Manager, error) {
	return nil, fmt.Errorf("native datapath: %w", ErrNotSupported)
}

// EnsurePort returns ErrNotSupported.
func (*Manager) EnsurePort(context.Context, PortSpec) error { return ErrNotSupported }

// RemovePort returns ErrNotSupported.
func (*Manager) RemovePort(context.Context, string) error { return ErrNotSupported }

// Close does nothing.
func (*Manager) Close() error { return nil }
