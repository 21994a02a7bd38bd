package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/udp"
)

// RealDeps returns the production implementations: OVSDB through package ovs, OpenFlow
// through ovs-ofctl, rtnetlink for veths and routes, and the datapaths of offload/udp
// (mode=udp) and offload (mode=ip).
func RealDeps() Deps {
	return Deps{
		Stdout: os.Stdout, Stderr: os.Stderr,
		OpenDB:       openRealDB,
		Router:       netRouter{},
		Links:        netLinks{},
		NewAgentDeps: newRealAgentDeps,
		Counters:     linkCounters,
		Signals:      stopSignals,
		Log:          slog.New(slog.NewTextHandler(os.Stderr, nil)),
	}
}

func newRealAgentDeps(ctx context.Context, cfg AgentConfig) (AgentDeps, func(), error) {
	dps := map[offload.Mode]offload.Datapath{}
	closeAll := func() {
		for _, dp := range dps {
			dp.Close()
		}
	}
	for _, m := range cfg.Modes {
		var (
			dp  offload.Datapath
			err error
		)
		switch m {
		case offload.ModeUDP:
			var u *udp.Datapath
			u, err = udp.New(udp.Options{Standby: cfg.Takeover, NoFastPath: cfg.NoUDPFastPath})
			if err == nil {
				dp = udpStats{u}
			}
		case offload.ModeIP:
			dp, err = newIPDatapath(ctx, cfg)
		}
		if errors.Is(err, errModeUnavailable) {
			cfg.Log.Warn("datapath not available in this build; its ports will report an error", "mode", m, "err", err)
			continue
		}
		if err != nil {
			closeAll()
			return AgentDeps{}, nil, fmt.Errorf("mode=%s datapath: %w", m, err)
		}
		dps[m] = dp
	}
	if len(dps) == 0 {
		return AgentDeps{}, nil, errors.New("no datapath could start")
	}
	flows, err := newOFFlows(cfg.RunDir)
	if err != nil {
		closeAll()
		return AgentDeps{}, nil, err
	}
	return AgentDeps{Flows: flows, Datapaths: dps}, closeAll, nil
}

var errModeUnavailable = errors.New("mode not available")

// udpStats adds controller.StatsReporter to the mode=udp datapath.
type udpStats struct{ *udp.Datapath }

func (u udpStats) PortStats(name string) (map[string]uint64, error) {
	s := u.Stats()
	p, ok := s.Ports[name]
	if !ok {
		return nil, fmt.Errorf("no port %s", name)
	}
	return map[string]uint64{
		"tx_frames": p.TxFrames, "tx_bytes": p.TxBytes, "tx_segments": p.TxSegments,
		"tx_too_large": p.TxTooLarge, "tx_send_errors": p.TxSendErrors, "tx_socket_drops": p.TxSocketDrops,
		"tx_backpressure_waits": p.TxBackpressureWaits,
		"rx_injected_frames":    p.RxInjectedFrames, "rx_injected_bytes": p.RxInjectedBytes, "rx_inject_errors": p.RxInjectErrors,
	}, nil
}
