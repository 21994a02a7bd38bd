package cli

import (
	"context"
	"fmt"
	"os"
	"os/signal"
	"strings"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
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
RUNDIR/sclp-ovs-agent.sock. SIGTERM or SIGINT stops it cleanly and leaves the ports running
for the next agent to adopt (no traffic is dropped across a restart).`,
		Flags: []ucli.Flag{
			&ucli.DurationFlag{Name: "resync", Value: time.Second, Usage: "re-check the host this often (restores flows after an ovs-vswitchd restart)"},
			&ucli.StringFlag{Name: "modes", Value: "udp,ip", Usage: "datapath modes to run (comma-separated: udp, ip)"},
			&ucli.StringFlag{Name: "pin-path", Value: "/sys/fs/bpf/sclp-ovs", Usage: "bpffs directory for mode=ip's pinned programs and maps"},
			&ucli.BoolFlag{Name: "debug", Usage: "log every reconcile step"},
		},
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
			return runAgent(c.Context, d, AgentConfig{DB: c.String("db"), RunDir: runDirOf(c.String("db")), Modes: modes,
				PinPath: c.String("pin-path"), Log: d.Log}, c.Duration("resync"))
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
	if d.NewAgentDeps == nil || d.Links == nil || d.Router == nil {
		return fmt.Errorf("this build has no host implementations for the agent")
	}
	ad, closeDeps, err := d.NewAgentDeps(ctx, cfg)
	if err != nil {
		return fmt.Errorf("start datapaths: %w", err)
	}
	defer closeDeps()
	r, err := controller.New(controller.Options{Store: db, Flows: ad.Flows, Links: d.Links, Router: d.Router,
		Datapaths: ad.Datapaths, Log: log, Resync: resync})
	if err != nil {
		return err
	}
	started := d.Now()
	stopStatus, err := serveStatus(ctx, agentSocket(cfg.DB), func() AgentStatus {
		return AgentStatus{PID: os.Getpid(), Version: Version, Started: started, Passes: r.Passes(), Ports: r.Ports()}
	})
	if err != nil {
		return err
	}
	defer stopStatus()
	log.Info("agent running", "db", cfg.DB, "modes", cfg.Modes, "status_socket", agentSocket(cfg.DB))
	err = r.Run(ctx)
	log.Info("agent stopped; ports stay up for the next agent")
	return err
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
