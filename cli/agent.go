package cli

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"sync"
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
agent process, so stop-then-start leaves a gap of about the start-up time). The old agent then
exits, or with --after-handover=retire (a Kubernetes surge update, where the kubelet would
restart an exited container) stays alive holding nothing until SIGTERM.`,
		Flags: append([]ucli.Flag{
			&ucli.DurationFlag{Name: "resync", Value: time.Second, Usage: "re-check the host this often (restores flows after an ovs-vswitchd restart)"},
			&ucli.StringFlag{Name: "modes", Value: "udp,ip", Usage: "datapath modes to run (comma-separated: udp, ip)"},
			&ucli.StringFlag{Name: "pin-path", Usage: "bpffs directory for mode=ip's pinned programs and maps (default /sys/fs/bpf/sclp-ovs, with -netnsINODE appended outside the initial network namespace)"},
			&ucli.StringFlag{Name: "metrics-address", Value: metrics.DefaultAddress, Usage: "Prometheus /metrics, /healthz and /readyz (host:port; \"off\" disables)"},
			&ucli.StringFlag{Name: "after-handover", Value: AfterHandoverExit, EnvVars: []string{"SCLP_OVS_AFTER_HANDOVER"},
				Usage: "once a successor took over: exit, or retire (hold nothing, /healthz 200, /readyz 503, exit 0 on SIGTERM: for a Kubernetes surge update)"},
			&ucli.BoolFlag{Name: "udp-fast-path", Value: true, EnvVars: []string{"SCLP_OVS_UDP_FAST_PATH"},
				Usage: "mode=udp: carry one-segment messages (ACKs, small frames) in tc-BPF instead of the userspace workers (--udp-fast-path=false: workers only)"},
			&ucli.StringFlag{Name: "retired-marker", EnvVars: []string{"SCLP_OVS_RETIRED_MARKER"},
				Usage: "with --after-handover=retire: file written on retiring; an agent that finds it at start stays retired (put it in a pod-scoped emptyDir)"},
			&ucli.StringFlag{Name: "probe-socket", EnvVars: []string{"SCLP_OVS_PROBE_SOCKET"},
				Usage: "unix socket serving this process's own /healthz and /readyz for exec probes (sclp-ovs probe); put it in a pod-scoped emptyDir: the shared metrics port answers for whichever agent holds it"},
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
			after := c.String("after-handover")
			if after != AfterHandoverExit && after != AfterHandoverRetire {
				return usagef("--after-handover: %q (want exit or retire)", after)
			}
			if c.String("retired-marker") != "" && after != AfterHandoverRetire {
				return usagef("--retired-marker needs --after-handover=retire")
			}
			cfg := AgentConfig{DB: c.String("db"), RunDir: runDirOf(c.String("db")), Modes: modes,
				PinPath: c.String("pin-path"), Log: d.Log, MetricsAddress: c.String("metrics-address"),
				AfterHandover: after, RetiredMarker: c.String("retired-marker"), NoUDPFastPath: !c.Bool("udp-fast-path"),
				ProbeSocket: c.String("probe-socket")}
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
	// This process's own probes (--probe-socket): "starting" until the agent runs.
	probes, err := serveProbes(cfg.ProbeSocket)
	if err != nil {
		return err
	}
	defer probes.close()
	if to, ok := retiredBefore(cfg.RetiredMarker, log); ok {
		// This container's pod handed over before (the kubelet restarted its retired agent):
		// a newer agent carries the ports. Taking over from it would steal them back.
		log.Info("this agent's pod handed over before; staying retired", "marker", cfg.RetiredMarker)
		return stayRetired(ctx, log, cfg.MetricsAddress, probes, to)
	}
	sock := agentSocket(cfg.DB)
	takeover := agentAnswers(sock)
	self := HandoverRequest{PID: os.Getpid(), MetricsAddress: cfg.MetricsAddress}
	endAnnounce := func() {}
	if takeover {
		// Tell the running agent a successor is starting, before anything that can take
		// long or hang (OVSDB, the datapaths): its /readyz fails (HTTP probes of the surge
		// pod on the shared metrics port reach it) and a SIGTERM waits for the handover.
		actx, cancel := context.WithCancel(context.Background())
		announced := make(chan struct{})
		go func() {
			defer close(announced)
			announceSuccessor(actx, sock, self)
		}()
		endAnnounce = sync.OnceFunc(func() { cancel(); <-announced })
	}
	defer endAnnounce()
	probes.starting("waiting for OVSDB")
	db, err := dialRetry(ctx, d, cfg.DB)
	if err != nil {
		return err
	}
	closeDB := sync.OnceFunc(db.Close)
	defer closeDB()
	if w := tsoWarning(ctx, db); w != "" {
		log.Warn(w)
	}
	if d.NewAgentDeps == nil || d.Links == nil || d.Router == nil {
		return fmt.Errorf("this build has no host implementations for the agent")
	}
	probes.starting("starting the datapaths")
	// A successor's mode=udp datapath registers every port before its receive sockets take
	// traffic alongside the running agent (udp.Options.Standby; activated below).
	cfg.Takeover = takeover
	ad, closeDeps, err := d.NewAgentDeps(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start datapaths: %w", err)
	}
	closeDeps = sync.OnceFunc(closeDeps)
	defer closeDeps()

	rec := &metrics.ReconcileRecorder{}
	flows := metrics.TrackFlows(ad.Flows)
	r, err := controller.New(controller.Options{Store: db, Flows: flows, Links: d.Links, Router: d.Router,
		Datapaths: ad.Datapaths, Log: log, Resync: resync,
		Observe: func(p controller.PassResult) { rec.Observe(p.Duration, p.Err) }})
	if err != nil {
		return err
	}
	// The agent runs until stop: on SIGTERM (ctx), unless a successor is starting, which it
	// waits for (bounded), so that a surge pod's old agent deleted early keeps forwarding
	// until the new one carries the ports; or on a handover.
	runCtx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	succ := newSuccessors()
	var active atomic.Bool // false while this agent still has to take over
	active.Store(!takeover)
	var discovery atomic.Pointer[kubernetes.Discovery]
	closeMetrics := func() {}
	ready := []metrics.Check{handoverCheck(succ), takeoverCheck(&active)}
	if cfg.Kubernetes != nil {
		ready = append(ready, discoveryCheck(&discovery))
	}
	// The probe socket answers what the metrics endpoint does (controller/metrics.Wire's
	// checks), for this process only.
	probes.set(checksHandler(append([]metrics.Check{metrics.StoreCheck(db)}, metrics.DatapathChecks(ad.Datapaths)...),
		append([]metrics.Check{metrics.ConvergedCheck(r)}, ready...)))
	if cfg.MetricsAddress != "off" {
		ep := metrics.Wire(runCtx, metrics.WireOptions{Addr: cfg.MetricsAddress, Version: Version, Reconciler: r,
			Store: db, Datapaths: ad.Datapaths, Flows: flows, Recorder: rec, Ready: ready, Log: log})
		closeMetrics = sync.OnceFunc(ep.Close)
		defer closeMetrics()
	}
	started := d.Now()
	var discoveryErr atomic.Pointer[error]
	go func() {
		select {
		case <-ctx.Done():
		case <-runCtx.Done():
			return
		}
		if pid, ok := succ.pending(); ok {
			log.Info("stop requested while a successor takes over; forwarding until it has", "successor_pid", pid)
			if !succ.waitIdle(runCtx, successorWait) {
				log.Warn("the successor did not take over in time; stopping", "waited", successorWait)
			}
		}
		stop()
	}()
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	if takeover {
		// Another agent runs: carry every port alongside it (the datapaths share the veths'
		// fanout groups and the UDP reuseport groups), then retire it. Traffic never stops.
		log.Info("another agent runs; taking over once every port is ready", "status_socket", sock)
		if err := waitUntil(runCtx, takeoverWait, r.Ready); err != nil {
			if runCtx.Err() != nil {
				<-done
				return nil
			}
			if cfg.AfterHandover == AfterHandoverRetire {
				// Under an orchestrator that retries (a DaemonSet surge update), a successor
				// that cannot carry what the running agent carries gives up instead: the
				// update stalls (this pod never becomes ready) rather than breaks ports.
				if lost := notReadyHere(runCtx, sock, r.Ports()); len(lost) > 0 {
					stop()
					<-done
					return fmt.Errorf("not taking over: %s ready under the running agent but not here after %v (it keeps them)",
						strings.Join(lost, ", "), takeoverWait)
				}
			}
			log.Warn("not every port is ready after 30 s; taking over anyway (see sclp-ovs show)", "waited", takeoverWait)
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
		hctx, cancel := context.WithTimeout(runCtx, 15*time.Second)
		err := requestHandoverFrom(hctx, sock, self)
		cancel()
		endAnnounce()
		if err != nil {
			stop()
			<-done
			return fmt.Errorf("take over from the running agent: %w", err)
		}
		active.Store(true)
		log.Info("took over from the previous agent")
		// mode=udp ports defer their transmit fast path while the old agent's sockets are on
		// their veths; it is stopping now: start it once they are gone (docs/udp-mode.md).
		for mode, dp := range ad.Datapaths {
			if f, ok := dp.(interface{ FinishTakeover(context.Context) error }); ok {
				go func() {
					fctx, cancel := context.WithTimeout(runCtx, takeoverWait)
					defer cancel()
					if err := f.FinishTakeover(fctx); err != nil && runCtx.Err() == nil {
						log.Warn("transmit fast path not started on every port", "mode", mode, "err", err)
					}
				}()
			}
		}
	}
	var handedTo atomic.Pointer[HandoverRequest]
	stopStatus, err := serveStatusHandlers(sock, StatusHandlers{
		Status: func() AgentStatus {
			return AgentStatus{PID: os.Getpid(), Version: Version, Started: started, Passes: r.Passes(), Ports: r.Ports()}
		},
		Prepare: func(to HandoverRequest) error {
			if cfg.AfterHandover != AfterHandoverRetire || cfg.RetiredMarker == "" {
				return nil
			}
			// Record the handover (synced) before answering it: once the successor has its
			// answer, a restart of this container (it dying while it drains) must stay
			// retired instead of taking the ports back.
			if err := writeRetiredMarker(cfg.RetiredMarker, to, d.Now()); err != nil {
				log.Error("cannot write the retired marker; refusing the handover", "path", cfg.RetiredMarker, "err", err)
				return fmt.Errorf("refused: cannot record the handover in the retired marker: %w", err)
			}
			return nil
		},
		Handover: func(to HandoverRequest) {
			log.Info("a successor agent took over; stopping without touching the ports", "successor_pid", to.PID)
			handedTo.Store(&to)
			if cfg.AfterHandover == AfterHandoverRetire {
				probes.set(retiredHandler(to))
			}
			r.KeepHeartbeat()
			stop()
		},
		Refuse: func(to HandoverRequest) error {
			if cfg.AfterHandover == AfterHandoverRetire && to.PID == 0 {
				// An agent of an earlier version (it sends no body): under a DaemonSet, the
				// restarted container of an old pod that has just handed over to this one.
				// Handing back would retire this agent for good and leave the ports to a pod
				// about to be deleted.
				log.Warn("refusing a handover to an agent of an earlier version (no --after-handover): it would take the ports back from this newer one")
				return errors.New("refused: this agent retires after a handover (--after-handover=retire) and hands over only to an agent that says who it is (sclp-ovs with --after-handover)")
			}
			return nil
		},
		Successor: func(to HandoverRequest) func() {
			log.Info("a successor agent is starting", "successor_pid", to.PID)
			return succ.add(to)
		},
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
			err := discover(runCtx, *cfg.Kubernetes, &kubernetes.OVSDBStore{DB: db, Router: d.Router},
				kubernetes.Options{Logger: log}, discovery.Store)
			if err != nil && runCtx.Err() == nil {
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
	if to := handedTo.Load(); to != nil && cfg.AfterHandover == AfterHandoverRetire {
		// Let go of everything the successor needs or that a retired agent must not hold:
		// the status socket (already the successor's), the metrics port, the datapaths
		// (mode=udp drains and closes its sockets, as on exit), OVSDB.
		stopStatus()
		closeMetrics()
		closeDeps()
		closeDB()
		return stayRetired(ctx, log, cfg.MetricsAddress, probes, *to)
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
