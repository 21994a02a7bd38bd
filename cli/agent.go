package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync/atomic"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/kubernetes"
	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

func agentCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:  "agent",
		Usage: "run the agent: watch OVSDB and make every tunnel port real (runs until SIGTERM)",
		Description: `The agent converges this host to the tunnel ports recorded in OVSDB: veth pairs, the
datapath (mode=udp or mode=ip), OpenFlow flows (cookie 0x5c1b0ff1/32, split horizon) and the
status in Interface external_ids (sclp-ovs:status). It writes a heartbeat into Open_vSwitch
external_ids (sclp-ovs:agent-heartbeat) every 2 s and serves its status on
RUNDIR/sclp-ovs-agent.sock. SIGTERM or SIGINT stops it cleanly and leaves veths, flows and
pinned state for the next agent to adopt. An agent started while another one runs carries
every port alongside it and then retires it (POST /v1/handover on the status socket): that
is the zero-loss restart and upgrade procedure (with mode=udp the datapath lives in the
agent process, so stop-then-start leaves a gap of about the start-up time).`,
		Flags: append([]ucli.Flag{
			&ucli.DurationFlag{Name: "resync", Value: time.Second, Usage: "re-check the host this often (restores flows after an ovs-vswitchd restart)"},
			&ucli.StringFlag{Name: "modes", Value: "udp,ip", Usage: "datapath modes to run (comma-separated: udp, ip)"},
			&ucli.StringFlag{Name: "pin-path", Usage: "bpffs directory for mode=ip's pinned programs and maps (default /sys/fs/bpf/sclp-ovs, with -netnsINODE appended outside the initial network namespace)"},
			&ucli.StringFlag{Name: "metrics-address", Value: metrics.DefaultAddress, Usage: "Prometheus /metrics, /healthz and /readyz (host:port; \"off\" disables)"},
		}, kubernetes.Flags()...),
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("agent takes no arguments")
			}
			var modes []offload.Mode
			for _, m := range strings.Split(c.String("modes"), ",") {
				if mm := offload.Mode(strings.TrimSpace(m)); mm.Valid() {
					modes = append(modes, mm)
				} else {
					return usagef("--modes: unknown mode %q (want udp, ip)", m)
				}
			}
			cfg := AgentConfig{DB: c.String("db"), RunDir: runDirOf(c.String("db")), Modes: modes,
				PinPath: c.String("pin-path"), Log: d.Log, MetricsAddress: c.String("metrics-address")}
			if kubernetes.Enabled(c) {
				kc, err := kubernetes.ConfigFromCLI(c)
				if err != nil {
					return &UsageError{Err: err}
				}
				cfg.Kubernetes = &kc
			}
			return runAgent(c.Context, d, cfg, c.Duration("resync"))
		},
	}
}

