package ovs

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"

	ofovs "github.com/digitalocean/go-openvswitch/ovs"
)

// Flow, MatchFlow and Action are go-openvswitch's flow types, re-exported so callers build
// flows with its constructors (ofovs.Output, ofovs.Drop(), ofovs.Normal(), ...).
type (
	Flow      = ofovs.Flow
	MatchFlow = ofovs.MatchFlow
	Action    = ofovs.Action
	// ExecFunc runs a command and returns its combined output (go-openvswitch's seam).
	ExecFunc = ofovs.ExecFunc
	// PipeFunc runs a command with stdin and returns its output (used for bundles).
	PipeFunc = ofovs.PipeFunc
)

// Default cookie of the flows this project owns: the top 16 bits spell 0x5c1b ("sclp") and the
// low 48 bits are free for the caller (e.g. a port index).
const (
	DefaultCookie     uint64 = 0x5c1b_0000_0000_0000
	DefaultCookieMask uint64 = 0xffff_0000_0000_0000
)

// OpenFlowProtocols are the versions passed to ovs-ofctl: OpenFlow 1.3 for flows and 1.4,
// which --bundle needs for atomic changes.
var OpenFlowProtocols = []string{ofovs.ProtocolOpenFlow13, ofovs.ProtocolOpenFlow14}

// OpenFlowOptions configures NewOpenFlow.
type OpenFlowOptions struct {
	// RunDir is the OVS run directory holding BRIDGE.mgmt sockets. It is passed to ovs-ofctl
	// as OVS_RUNDIR; empty inherits the environment (OVS_RUNDIR or /var/run/openvswitch).
	RunDir string
	// Cookie and CookieMask mark every flow we own (default DefaultCookie/DefaultCookieMask).
	// Cookie must have no bits outside CookieMask.
	Cookie, CookieMask uint64
	// Exec and Pipe replace the commands that run ovs-ofctl (tests inject fakes).
	Exec ExecFunc
	Pipe PipeFunc
	// TimeoutSeconds bounds each ovs-ofctl run (default 10).
	TimeoutSeconds int
}

// OpenFlow manages the flows we own on Open vSwitch bridges through ovs-ofctl. Every flow it
// adds carries the cookie; deletions and dumps match cookie/mask, so flows of others (and the
// default NORMAL flow) are never touched.
type OpenFlow struct {
	c            *ofovs.Client
	exec         ExecFunc
	pipe         PipeFunc
	timeout      int
	cookie, mask uint64
}

// NewOpenFlow returns an OpenFlow client.
func NewOpenFlow(opts OpenFlowOptions) (*OpenFlow, error) {
	if opts.Cookie == 0 && opts.CookieMask == 0 {
		opts.Cookie, opts.CookieMask = DefaultCookie, DefaultCookieMask
	}
	if opts.CookieMask == 0 || opts.Cookie&^opts.CookieMask != 0 {
		return nil, fmt.Errorf("openflow cookie %#x/%#x: %w: cookie bits outside the mask", opts.Cookie, opts.CookieMask, ErrInvalid)
	}
	if opts.TimeoutSeconds == 0 {
		opts.TimeoutSeconds = 10
	}
	env := ofctlEnv(opts.RunDir)
	if opts.Exec == nil {
		opts.Exec = func(cmd string, args ...string) ([]byte, error) {
			c := exec.Command(cmd, args...)
			c.Env = env
			return c.CombinedOutput()
		}
	}
	if opts.Pipe == nil {
		opts.Pipe = func(stdin io.Reader, cmd string, args ...string) ([]byte, error) {
			c := exec.Command(cmd, args...)
			c.Env, c.Stdin = env, stdin
			return c.CombinedOutput()
		}
	}
	c := ofovs.New(ofovs.Timeout(opts.TimeoutSeconds), ofovs.Protocols(OpenFlowProtocols),
		ofovs.Exec(opts.Exec), ofovs.Pipe(opts.Pipe))
	return &OpenFlow{c: c, exec: opts.Exec, pipe: opts.Pipe, timeout: opts.TimeoutSeconds, cookie: opts.Cookie, mask: opts.CookieMask}, nil
}

