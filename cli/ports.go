package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/netip"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

const addPortHelp = `Records a VXLAN-over-SCLP tunnel port in OVSDB (Interface external_ids) and, with --wait
(the default), waits until the sclp-ovs agent on this host reports it ready.

Options (key=value, like ovs-vsctl):
   peer=IP        remote host's underlay IPv4 address (required)
   key=VNI        VXLAN network identifier, 0-16777215 (default 0)
   local_ip=IP    local underlay address (default: source address of the route to peer)
   dev=DEV        underlay device (default: device of the route to peer)
   name=PORT      port name, at most 14 characters (default: sclp + peer in hex, e.g. sclp0a000002)
   mtu=N          tunnel port MTU, 68-65000 (default: underlay MTU - 62 for udp, - 54 for ip);
                  above the underlay MTU is fine: SCLP segments, IP never fragments
   mode=udp|ip    SCLP inside UDP (default, fast) or SCLP as IP protocol 234
   dst_port=N     UDP destination port (mode=udp, default 4795)
   tos=N ttl=N    outer IPv4 TOS (default 0) and TTL (default 64)
   df=true        outer DF (always set; df=false is refused)

Exit status: 0 ready (or recorded, with --wait=false); 1 runtime failure (no such bridge, peer
already tunnelled, no route, no agent, agent error, timeout); 2 usage error. An error before
the port is recorded writes nothing to OVSDB; once recorded (an agent error or the --wait
timeout) the port stays, and sclp-ovs del-port removes it.`

func addPortCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:        "add-port",
		Usage:       "add a tunnel port to a bridge",
		ArgsUsage:   "BRIDGE peer=IP [key=VNI] [local_ip=IP] [dev=DEV] [name=PORT] [mtu=N] [mode=udp|ip] [dst_port=N] [tos=N] [ttl=N]",
		Description: addPortHelp,
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "wait", Value: true, Usage: "wait until the agent reports the port ready (needs a running agent)"},
			&ucli.DurationFlag{Name: "timeout", Value: 30 * time.Second, Usage: "how long --wait waits"},
		},
		BashComplete: func(c *ucli.Context) {
			if d.completingFlag {
				ucli.DefaultCompleteWithFlags(c.Command)(c)
				return
			}
			for _, k := range controller.OptionNames() {
				fmt.Fprintln(c.App.Writer, k+"=")
			}
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() < 2 {
				return usagef("add-port needs BRIDGE and peer=IP, e.g. sclp-ovs add-port br-int peer=10.0.0.2")
			}
			cfg, err := controller.ParseOptions(c.Args().First(), c.Args().Tail())
			if err != nil {
				return err
			}
			return addPort(c.Context, d, c.String("db"), cfg, c.Bool("wait"), c.Duration("timeout"))
		},
	}
}

func openDB(ctx context.Context, d Deps, endpoint string) (DB, error) {
	if d.OpenDB == nil {
		return nil, errors.New("no OVSDB client compiled in")
	}
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	db, err := d.OpenDB(dctx, endpoint)
	if err != nil {
		return nil, fmt.Errorf("connect to OVSDB at %s: %w (is ovsdb-server running? pass --db)", endpoint, err)
	}
	return db, nil
}

func findBridge(bridges []controller.Bridge, name string) (controller.Bridge, bool) {
	for _, b := range bridges {
		if b.Name == name {
			return b, true
		}
	}
	return controller.Bridge{}, false
}

func noBridge(name string) error {
	return fmt.Errorf("no bridge named %s (create it: ovs-vsctl add-br %s -- set bridge %s datapath_type=netdev)", name, name, name)
}

func addPort(ctx context.Context, d Deps, endpoint string, cfg controller.PortConfig, wait bool, timeout time.Duration) error {
	db, err := openDB(ctx, d, endpoint)
	if err != nil {
		return err
	}
	defer db.Close()
	bridges, err := db.Bridges(ctx)
	if err != nil {
		return fmt.Errorf("read OVSDB: %w", err)
	}
	br, ok := findBridge(bridges, cfg.Bridge)
	if !ok {
		return noBridge(cfg.Bridge)
	}
	if d.Router == nil {
		return errors.New("no router compiled in")
	}
	res, err := controller.Resolve(ctx, d.Router, cfg)
	if err != nil {
		return err
	}
	ids := res.ExternalIDs()
	if existing, err := checkConflicts(bridges, br, res, ids); err != nil || existing {
		if err == nil {
			writeln(d.Stderr, "sclp-ovs: port %s (peer %v) already exists on %s with the same options", res.Name, res.Peer, br.Name)
			if wait {
				return waitReady(ctx, d, db, res.Name, timeout)
			}
		}
		return err
	}
	if wait {
		if err := agentAlive(ctx, d, db); err != nil {
			return err
		}
	}
	if err := db.AddPort(ctx, br.Name, res.Name, ids); err != nil {
		return fmt.Errorf("add port %s to %s: %w", res.Name, br.Name, err)
	}
	if !wait {
		writeln(d.Stdout, "%s", res.Name)
		return nil
	}
	return waitReady(ctx, d, db, res.Name, timeout)
}

