package deploy

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/prometheus/client_golang/prometheus"
	ucli "github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/sclp-ovs/sclp-ovs/cli"
	"github.com/sclp-ovs/sclp-ovs/controller/kubernetes"
	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
)

// podFields are the downward-API values of the test's imaginary pod.
var podFields = map[string]string{"spec.nodeName": "node-a", "status.podIP": "192.0.2.10"}

// containerArgs returns the agent container's command line with every $(VAR) expanded the
// way the kubelet does: env values from literals, the ConfigMap, the downward API.
func containerArgs(c *corev1.Container, cm *corev1.ConfigMap, fields map[string]string) ([]string, error) {
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.ConfigMapKeyRef != nil:
			v, ok := cm.Data[e.ValueFrom.ConfigMapKeyRef.Key]
			if !ok {
				return nil, fmt.Errorf("env %s: no key %q in the ConfigMap", e.Name, e.ValueFrom.ConfigMapKeyRef.Key)
			}
			env[e.Name] = v
		case e.ValueFrom.FieldRef != nil:
			v, ok := fields[e.ValueFrom.FieldRef.FieldPath]
			if !ok {
				return nil, fmt.Errorf("env %s: no value for field %s", e.Name, e.ValueFrom.FieldRef.FieldPath)
			}
			env[e.Name] = v
		case e.ValueFrom.ResourceFieldRef != nil:
			env[e.Name] = "536870912"
		default:
			return nil, fmt.Errorf("env %s: unsupported source", e.Name)
		}
	}
	var out []string
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		var err error
		out = append(out, varRef.ReplaceAllStringFunc(a, func(m string) string {
			name := m[2 : len(m)-1]
			v, ok := env[name]
			if !ok {
				err = fmt.Errorf("argument %q: $(%s) undefined", a, name)
			}
			return v
		}))
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// TestDaemonSetArgsParseInTheRealApp runs the real sclp-ovs application (cli.NewApp) on the
// DaemonSet's expanded command line, with the agent's action replaced by a probe that reads
// back what the flags parsed to.
func TestDaemonSetArgsParseInTheRealApp(t *testing.T) {
	_, c, cm, _ := agentOf(t)
	args, err := containerArgs(c, cm, podFields)
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	app := cli.NewApp(cli.Deps{Stdout: io.Discard, Stderr: &stderr})
	var agent *ucli.Command
	for _, cmd := range app.Commands {
		if cmd.Name == "agent" {
			agent = cmd
		}
	}
	if agent == nil {
		t.Fatalf("the app has no agent command")
	}
	errProbe := errors.New("probe done")
	var (
		got     kubernetes.Config
		metrics string
		ran     bool
		db      string
		after   string
		marker  string
		probes  string
	)
	agent.Action = func(c *ucli.Context) error {
		ran = true
		db = c.String("db")
		metrics = c.String("metrics-address")
		after, marker = c.String("after-handover"), c.String("retired-marker")
		probes = c.String("probe-socket")
		if !kubernetes.Enabled(c) {
			return errors.New("--kubernetes is not set")
		}
		got, err = kubernetes.ConfigFromCLI(c)
		if err != nil {
			return err
		}
		return errProbe
	}
	// args[0] is the container command (the binary); urfave skips it like argv[0].
	if err := app.Run(args); !errors.Is(err, errProbe) {
		t.Fatalf("sclp-ovs %s: %v (ran %v)\n%s", strings.Join(args[1:], " "), err, ran, stderr.String())
	}
	if db != "unix:/var/run/openvswitch/db.sock" {
		t.Errorf("--db %q: the DaemonSet mounts the OVS run directory at /var/run/openvswitch", db)
	}
	if metrics != "192.0.2.10:"+cm.Data["metrics-port"] {
		t.Errorf("--metrics-address parsed to %q, want the pod IP and the ConfigMap's port", metrics)
	}
	if after != "retire" || marker == "" {
		t.Errorf("--after-handover %q --retired-marker %q, want retire and a marker (surge update)", after, marker)
	}
	for _, pr := range []*corev1.Probe{c.StartupProbe, c.LivenessProbe, c.ReadinessProbe} {
		if pr.Exec == nil || !slices.Contains(pr.Exec.Command, "--socket="+probes) || probes == "" {
			t.Errorf("--probe-socket parsed to %q; probe %+v does not ask it", probes, pr.ProbeHandler)
		}
	}
	want := kubernetes.Config{NodeName: "node-a", Selector: cm.Data["node-selector"], AddressType: "InternalIP",
		Bridge: cm.Data["bridge"], Resync: kubernetes.DefaultResync}
	want.Port.Mode = "udp"
	if got.NodeName != want.NodeName || got.Selector != want.Selector || got.Bridge != want.Bridge ||
		string(got.Port.Mode) != cm.Data["mode"] || fmt.Sprint(got.Port.VNI) != cm.Data["vni"] ||
		fmt.Sprint(got.Port.DstPort) != cm.Data["dst-port"] || fmt.Sprint(got.Port.MTU) != cm.Data["mtu"] ||
		string(got.AddressType) != cm.Data["node-address-type"] {
		t.Errorf("discovery config %+v does not carry the ConfigMap %v", got, cm.Data)
	}
}

