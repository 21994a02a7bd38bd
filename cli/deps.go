package cli

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/kubernetes"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// DB is what the commands need from OVSDB: the agent's controller.Store plus the
// transactions of add-port and del-port. Reads come from a monitored cache.
type DB interface {
	controller.Store
	// AddPort creates, in one transaction, a Port (protected) with one Interface (type
	// system, external_ids) named name, and attaches it to bridge.
	AddPort(ctx context.Context, bridge, name string, externalIDs map[string]string) error
	// DeletePort removes the port from bridge (and its Interface) in one transaction.
	DeletePort(ctx context.Context, bridge, name string) error
	// Heartbeat returns the agent heartbeat from Open_vSwitch external_ids ("" if none).
	Heartbeat(ctx context.Context) (string, error)
	// Close ends the connection.
	Close()
}

// AgentDeps are the host-side implementations the agent command runs with.
type AgentDeps struct {
	Flows     controller.Flows
	Datapaths map[offload.Mode]offload.Datapath
}

// Deps are the side effects of the commands; Main uses the real ones, tests inject fakes.
type Deps struct {
	Stdout, Stderr io.Writer
	// OpenDB connects to OVSDB at endpoint ("unix:/path" or "tcp:host:port").
	OpenDB func(ctx context.Context, endpoint string) (DB, error)
	// Router resolves routes toward peers (add-port defaults).
	Router controller.Router
	// Links manages the veth pairs (agent).
	Links controller.Links
	// NewAgentDeps builds the flow programmer and datapaths for the agent.
	NewAgentDeps func(ctx context.Context, o AgentConfig) (AgentDeps, func(), error)
	// Counters returns a device's kernel counters, nil if it does not exist.
	Counters func(dev string) map[string]uint64
	// Now is the clock.
	Now func() time.Time
	// Signals, if set, end the agent (Main passes SIGINT and SIGTERM).
	Signals []os.Signal
	// Log is where the agent logs.
	Log *slog.Logger
	// Discover runs Kubernetes node discovery for `agent --kubernetes` until ctx ends,
	// handing the Discovery to ready once it exists (nil: kubernetes.Run, which builds the
	// client from cfg.Kubeconfig or the in-cluster service account).
	Discover func(ctx context.Context, cfg kubernetes.Config, store kubernetes.PortStore, opts kubernetes.Options, ready func(*kubernetes.Discovery)) error

	// completingFlag is set by Run when shell completion asks about a word starting with
	// "-" (urfave/cli then completes flags instead of add-port's options).
	completingFlag bool
}

// AgentConfig is what the agent command was asked to run.
type AgentConfig struct {
	DB      string
	RunDir  string
	Log     *slog.Logger
	UDPPort uint16
	PinPath string
	Modes   []offload.Mode
	// MetricsAddress is where /metrics, /healthz and /readyz are served ("off": nowhere).
	MetricsAddress string
	// Kubernetes, if set, runs node discovery (one tunnel port per other node).
	Kubernetes *kubernetes.Config
	// Takeover is set when another agent runs: the datapaths start in standby where they
	// have one (mode=udp) and the agent activates them once every port is ready.
	Takeover bool
	// AfterHandover is what the agent does once a successor took over: AfterHandoverExit
	// ("" too) or AfterHandoverRetire.
	AfterHandover string
	// RetiredMarker, if set, is a file a retiring agent writes; an agent that finds it at
	// start stays retired (a restarted container of a pod that handed over). It belongs in
	// a directory that lives as long as the pod and no longer (an emptyDir).
	RetiredMarker string
	// ProbeSocket, if set, is a unix socket on which this process alone serves its /healthz
	// and /readyz (`sclp-ovs probe`): in a pod-scoped emptyDir, the kubelet's exec probes
	// then ask this pod's agent, not whichever agent holds the host's metrics port.
	ProbeSocket string
	// NoUDPFastPath turns off mode=udp's tc-BPF fast path for one-segment messages
	// (udp.Options.NoFastPath).
	NoUDPFastPath bool
}

// defaultRunDir follows OVS: $OVS_RUNDIR, else /var/run/openvswitch.
func defaultRunDir() string {
	if d := os.Getenv("OVS_RUNDIR"); d != "" {
		return d
	}
	return "/var/run/openvswitch"
}

// defaultDB is the OVSDB endpoint OVS tools use by default.
func defaultDB() string { return "unix:" + filepath.Join(defaultRunDir(), "db.sock") }

// runDirOf returns the run directory that goes with a database endpoint: the socket's
// directory for unix: endpoints, the default run directory otherwise.
func runDirOf(db string) string {
	if p, ok := strings.CutPrefix(db, "unix:"); ok {
		return filepath.Dir(p)
	}
	return defaultRunDir()
}

// agentSocket is the agent's status socket for a database endpoint.
func agentSocket(db string) string { return filepath.Join(runDirOf(db), "sclp-ovs-agent.sock") }

// otherConfiger is implemented by DBs that can read Open_vSwitch other_config.
type otherConfiger interface {
	OtherConfig(ctx context.Context) (map[string]string, error)
}

// tsoWarning returns a warning when ovs-vswitchd runs without userspace TSO, which TCP
// through a netdev bridge needs with default VM offloads ("" when fine or unknown).
func tsoWarning(ctx context.Context, db DB) string {
	oc, ok := db.(otherConfiger)
	if !ok {
		return ""
	}
	m, err := oc.OtherConfig(ctx)
	if err != nil || m["userspace-tso-enable"] == "true" {
		return ""
	}
	return "other_config:userspace-tso-enable is not true: TCP through a netdev bridge fails with default VM offloads (ovs-vsctl set Open_vSwitch . other_config:userspace-tso-enable=true, then restart ovs-vswitchd)"
}
