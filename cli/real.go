package cli

import (
	"context"
	"errors"
	"log/slog"
	"os"
)

// RealDeps returns the production implementations: OVSDB and OpenFlow through package ovs,
// rtnetlink for veths and routes, and the datapaths of package offload (mode=ip) and
// offload/udp (mode=udp).
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

func openRealDB(ctx context.Context, endpoint string) (DB, error) {
	return nil, errors.New("not wired yet")
}

func newRealAgentDeps(ctx context.Context, cfg AgentConfig) (AgentDeps, func(), error) {
	return AgentDeps{}, nil, errors.New("not wired yet")
}