// TestDaemonSetArgsAcceptedByTheBinary runs the built binary with the DaemonSet's command
// line and --help: the binary parses every flag first and fails with exit code 2 on one it
// does not know (checked with a made-up flag), so exit 0 means all are accepted.
func TestDaemonSetArgsAcceptedByTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	_, c, cm, _ := agentOf(t)
	args, err := containerArgs(c, cm, podFields)
	if err != nil {
		t.Fatal(err)
	}
	bin := agentBinary(t)
	run := func(extra ...string) (int, string) {
		cmd := exec.Command(bin, append(slices.Clone(args[1:]), extra...)...)
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return ee.ExitCode(), string(out)
		}
		if err != nil {
			t.Fatalf("run %s: %v", bin, err)
		}
		return 0, string(out)
	}
	if code, out := run("--help"); code != 0 || !strings.Contains(out, "agent") {
		t.Errorf("sclp-ovs %s --help: exit %d\n%s", strings.Join(args[1:], " "), code, out)
	}
	if code, out := run("--no-such-flag-xyz", "--help"); code != 2 {
		t.Errorf("an unknown flag gave exit %d, want 2: the check above proves nothing\n%s", code, out)
	}
}

// TestScrapePathServed checks that the agent's metrics server (controller/metrics, which
// `sclp-ovs agent --metrics-address` starts) serves the scrape annotation's path.
func TestScrapePathServed(t *testing.T) {
	ds, _, _, _ := agentOf(t)
	srv := httptest.NewServer(metrics.Handler(metrics.ServerOptions{Gatherer: prometheus.NewRegistry()}))
	defer srv.Close()
	for _, p := range []string{ds.Spec.Template.Annotations["prometheus.io/path"], "/no-such-path"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if (resp.StatusCode == http.StatusOK) != (p != "/no-such-path") {
			t.Errorf("GET %s: %s", p, resp.Status)
		}
	}
}

// TestProbeCommandsRunInTheRealApp runs every probe's exec command in the real sclp-ovs
// application (cli.Run), its socket moved to a test directory where a stand-in agent
// answers: each asks the path it should (/healthz, readiness /readyz), exits 0 on 200 and
// 1 on 503 or when nothing answers. (The agent's side of the socket: cli's
// TestProbeSocketAnswersForItsOwnProcess; both together on a real host: surge_linux_test.)
func TestProbeCommandsRunInTheRealApp(t *testing.T) {
	_, c, _, _ := agentOf(t)
	sock := filepath.Join(t.TempDir(), "probe.sock")
	ln, err := net.Listen("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	var status atomic.Int32
	var asked atomic.Value
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		asked.Store(r.URL.Path)
		w.WriteHeader(int(status.Load()))
	})}
	go srv.Serve(ln)
	defer srv.Close()
	run := func(cmd []string) int {
		args := slices.Clone(cmd)
		for i, a := range args {
			if strings.HasPrefix(a, "--socket=") {
				args[i] = "--socket=" + sock
			}
		}
		var out bytes.Buffer
		return cli.Run(cli.Deps{Stdout: &out, Stderr: &out}, args)
	}
	for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		if pr.Exec == nil {
			t.Errorf("%s: not an exec probe", name)
			continue
		}
		want := "/healthz"
		if name == "readiness" {
			want = "/readyz"
		}
		for _, tc := range []struct {
			status int32
			exit   int
		}{{http.StatusOK, cli.ExitOK}, {http.StatusServiceUnavailable, cli.ExitFailure}} {
			status.Store(tc.status)
			asked.Store("")
			if got := run(pr.Exec.Command); got != tc.exit || asked.Load() != want {
				t.Errorf("%s probe %q answered %d: exit %d asking %q, want exit %d asking %s", name, pr.Exec.Command, tc.status, got, asked.Load(), tc.exit, want)
			}
		}
	}
	srv.Close()
	if got := run(c.ReadinessProbe.Exec.Command); got != cli.ExitFailure {
		t.Errorf("readiness probe with no agent: exit %d", got)
	}
}

// TestDiscoveryUsageErrors runs the binary with bad discovery settings: each must fail with
// exit code 2 and a message naming the problem, before the agent touches anything (no OVSDB
// is running, and none is needed to reject them).
func TestDiscoveryUsageErrors(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary")
	}
	bin := agentBinary(t)
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--kubernetes"}, "node name missing"},
		{[]string{"--kubernetes", "--node-name=n", "--mesh-mode=gre"}, "mode"},
		{[]string{"--kubernetes", "--node-name=n", "--mesh-vni=16777216"}, "24 bits"},
		{[]string{"--kubernetes", "--node-name=n", "--node-selector=a in (b"}, "label selector"},
		{[]string{"--kubernetes", "--node-name=n", "--mesh-vni=x"}, "mesh-vni"},
	} {
		cmd := exec.Command(bin, append([]string{"--db=unix:/nonexistent/db.sock", "agent"}, tc.args...)...)
		cmd.Env = append(cmd.Environ(), "NODE_NAME=")
		out, err := cmd.CombinedOutput()
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 2 || !strings.Contains(string(out), tc.want) {
			t.Errorf("sclp-ovs agent %s: %v, want exit 2 mentioning %q\n%s", strings.Join(tc.args, " "), err, tc.want, out)
		}
	}
}
