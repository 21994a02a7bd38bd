//go:build !linux

package fallback

import "errors"

// ErrNotSupported is returned on platforms without AF_PACKET.
var ErrNotSupported = errors.New("fallback: injection needs Linux AF_PACKET")

// MaxChunks is the largest number of pieces InjectChunks takes.
const MaxChunks = 96

// InjectorOptions configure an Injector.
type InjectorOptions struct {
	Interface string
	MTU       int
}

// Injector is not supported on this platform.
type Injector struct{}

// NewInjector returns ErrNotSupported.
func NewInjector(InjectorOptions) (*Injector, error) { return nil, ErrNotSupported }

// Inject returns ErrNotSupported.
func (*Injector) Inject([]byte) error { return ErrNotSupported }

// InjectChunks returns ErrNotSupported.
func (*Injector) InjectChunks([][]byte) error { return ErrNotSupported }

// Counters returns zeros.
func (*Injector) Counters() (frames, bytes, errs uint64) { return 0, 0, 0 }

// Close does nothing.
func (*Injector) Close() error { return nil }
