//go:build !linux

package udp

import (
	"context"
	"errors"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
)

// ErrNotSupported is returned on platforms without UDP GSO/GRO and AF_PACKET.
var ErrNotSupported = errors.New("udp datapath needs Linux")

// Datapath is not supported on this platform.
type Datapath struct{}

// PortStats are the counters of one tunnel port (see the Linux build).
type PortStats struct {
	TxFrames, TxBytes, TxMessages, TxSegments               uint64
	TxTooLarge, TxUnsupportedGSO, TxSendErrors, TxTruncated uint64
	TxBackpressureWaits, TxSocketDrops                      uint64
	RxInjectedFrames, RxInjectedBytes, RxInjectErrors       uint64
	RxFastFrames, RxFastBytes, TxFastFrames, TxFastBytes    uint64
}

// FastPathStats are the counters of the tc-BPF fast path (see the Linux build).
type FastPathStats struct {
	Loaded                                                                           bool
	RxFrames, RxBytes, RxChecksumChecked, RxChecksumTrusted                          uint64
	RxPassGSO, RxPassMulti, RxPassNoPort, RxPassNoChecksum, RxPassOther, RxPassOrder uint64
	RxDropChecksum, RxDropError                                                      uint64
}

// Stats are the datapath's counters (see the Linux build).
type Stats struct {
	Ports                                                    map[string]PortStats
	RxDatagrams, RxSegments, RxBytes, RxShort, RxUnknownPeer uint64
	RxSocketDrops                                            uint64
	FastPath                                                 FastPathStats
	Reassembly                                               fallback.Stats
}

var _ offload.Datapath = (*Datapath)(nil)

// New returns ErrNotSupported.
func New(Options) (*Datapath, error) { return nil, ErrNotSupported }

// EnsurePort returns ErrNotSupported.
func (*Datapath) EnsurePort(context.Context, offload.PortSpec) error { return ErrNotSupported }

// RemovePort returns ErrNotSupported.
func (*Datapath) RemovePort(context.Context, string) error { return ErrNotSupported }

// FinishTakeover does nothing.
func (*Datapath) FinishTakeover(context.Context) error { return nil }

// Close does nothing.
func (*Datapath) Close() error { return nil }

// Stats returns zeros.
func (*Datapath) Stats() Stats { return Stats{} }