// checkConflicts reports whether the port already exists with the same configuration
// (idempotent add), or an error if the name or the peer is taken.
func checkConflicts(bridges []controller.Bridge, br controller.Bridge, res controller.PortConfig, ids map[string]string) (bool, error) {
	for _, p := range br.Ports {
		if !controller.Owned(p.ExternalIDs) || p.ExternalIDs[controller.KeyPeer] != res.Peer.String() {
			continue
		}
		if p.Name == res.Name && sameConfig(p.ExternalIDs, ids) {
			return true, nil
		}
		return false, fmt.Errorf("peer %v already has tunnel port %s on %s (one port per peer and bridge; run sclp-ovs del-port %s %s first)",
			res.Peer, p.Name, br.Name, br.Name, p.Name)
	}
	for _, b := range bridges {
		for _, p := range b.Ports {
			if p.Name != res.Name {
				continue
			}
			what := "a port that sclp-ovs does not own"
			if controller.Owned(p.ExternalIDs) {
				what = "the tunnel port to " + p.ExternalIDs[controller.KeyPeer]
			}
			return false, fmt.Errorf("port name %s is taken on bridge %s by %s (choose another name=)", res.Name, b.Name, what)
		}
	}
	return false, nil
}

func sameConfig(have, want map[string]string) bool {
	h := maps.Clone(have)
	delete(h, controller.KeyStatus)
	return maps.Equal(h, want)
}

// agentAlive returns an error naming the fix when no agent heartbeat is fresh.
func agentAlive(ctx context.Context, d Deps, db DB) error {
	hb, err := db.Heartbeat(ctx)
	if err != nil {
		return fmt.Errorf("read agent heartbeat: %w", err)
	}
	age, ok := heartbeatAge(hb, d.Now())
	switch {
	case !ok:
		return errors.New("no sclp-ovs agent is running for this OVSDB (start one: sclp-ovs agent; or pass --wait=false to only record the port)")
	case age > controller.HeartbeatStale:
		return fmt.Errorf("the sclp-ovs agent's last heartbeat is %s old: it is not running (start it: sclp-ovs agent; or pass --wait=false)", age.Round(time.Second))
	}
	return nil
}

func heartbeatAge(hb string, now time.Time) (time.Duration, bool) {
	t, err := time.Parse(time.RFC3339Nano, hb)
	if err != nil {
		return 0, false
	}
	return now.Sub(t), true
}

func portStatus(ctx context.Context, db DB, name string) (string, bool, error) {
	bridges, err := db.Bridges(ctx)
	if err != nil {
		return "", false, err
	}
	for _, b := range bridges {
		for _, p := range b.Ports {
			if p.Name == name {
				return p.ExternalIDs[controller.KeyStatus], true, nil
			}
		}
	}
	return "", false, nil
}

// waitReady polls the port's status (from the monitored cache) until the agent reports it
// ready, reports an error, or the timeout passes.
func waitReady(ctx context.Context, d Deps, db DB, name string, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	last := ""
	for {
		status, found, err := portStatus(ctx, db, name)
		switch {
		case err != nil:
			return fmt.Errorf("read status of %s: %w", name, err)
		case !found:
			return fmt.Errorf("port %s disappeared while waiting (deleted by someone else?)", name)
		case status == controller.StatusReady:
			writeln(d.Stdout, "%s", name)
			return nil
		case strings.HasPrefix(status, controller.StatusErrorPrefix):
			return fmt.Errorf("the agent reports port %s: %s (the port stays recorded and the agent keeps retrying; fix the cause or run sclp-ovs del-port)", name, status)
		}
		last = status
		select {
		case <-ctx.Done():
			if last == "" {
				last = "no status yet"
			}
			if err := agentAlive(context.WithoutCancel(ctx), d, db); err != nil {
				return fmt.Errorf("port %s recorded but not ready after %s: %w", name, timeout, err)
			}
			return fmt.Errorf("port %s recorded but not ready after %s (%s); see sclp-ovs show and the agent's log", name, timeout, last)
		case <-tick.C:
		}
	}
}

func delPortCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:      "del-port",
		Usage:     "delete a tunnel port (by name or by peer=IP)",
		ArgsUsage: "BRIDGE PORT | BRIDGE peer=IP",
		Description: `Removes the tunnel port from OVSDB; the agent then removes its veth pair, datapath state
and flows. Deleting a port that does not exist succeeds (idempotent) with a note on stderr.
Ports that sclp-ovs does not own are refused: use ovs-vsctl del-port for them.`,
		Action: func(c *ucli.Context) error {
			if c.NArg() != 2 {
				return usagef("del-port needs BRIDGE and PORT (or peer=IP), e.g. sclp-ovs del-port br-int sclp0a000002")
			}
			bridge, target := c.Args().Get(0), c.Args().Get(1)
			if err := controller.ValidateName("bridge", bridge, 15); err != nil {
				return err
			}
			var peer netip.Addr
			if v, ok := strings.CutPrefix(target, "peer="); ok {
				a, err := netip.ParseAddr(v)
				if err != nil || !a.Is4() {
					return &controller.OptionError{Key: "peer", Value: v, Reason: "not an IPv4 address"}
				}
				peer = a
			} else if err := controller.ValidateName("port", target, 15); err != nil {
				return err
			}
			return delPort(c.Context, d, c.String("db"), bridge, target, peer)
		},
	}
}

