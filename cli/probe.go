package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"sync/atomic"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
)

// DefaultProbeSocket is where `sclp-ovs probe` asks by default: the DaemonSet's pod-scoped
// emptyDir (/tmp).
const DefaultProbeSocket = "/tmp/sclp-ovs-probe.sock"

func init() { extraCommandFuncs = append(extraCommandFuncs, probeCommand) }

// probeCommand is `sclp-ovs probe healthz|readyz`: the kubelet's exec probe of one agent
// process. It asks the agent's --probe-socket (in the pod's own emptyDir), never the host's
// shared metrics port, which during a surge update answers for whichever agent holds it.
func probeCommand() *ucli.Command {
	return &ucli.Command{
		Name:      "probe",
		Usage:     "ask this pod's agent for its /healthz or /readyz on its --probe-socket (exit 0: 200)",
		ArgsUsage: "healthz|readyz",
		Description: `For exec probes: the answer comes from the agent process that serves --probe-socket (a unix
socket in the pod's emptyDir), not from whichever agent holds the host's metrics port. Exit 0
when it answers 200, 1 otherwise (no agent, not started, not ready, timeout); the answer is
printed.`,
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "socket", Value: DefaultProbeSocket, EnvVars: []string{"SCLP_OVS_PROBE_SOCKET"}, Usage: "the agent's --probe-socket"},
			&ucli.DurationFlag{Name: "timeout", Value: 3 * time.Second, Usage: "give up after this long (keep it under the probe's timeoutSeconds)"},
		},
		Action: func(c *ucli.Context) error {
			if c.NArg() != 1 || (c.Args().First() != "healthz" && c.Args().First() != "readyz") {
				return usagef("probe takes one argument: healthz or readyz")
			}
			ctx, cancel := context.WithTimeout(c.Context, c.Duration("timeout"))
			defer cancel()
			code, body, err := askProbe(ctx, c.String("socket"), "/"+c.Args().First())
			if err != nil {
				return err
			}
			fmt.Fprint(c.App.Writer, body)
			if code != http.StatusOK {
				return fmt.Errorf("%s: %d %s", c.Args().First(), code, http.StatusText(code))
			}
			return nil
		},
	}
}

// askProbe GETs path from the probe socket at sock.
func askProbe(ctx context.Context, sock, path string) (int, string, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://agent"+path, nil)
	if err != nil {
		return 0, "", err
	}
	client := unixClient(sock)
	client.Timeout = 0 // ctx bounds it
	resp, err := client.Do(req)
	if err != nil {
		return 0, "", fmt.Errorf("no agent answers on %s: %w", sock, err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return 0, "", fmt.Errorf("%s on %s: %w", path, sock, err)
	}
	return resp.StatusCode, string(b), nil
}

// probeServer serves one agent process's /healthz and /readyz on a unix socket of its own
// (--probe-socket). The handler changes with the agent's life: starting (both fail, with
// the step), running (the checks of the metrics endpoint), retired (retiredHandler).
type probeServer struct {
	h    atomic.Pointer[http.Handler]
	srv  *http.Server
	path string
	mine os.FileInfo
}

// serveProbes listens on path (replacing a leftover socket of this container's previous
// run: the directory is the pod's own) and answers "starting" until set is called. A
// socket on which a process still answers is another agent's: the probes would not be
// this process's own, so that is an error. A nil *probeServer (path "") does nothing.
func serveProbes(path string) (*probeServer, error) {
	if path == "" {
		return nil, nil
	}
	if agentAnswers(path) {
		return nil, fmt.Errorf("--probe-socket %s: another process serves it (give each agent its own, e.g. in its pod's emptyDir)", path)
	}
	if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("probe socket %s: %w", path, err)
	}
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("probe socket: %w", err)
	}
	ln.(*net.UnixListener).SetUnlinkOnClose(false) // close removes it only while it is ours
	mine, err := os.Lstat(path)
	if err == nil {
		err = os.Chmod(path, 0o600) // root only, like the status socket
	}
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("probe socket %s: %w", path, err)
	}
	p := &probeServer{path: path, mine: mine}
	p.starting("starting")
	p.srv = &http.Server{ReadHeaderTimeout: 5 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		(*p.h.Load()).ServeHTTP(w, r)
	})}
	go p.srv.Serve(ln)
	return p, nil
}

// set makes h answer from now on.
func (p *probeServer) set(h http.Handler) {
	if p != nil {
		p.h.Store(&h)
	}
}

// starting answers 503 on /healthz and /readyz with step (the startup probe fails while the
// agent has not started: waiting for OVSDB, starting its datapaths).
func (p *probeServer) starting(step string) {
	if p == nil {
		return
	}
	mux := http.NewServeMux()
	fail := func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "[-] starting: %s\nfailed\n", step)
	}
	mux.HandleFunc("/healthz", fail)
	mux.HandleFunc("/readyz", fail)
	p.set(mux)
}

// close stops serving and removes the socket if path still names it: the same file, on
// which nobody else answers once this server has stopped (a removed socket's inode number
// can come back for a new one).
func (p *probeServer) close() {
	if p == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	p.srv.Shutdown(ctx)
	if !agentAnswers(p.path) {
		removeIfSame(p.path, p.mine)
	}
}

// checksHandler answers /healthz (live) and /readyz (live and ready) as the metrics endpoint
// does (metrics.CheckHandler): 200 "ok", or 503 with one line per failed check.
func checksHandler(live, ready []metrics.Check) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/healthz", metrics.CheckHandler(live))
	mux.Handle("/readyz", metrics.CheckHandler(append(append([]metrics.Check(nil), live...), ready...)))
	return mux
}
