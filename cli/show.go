package cli

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// report is everything show and stats print.
type report struct {
	DB      string    `json:"db"`
	Agent   agentInfo `json:"agent"`
	Ports   []portRow `json:"ports"`
	Warning string    `json:"warning,omitempty"`
	bridge  []controller.Bridge
}

type agentInfo struct {
	Running   bool   `json:"running"`
	Heartbeat string `json:"heartbeat,omitempty"`
	PID       int    `json:"pid,omitempty"`
	Version   string `json:"version,omitempty"`
	Passes    int    `json:"passes,omitempty"`
	Note      string `json:"note,omitempty"`
}

func collect(ctx context.Context, d Deps, endpoint string) (report, error) {
	r := report{DB: endpoint}
	db, err := openDB(ctx, d, endpoint)
	if err != nil {
		return r, err
	}
	defer db.Close()
	bridges, err := db.Bridges(ctx)
	if err != nil {
		return r, fmt.Errorf("read OVSDB: %w", err)
	}
	r.bridge = bridges
	r.Ports = rowsOf(bridges, "")
	r.Warning = tsoWarning(ctx, db)
	hb, _ := db.Heartbeat(ctx)
	if age, ok := heartbeatAge(hb, d.Now()); ok {
		r.Agent.Heartbeat = hb
		r.Agent.Running = age <= controller.HeartbeatStale
		if !r.Agent.Running {
			r.Agent.Note = fmt.Sprintf("last heartbeat %s ago", age.Round(time.Second))
		}
	} else {
		r.Agent.Note = "no heartbeat: start sclp-ovs agent"
	}
	dp := map[string]map[string]uint64{}
	if st, err := fetchStatus(ctx, agentSocket(endpoint)); err == nil {
		r.Agent.PID, r.Agent.Version, r.Agent.Passes = st.PID, st.Version, st.Passes
		for _, p := range st.Ports {
			dp[p.Config.Name] = p.Datapath
		}
	} else if r.Agent.Running {
		r.Agent.Note = "status socket " + agentSocket(endpoint) + " not reachable: " + err.Error()
	}
	for i := range r.Ports {
		r.Ports[i].Counters = d.Counters(r.Ports[i].Name)
		r.Ports[i].Datapath = dp[r.Ports[i].Name]
	}
	return r, nil
}

func showCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:  "show",
		Usage: "show the agent, every tunnel port, its status, configuration and counters",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON"}},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("show takes no arguments")
			}
			r, err := collect(c.Context, d, c.String("db"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				return printJSON(d, r)
			}
			printShow(d, r)
			return nil
		},
	}
}

func printShow(d Deps, r report) {
	w := d.Stdout
	agent := "not running (" + r.Agent.Note + ")"
	if r.Agent.Running {
		agent = fmt.Sprintf("running, heartbeat %s", r.Agent.Heartbeat)
		if r.Agent.PID != 0 {
			agent = fmt.Sprintf("running (pid %d, %s, %d passes), heartbeat %s", r.Agent.PID, r.Agent.Version, r.Agent.Passes, r.Agent.Heartbeat)
		}
		if r.Agent.Note != "" {
			agent += "; " + r.Agent.Note
		}
	}
	writeln(w, "OVSDB %s", r.DB)
	writeln(w, "agent: %s", agent)
	if r.Warning != "" {
		writeln(w, "warning: %s", r.Warning)
	}
	for _, b := range r.bridge {
		var ports []portRow
		for _, p := range r.Ports {
			if p.Bridge == b.Name {
				ports = append(ports, p)
			}
		}
		if len(ports) == 0 {
			continue
		}
		writeln(w, "Bridge %s", b.Name)
		for _, p := range ports {
			writeln(w, "    Port %s (ofport %d): %s", p.Name, p.OFPort, p.Status)
			extra := ""
			if p.DstPort != "" {
				extra = " dst_port " + p.DstPort
			}
			writeln(w, "        peer %s  local %s dev %s  mode %s%s  key %s  mtu %s", p.Peer, p.LocalIP, p.Dev, p.Mode, extra, p.Key, p.MTU)
			writeln(w, "        veth %s <-> %s", p.Name, controller.PeerNameOf(p.Name))
			if c := p.Counters; c != nil {
				writeln(w, "        port rx %d pkts %s, tx %d pkts %s, dropped rx %d tx %d", c["rx_packets"], human(c["rx_bytes"]),
					c["tx_packets"], human(c["tx_bytes"]), c["rx_dropped"], c["tx_dropped"])
			} else {
				writeln(w, "        veth missing (the agent creates it)")
			}
			if len(p.Datapath) > 0 {
				writeln(w, "        datapath %s", kv(p.Datapath))
			}
		}
	}
	if len(r.Ports) == 0 {
		writeln(w, "no tunnel ports (add one: sclp-ovs add-port BRIDGE peer=IP)")
	}
}

func kv(m map[string]uint64) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s=%d", k, m[k])
	}
	return strings.Join(parts, " ")
}

func human(b uint64) string {
	const unit = 1024
	if b < unit {
		return fmt.Sprintf("%d B", b)
	}
	div, exp := uint64(unit), 0
	for n := b / unit; n >= unit; n /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(b)/float64(div), "KMGTPE"[exp])
}

func statsCommand(d Deps) *ucli.Command {
	return &ucli.Command{
		Name:  "stats",
		Usage: "per-port counters: tunnel port (veth) and datapath",
		Flags: []ucli.Flag{&ucli.BoolFlag{Name: "json", Usage: "print JSON (one object per port)"}},
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("stats takes no arguments")
			}
			r, err := collect(c.Context, d, c.String("db"))
			if err != nil {
				return err
			}
			if c.Bool("json") {
				type stat struct {
					Bridge   string            `json:"bridge"`
					Port     string            `json:"port"`
					Peer     string            `json:"peer"`
					Status   string            `json:"status"`
					Port_    map[string]uint64 `json:"port_counters"`
					Datapath map[string]uint64 `json:"datapath_counters"`
				}
				out := []stat{}
				for _, p := range r.Ports {
					out = append(out, stat{p.Bridge, p.Name, p.Peer, p.Status, p.Counters, p.Datapath})
				}
				return printJSON(d, out)
			}
			tw := tabwriter.NewWriter(d.Stdout, 0, 4, 2, ' ', tabwriter.AlignRight)
			fmt.Fprintln(tw, "PORT\tPEER\tRX_PKTS\tRX_BYTES\tTX_PKTS\tTX_BYTES\tDROPS\t")
			for _, p := range r.Ports {
				c := p.Counters
				fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t\n", p.Name, p.Peer, c["rx_packets"], c["rx_bytes"], c["tx_packets"], c["tx_bytes"], c["rx_dropped"]+c["tx_dropped"])
			}
			if err := tw.Flush(); err != nil {
				return err
			}
			for _, p := range r.Ports {
				if len(p.Datapath) > 0 {
					writeln(d.Stdout, "%s datapath: %s", p.Name, kv(p.Datapath))
				}
			}
			return nil
		},
	}
}
