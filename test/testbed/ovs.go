package testbed

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
)

// VswitchSchema is where Debian's openvswitch-common installs the Open_vSwitch schema.
const VswitchSchema = "/usr/share/openvswitch/vswitch.ovsschema"

// OVSOptions configures StartOVSWith.
type OVSOptions struct {
	// NoUserspaceTSO leaves other_config:userspace-tso-enable unset. By default it is set to
	// true before ovs-vswitchd starts: without it TCP through a netdev bridge fails with
	// default VM offloads (PLATFORM.md).
	NoUserspaceTSO bool
	// NoVswitchd starts only ovsdb-server.
	NoVswitchd bool
}

// OVS is a private Open vSwitch (ovsdb-server + ovs-vswitchd, userspace datapath) running in a
// namespace, with all its files under Dir.
type OVS struct {
	// NS is the namespace the daemons run in (their netdev ports are that namespace's devices).
	NS *NS
	// Dir holds run/, db/, log/ and etc/ (OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR, OVS_SYSCONFDIR).
	Dir string
	// DBSock is the ovsdb-server socket path ($OVS_RUNDIR/db.sock).
	DBSock string
	// RunDir, DBPath and LogDir are the run directory, the database file and the log directory.
	RunDir, DBPath, LogDir string

	tb       TB
	mu       sync.Mutex
	db, vswd *Proc
}

// StartOVS starts a private OVS in ns with default options. tb.Cleanup stops both daemons
// (ovs-appctl exit, then by PID) and removes Dir.
func StartOVS(tb TB, ns *NS) *OVS {
	tb.Helper()
	return StartOVSWith(tb, ns, OVSOptions{})
}

// StartOVSWith starts a private OVS in ns.
func StartOVSWith(tb TB, ns *NS, opts OVSOptions) *OVS {
	tb.Helper()
	// A short path in TMPDIR: unix socket paths are limited to 108 bytes.
	dir, err := os.MkdirTemp("", "ovs-"+ns.Name+"-")
	if err != nil {
		tb.Fatalf("testbed: create OVS dir: %v", err)
	}
	tb.Cleanup(func() { os.RemoveAll(dir) })
	o := &OVS{NS: ns, Dir: dir, tb: tb,
		RunDir: filepath.Join(dir, "run"), LogDir: filepath.Join(dir, "log"),
		DBPath: filepath.Join(dir, "db", "conf.db")}
	o.DBSock = filepath.Join(o.RunDir, "db.sock")
	for _, d := range []string{o.RunDir, o.LogDir, filepath.Dir(o.DBPath), filepath.Join(dir, "etc")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			tb.Fatalf("testbed: %v", err)
		}
	}
	if out, err := exec.Command("ovsdb-tool", "create", o.DBPath, VswitchSchema).CombinedOutput(); err != nil {
		tb.Fatalf("testbed: ovsdb-tool create: %v: %s", err, out)
	}
	tb.Cleanup(o.Stop) // registered after the dir removal, so it runs before it
	o.StartDB(tb)
	init := []string{"--no-wait", "init"}
	if !opts.NoUserspaceTSO {
		init = append(init, "--", "set", "Open_vSwitch", ".", "other_config:userspace-tso-enable=true")
	}
	o.MustVsctl(tb, init...)
	if !opts.NoVswitchd {
		o.StartVswitchd(tb)
	}
	return o
}

// Env returns the process environment plus OVS_RUNDIR, OVS_DBDIR, OVS_LOGDIR and
// OVS_SYSCONFDIR pointing at this instance, so ovs-vsctl, ovs-ofctl, ovs-appctl and
// go-openvswitch find its sockets.
func (o *OVS) Env() []string {
	return append(os.Environ(),
		"OVS_RUNDIR="+o.RunDir,
		"OVS_DBDIR="+filepath.Dir(o.DBPath),
		"OVS_LOGDIR="+o.LogDir,
		"OVS_SYSCONFDIR="+filepath.Join(o.Dir, "etc"))
}

// DBEndpoint returns the OVSDB endpoint, "unix:" + DBSock.
func (o *OVS) DBEndpoint() string { return "unix:" + o.DBSock }

// Command returns an unstarted command running args inside the namespace with Env.
func (o *OVS) Command(args ...string) *exec.Cmd {
	c := o.NS.Command(args...)
	c.Env = o.Env()
	return c
}

func (o *OVS) run(args ...string) (string, error) {
	out, err := o.Command(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err,
			strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// Vsctl runs ovs-vsctl against this instance (10 s timeout) and returns its output.
func (o *OVS) Vsctl(args ...string) (string, error) {
	return o.run(append([]string{"ovs-vsctl", "--db=" + o.DBEndpoint(), "--timeout=10"}, args...)...)
}

// MustVsctl is Vsctl that calls tb.Fatalf on failure.
func (o *OVS) MustVsctl(tb TB, args ...string) string {
	tb.Helper()
	out, err := o.Vsctl(args...)
	if err != nil {
		tb.Fatalf("testbed: %v", err)
	}
	return out
}

// Ofctl runs `ovs-ofctl -O OpenFlow13 args...` against this instance.
func (o *OVS) Ofctl(args ...string) (string, error) {
	return o.run(append([]string{"ovs-ofctl", "-O", "OpenFlow13"}, args...)...)
}

// Appctl runs `ovs-appctl -t target args...` (target "ovsdb-server" or "ovs-vswitchd").
func (o *OVS) Appctl(target string, args ...string) (string, error) {
	return o.run(append([]string{"ovs-appctl", "-t", target}, args...)...)
}

// AddBridge creates bridge name (if missing) with datapath_type=netdev in the same command.
func (o *OVS) AddBridge(tb TB, name string) {
	tb.Helper()
	o.MustVsctl(tb, "--may-exist", "add-br", name, "--", "set", "bridge", name, "datapath_type=netdev")
}

// AddPort plugs device dev (a veth end in the namespace) into bridge.
func (o *OVS) AddPort(tb TB, bridge, dev string) {
	tb.Helper()
	o.MustVsctl(tb, "--may-exist", "add-port", bridge, dev)
}