func runAgent(ctx context.Context, d Deps, cfg AgentConfig, resync time.Duration) error {
	if len(d.Signals) > 0 {
		var stop context.CancelFunc
		ctx, stop = signal.NotifyContext(ctx, d.Signals...)
		defer stop()
	}
	log := d.Log
	db, err := dialRetry(ctx, d, cfg.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	if w := tsoWarning(ctx, db); w != "" {
		log.Warn(w)
	}
	if d.NewAgentDeps == nil || d.Links == nil || d.Router == nil {
		return fmt.Errorf("this build has no host implementations for the agent")
	}
	sock := agentSocket(cfg.DB)
	takeover := agentAnswers(sock)
	// A successor's mode=udp datapath registers every port before its receive sockets take
	// traffic alongside the running agent (udp.Options.Standby; activated below).
	cfg.Takeover = takeover
	ad, closeDeps, err := d.NewAgentDeps(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start datapaths: %w", err)
	}
	defer closeDeps()

	rec := &metrics.ReconcileRecorder{}
	flows := metrics.TrackFlows(ad.Flows)
	r, err := controller.New(controller.Options{Store: db, Flows: flows, Links: d.Links, Router: d.Router,
		Datapaths: ad.Datapaths, Log: log, Resync: resync,
		Observe: func(p controller.PassResult) { rec.Observe(p.Duration, p.Err) }})
	if err != nil {
		return err
	}
	var discovery atomic.Pointer[kubernetes.Discovery]
	if cfg.MetricsAddress != "off" {
		var ready []metrics.Check
		if cfg.Kubernetes != nil {
			ready = append(ready, discoveryCheck(&discovery))
		}
		ep := metrics.Wire(ctx, metrics.WireOptions{Addr: cfg.MetricsAddress, Version: Version, Reconciler: r,
			Store: db, Datapaths: ad.Datapaths, Flows: flows, Recorder: rec, Ready: ready, Log: log})
		defer ep.Close()
	}
	started := d.Now()
	var discoveryErr atomic.Pointer[error]
	ctx, stop := context.WithCancel(ctx)
	defer stop()
	done := make(chan error, 1)
	go func() { done <- r.Run(ctx) }()
	if takeover {
		// Another agent runs: carry every port alongside it (the datapaths share the veths'
		// fanout groups and the UDP reuseport groups), then retire it. Traffic never stops.
		log.Info("another agent runs; taking over once every port is ready", "status_socket", sock)
		if err := waitUntil(ctx, 30*time.Second, r.Ready); err != nil {
			if ctx.Err() != nil {
				<-done
				return nil
			}
			log.Warn("not every port is ready after 30 s; taking over anyway (see sclp-ovs show)")
		}
		// Every port is registered: take traffic alongside the old agent, then retire it
		// (it leaves the groups, drains and closes: docs/udp-mode.md, "Handover").
		for mode, dp := range ad.Datapaths {
			if a, ok := dp.(interface{ Activate() error }); ok {
				if err := a.Activate(); err != nil {
					log.Warn("datapath not fully activated", "mode", mode, "err", err)
				}
			}
		}
		hctx, cancel := context.WithTimeout(ctx, 15*time.Second)
		err := requestHandover(hctx, sock)
		cancel()
		if err != nil {
			stop()
			<-done
			return fmt.Errorf("take over from the running agent: %w", err)
		}
		log.Info("took over from the previous agent")
	}
	stopStatus, err := serveStatus(sock, func() AgentStatus {
		return AgentStatus{PID: os.Getpid(), Version: Version, Started: started, Passes: r.Passes(), Ports: r.Ports()}
	}, func() {
		log.Info("a successor agent took over; stopping without touching the ports")
		r.KeepHeartbeat()
		stop()
	})
	if err != nil {
		stop()
		<-done
		return err
	}
	defer stopStatus()
	log.Info("agent running", "db", cfg.DB, "modes", cfg.Modes, "status_socket", sock)
	if cfg.Kubernetes != nil {
		// Node discovery writes the mesh ports through the same OVSDB model as add-port;
		// the reconciler makes them real. It failing (no cluster access) stops the agent.
		discover := d.Discover
		if discover == nil {
			discover = kubernetes.Run
		}
		go func() {
			err := discover(ctx, *cfg.Kubernetes, &kubernetes.OVSDBStore{DB: db, Router: d.Router},
				kubernetes.Options{Logger: log}, discovery.Store)
			if err != nil && ctx.Err() == nil {
				log.Error("kubernetes node discovery stopped", "err", err)
				discoveryErr.Store(&err)
				stop()
			}
		}()
	}
	err = <-done
	if e := discoveryErr.Load(); e != nil && err == nil {
		err = fmt.Errorf("kubernetes node discovery: %w", *e)
	}
	log.Info("agent stopped; ports stay up for the next agent")
	return err
}

// discoveryCheck is the /readyz check "kubernetes": node discovery has started and its last
// reconcile succeeded ((*kubernetes.Discovery).Check).
func discoveryCheck(d *atomic.Pointer[kubernetes.Discovery]) metrics.Check {
	return metrics.Check{Name: "kubernetes", Fn: func(ctx context.Context) error {
		if k := d.Load(); k != nil {
			return k.Check(ctx)
		}
		return fmt.Errorf("%w: node discovery not started", kubernetes.ErrNotReady)
	}}
}

// waitUntil polls cond every 20 ms until it holds, ctx ends or timeout passes.
func waitUntil(ctx context.Context, timeout time.Duration, cond func() bool) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for !cond() {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

// dialRetry connects to OVSDB, retrying with backoff until ctx ends: an agent may start
// before ovsdb-server.
func dialRetry(ctx context.Context, d Deps, endpoint string) (DB, error) {
	b := controller.Backoff{Min: 100 * time.Millisecond, Max: 5 * time.Second}
	for n := 1; ; n++ {
		db, err := openDB(ctx, d, endpoint)
		if err == nil {
			return db, nil
		}
		if n == 1 || n%10 == 0 {
			d.Log.Warn("waiting for OVSDB", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("stopped before OVSDB answered: %w", err)
		case <-time.After(b.Delay(n)):
		}
	}
}
