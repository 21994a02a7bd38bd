package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// ReconcilerView is what the metrics read from a *controller.Reconciler.
type ReconcilerView interface {
	// Ports returns every tunnel port recorded in OVSDB with its status.
	Ports() []controller.PortState
	// Passes returns how many reconcile passes ran.
	Passes() int
}

// ReconcilerSource is the ControllerSource of a running reconciler.
type ReconcilerSource struct {
	// Reconciler is required.
	Reconciler ReconcilerView
	// Recorder, if set, supplies passes, errors and durations (the controller must call its
	// Observe after every pass). Without it only the pass count is known.
	Recorder *ReconcileRecorder
	// OVSDBConnected and OpenFlowConnected report the connections (nil: reported as 0).
	OVSDBConnected, OpenFlowConnected func() bool
}

// ControllerStats reads the reconciler.
func (s ReconcilerSource) ControllerStats() ControllerStats {
	var st ControllerStats
	for _, p := range s.Reconciler.Ports() {
		st.PortsDesired++
		if p.Status == controller.StatusReady {
			st.PortsReady++
		}
	}
	if s.Recorder != nil {
		st.Reconcile = s.Recorder.Snapshot()
	} else {
		st.Reconcile.Passes = uint64(max(s.Reconciler.Passes(), 0))
	}
	st.OVSDBConnected = s.OVSDBConnected != nil && s.OVSDBConnected()
	st.OpenFlowConnected = s.OpenFlowConnected != nil && s.OpenFlowConnected()
	return st
}

// ErrNotConverged is wrapped by ConvergedCheck when ports are not all ready.
var ErrNotConverged = errors.New("not converged")

// ConvergedCheck is the /readyz check of an agent: at least one reconcile pass ran, every
// desired tunnel port is ready and, if r also has Ready() bool (*controller.Reconciler), the
// last pass succeeded.
func ConvergedCheck(r ReconcilerView) Check {
	return Check{Name: "converged", Fn: func(context.Context) error {
		if r.Passes() == 0 {
			return fmt.Errorf("%w: no reconcile pass yet", ErrNotConverged)
		}
		var pending []string
		for _, p := range r.Ports() {
			if p.Status != controller.StatusReady {
				pending = append(pending, p.Config.Name+" ("+p.Status+")")
			}
		}
		if len(pending) > 0 {
			return fmt.Errorf("%w: %s", ErrNotConverged, strings.Join(pending, ", "))
		}
		if rr, ok := r.(interface{ Ready() bool }); ok && !rr.Ready() {
			return fmt.Errorf("%w: the last reconcile pass failed", ErrNotConverged)
		}
		return nil
	}}
}

// AgentOptions configure StartAgent.
type AgentOptions struct {
	// Addr is the listen address (default DefaultAddress, loopback).
	Addr string
	// Datapaths and Controller are the statistics sources (see Options).
	Datapaths  map[offload.Mode]DatapathSource
	Controller ControllerSource
	// Version is the build_info version label.
	Version string
	// Live and Ready are the /healthz and /readyz checks.
	Live, Ready []Check
	// Log receives source read errors and serve errors (default: discard).
	Log *slog.Logger
}

// StartAgent is the agent's one-call entry point: a fresh registry with the Go runtime and
// process collectors plus the sclp-ovs collector, served on opts.Addr until ctx ends or the
// returned server is closed.
func StartAgent(ctx context.Context, opts AgentOptions) (*Server, *prometheus.Registry, error) {
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	reg := prometheus.NewRegistry()
	if err := reg.Register(collectors.NewGoCollector()); err != nil {
		return nil, nil, err
	}
	if err := reg.Register(collectors.NewProcessCollector(collectors.ProcessCollectorOpts{})); err != nil {
		return nil, nil, err
	}
	log := opts.Log
	if _, err := New(reg, Options{Datapaths: opts.Datapaths, Controller: opts.Controller, Version: opts.Version,
		OnError: func(source string, err error) { log.Warn("metrics source failed", "source", source, "err", err) },
	}); err != nil {
		return nil, nil, err
	}
	srv, err := Start(ctx, ServerOptions{Addr: opts.Addr, Gatherer: reg, Live: opts.Live, Ready: opts.Ready, Log: log})
	if err != nil {
		return nil, nil, err
	}
	return srv, reg, nil
}