func delPort(ctx context.Context, d Deps, endpoint, bridge, name string, peer netip.Addr) error {
	db, err := openDB(ctx, d, endpoint)
	if err != nil {
		return err
	}
	defer db.Close()
	bridges, err := db.Bridges(ctx)
	if err != nil {
		return fmt.Errorf("read OVSDB: %w", err)
	}
	br, ok := findBridge(bridges, bridge)
	if !ok {
		return noBridge(bridge)
	}
	for _, p := range br.Ports {
		match := p.Name == name
		if peer.IsValid() {
			match = controller.Owned(p.ExternalIDs) && p.ExternalIDs[controller.KeyPeer] == peer.String()
		}
		if !match {
			continue
		}
		if !controller.Owned(p.ExternalIDs) {
			return fmt.Errorf("port %s is not an sclp-ovs tunnel port (use ovs-vsctl del-port %s %s)", p.Name, bridge, p.Name)
		}
		if err := db.DeletePort(ctx, bridge, p.Name); err != nil {
			return fmt.Errorf("delete port %s: %w", p.Name, err)
		}
		writeln(d.Stdout, "%s", p.Name)
		return nil
	}
	writeln(d.Stderr, "sclp-ovs: no tunnel port %s on %s: nothing to do", name, bridge)
	return nil
}

// portRow is one tunnel port as list-ports and show print it.
type portRow struct {
	Bridge   string            `json:"bridge"`
	Name     string            `json:"name"`
	Peer     string            `json:"peer"`
	Key      string            `json:"key"`
	Mode     string            `json:"mode"`
	LocalIP  string            `json:"local_ip"`
	Dev      string            `json:"dev"`
	MTU      string            `json:"mtu"`
	DstPort  string            `json:"dst_port,omitempty"`
	OFPort   int               `json:"ofport"`
	Status   string            `json:"status"`
	Counters map[string]uint64 `json:"counters,omitempty"`
	Datapath map[string]uint64 `json:"datapath,omitempty"`
}

func rowsOf(bridges []controller.Bridge, only string) []portRow {
	var rows []portRow
	for _, b := range bridges {
		if only != "" && b.Name != only {
			continue
		}
		for _, p := range b.Ports {
			ids := p.ExternalIDs
			if !controller.Owned(ids) {
				continue
			}
			st := ids[controller.KeyStatus]
			if st == "" {
				st = "pending: no agent has seen it yet"
			}
			rows = append(rows, portRow{Bridge: b.Name, Name: p.Name, Peer: ids[controller.KeyPeer], Key: ids[controller.KeyVNI],
				Mode: ids[controller.KeyMode], LocalIP: ids[controller.KeyLocalIP], Dev: ids[controller.KeyDev],
				MTU: ids[controller.KeyMTU], DstPort: ids[controller.KeyDstPort], OFPort: p.OFPort, Status: st})
		}
	}
	sort.Slice(rows, func(i, j int) bool {
		if rows[i].Bridge != rows[j].Bridge {
			return rows[i].Bridge < rows[j].Bridge
		}
		return rows[i].Name < rows[j].Name
	})
	return rows
}

func listPortsCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:      "list-ports",
		Usage:     "list tunnel ports (of one bridge, or all)",
		ArgsUsage: "[BRIDGE]",
		Flags:     []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 1 {
				return usagef("list-ports takes at most one BRIDGE")
			}
			db, err := openDB(c.Context, d, c.String("db"))
			if err != nil {
				return err
			}
			defer db.Close()
			bridges, err := db.Bridges(c.Context)
			if err != nil {
				return fmt.Errorf("read OVSDB: %w", err)
			}
			only := c.Args().First()
			if _, ok := findBridge(bridges, only); only != "" && !ok {
				return noBridge(only)
			}
			rows := rowsOf(bridges, only)
			if c.Bool("json") {
				return printJSON(d, rows)
			}
			tw := tabwriter.NewWriter(d.Stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "BRIDGE\tPORT\tPEER\tKEY\tMODE\tMTU\tSTATUS")
			for _, r := range rows {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Bridge, r.Name, r.Peer, r.Key, r.Mode, r.MTU, r.Status)
			}
			return tw.Flush()
		},
	}
}

func printJSON(d Deps, v any) error {
	enc := json.NewEncoder(d.Stdout)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}