func ofctlEnv(runDir string) []string {
	if runDir == "" {
		return nil // inherit
	}
	env := []string{"OVS_RUNDIR=" + runDir}
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "OVS_RUNDIR=") {
			env = append(env, kv)
		}
	}
	return env
}

// Cookie returns the cookie and mask that mark our flows.
func (o *OpenFlow) Cookie() (value, mask uint64) { return o.cookie, o.mask }

// Owned reports whether a flow's cookie marks it as ours.
func (o *OpenFlow) Owned(cookie uint64) bool { return cookie&o.mask == o.cookie }

// own returns a copy of f whose cookie is ours (the caller's low bits kept).
func (o *OpenFlow) own(f *Flow) *Flow {
	c := *f
	c.Cookie = o.cookie | f.Cookie&^o.mask
	return &c
}

func (o *OpenFlow) ours() *MatchFlow {
	return &MatchFlow{Cookie: o.cookie, CookieMask: o.mask, Table: ofovs.AnyTable}
}

// ReplaceFlows atomically (one OpenFlow bundle) deletes every flow we own on bridge and adds
// flows, each marked with our cookie. Flows of others are untouched. An empty flows deletes
// ours.
func (o *OpenFlow) ReplaceFlows(bridge string, flows ...*Flow) error {
	err := o.c.OpenFlow.AddFlowBundle(bridge, func(tx *ofovs.FlowTransaction) error {
		tx.Delete(o.ours())
		for _, f := range flows {
			tx.Add(o.own(f))
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("replace flows on %s: %w", bridge, err)
	}
	return nil
}

// AddFlows adds (or overwrites, by match and priority) flows in one bundle, each with our cookie.
func (o *OpenFlow) AddFlows(bridge string, flows ...*Flow) error {
	if len(flows) == 0 {
		return nil
	}
	err := o.c.OpenFlow.AddFlowBundle(bridge, func(tx *ofovs.FlowTransaction) error {
		for _, f := range flows {
			tx.Add(o.own(f))
		}
		return tx.Commit()
	})
	if err != nil {
		return fmt.Errorf("add flows on %s: %w", bridge, err)
	}
	return nil
}

// DeleteFlows deletes every flow we own on bridge (ovs-ofctl del-flows with cookie/mask).
func (o *OpenFlow) DeleteFlows(bridge string) error {
	if err := o.c.OpenFlow.DelFlows(bridge, o.ours()); err != nil {
		return fmt.Errorf("delete flows on %s: %w", bridge, err)
	}
	return nil
}

// DumpFlows returns the flows we own on bridge, parsed by go-openvswitch (it cannot parse
// goto_table, learn, meter, group or write_metadata: use DumpFlowsRaw for those).
func (o *OpenFlow) DumpFlows(bridge string) ([]*Flow, error) {
	flows, err := o.c.OpenFlow.DumpFlowsWithFlowArgs(bridge, o.ours())
	if err != nil {
		return nil, fmt.Errorf("dump flows on %s: %w", bridge, err)
	}
	return flows, nil
}

// DumpFlowsRaw returns ovs-ofctl's text for the flows we own on bridge, one flow per line,
// without statistics (--no-stats).
func (o *OpenFlow) DumpFlowsRaw(bridge string) (string, error) {
	m, err := o.ours().MarshalText()
	if err != nil {
		return "", err
	}
	out, err := o.exec("ovs-ofctl", fmt.Sprintf("--timeout=%d", o.timeout), "--no-stats",
		"--protocols="+strings.Join(OpenFlowProtocols, ","), "dump-flows", bridge, string(m))
	if err != nil {
		return "", fmt.Errorf("dump flows on %s: %w: %s", bridge, err, bytes.TrimSpace(out))
	}
	var lines []string
	for _, l := range strings.Split(string(bytes.TrimSpace(out)), "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "OFPST_FLOW") && !strings.HasPrefix(l, "NXST_FLOW") {
			lines = append(lines, l)
		}
	}
	return strings.Join(lines, "\n"), nil
}
