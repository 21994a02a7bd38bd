package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/metrics"
)

// What an agent does once a successor has taken over (--after-handover).
const (
	// AfterHandoverExit: stop and exit 0 (systemd, the default).
	AfterHandoverExit = "exit"
	// AfterHandoverRetire: let go of everything but stay alive, healthy and not ready, until
	// SIGTERM (a Kubernetes surge update: an exiting container would be restarted by the
	// kubelet while its pod still exists).
	AfterHandoverRetire = "retire"
)

// successorWait bounds how long a stop request (SIGTERM) waits for an announced successor
// to take over: its wait for every port (30 s) plus its handover request (15 s).
const successorWait = 45 * time.Second

// takeoverWait is how long a successor waits for every port to be ready before it takes
// over anyway (or, retiring agents, gives up when the running agent has ports ready that it
// has not: notReadyHere). A variable for tests.
var takeoverWait = 30 * time.Second

// notReadyHere returns the ports the agent behind sock reports ready that are not ready in
// mine (sorted; none when its status cannot be read: it is going away).
func notReadyHere(ctx context.Context, sock string, mine []controller.PortState) []string {
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	st, err := fetchStatus(ctx, sock)
	if err != nil {
		return nil
	}
	ready := map[string]bool{}
	for _, p := range mine {
		ready[p.Config.Name] = p.Status == controller.StatusReady
	}
	var out []string
	for _, p := range st.Ports {
		if p.Status == controller.StatusReady && !ready[p.Config.Name] {
			out = append(out, p.Config.Name)
		}
	}
	sort.Strings(out)
	return out
}

// successors tracks the successors announced on the status socket (POST /v1/successor)
// that have not yet taken over or given up.
type successors struct {
	mu      sync.Mutex
	n       int
	pid     int
	changed chan struct{} // closed and replaced on every change
}

func newSuccessors() *successors { return &successors{changed: make(chan struct{})} }

// add registers an announced successor; the returned function unregisters it (once).
func (s *successors) add(req HandoverRequest) func() {
	s.mu.Lock()
	s.n++
	s.pid = req.PID
	s.notifyLocked()
	s.mu.Unlock()
	return sync.OnceFunc(func() {
		s.mu.Lock()
		s.n--
		s.notifyLocked()
		s.mu.Unlock()
	})
}

func (s *successors) notifyLocked() {
	close(s.changed)
	s.changed = make(chan struct{})
}

// pending returns the pid of the last announced successor while any is starting.
func (s *successors) pending() (pid int, ok bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.pid, s.n > 0
}

// wait returns a channel closed at the next change.
func (s *successors) wait() <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.changed
}

// waitIdle returns once no successor is starting, ctx ends or limit passes (false then).
func (s *successors) waitIdle(ctx context.Context, limit time.Duration) bool {
	t := time.NewTimer(limit)
	defer t.Stop()
	for {
		ch := s.wait()
		if _, ok := s.pending(); !ok {
			return true
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return true
		case <-t.C:
			return false
		}
	}
}

// handoverCheck is the /readyz check "handover": it fails while a successor is starting.
// Under a Kubernetes surge update both agents share the host's network namespace, so the
// kubelet's probes of the new pod reach whichever agent holds the metrics port: this one,
// until it hands over. Failing here keeps the new pod unready until it carries the ports.
func handoverCheck(s *successors) metrics.Check {
	return metrics.Check{Name: "handover", Fn: func(context.Context) error {
		if pid, ok := s.pending(); ok {
			return fmt.Errorf("a successor agent (pid %d) is taking over", pid)
		}
		return nil
	}}
}

// takeoverCheck is the /readyz check "takeover": it fails while this agent, started next
// to a running one, has not yet taken over from it.
func takeoverCheck(active *atomic.Bool) metrics.Check {
	return metrics.Check{Name: "takeover", Fn: func(context.Context) error {
		if !active.Load() {
			return errors.New("standby: taking over from the running agent")
		}
		return nil
	}}
}

// retiredMarker is what a retired agent writes to --retired-marker: to whom it handed over.
type retiredMarker struct {
	HandoverRequest
	Retired time.Time `json:"retired"`
}

// readRetiredMarker reads path; fs.ErrNotExist when there is none.
func readRetiredMarker(path string) (retiredMarker, error) {
	var m retiredMarker
	b, err := os.ReadFile(path)
	if err != nil {
		return m, err
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("retired marker %s: %w", path, err)
	}
	return m, nil
}

// writeRetiredMarker records the handover in path: written to a temporary file in the same
// directory, synced, renamed onto path and the directory synced, so that path is either
// absent or complete and durable once it returns.
func writeRetiredMarker(path string, to HandoverRequest, now time.Time) error {
	b, err := json.Marshal(retiredMarker{HandoverRequest: to, Retired: now})
	if err != nil {
		return err
	}
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(b)
	if err == nil {
		err = f.Chmod(0o600)
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		os.Remove(tmp)
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// retiredReason is the /readyz line of a retired agent.
func retiredReason(to HandoverRequest) string {
	if to.PID == 0 {
		return "retired: handed over to a successor agent"
	}
	return fmt.Sprintf("retired: handed over to pid %d", to.PID)
}

// sharesPort reports whether two metrics addresses use the same port (or the successor's
// is unknown, or either does not parse): the retired agent then leaves the port to the
// successor. "off" shares nothing.
func sharesPort(mine, successor string) bool {
	if mine == "off" || successor == "off" {
		return false
	}
	if successor == "" {
		return true
	}
	if mine == "" {
		mine = metrics.DefaultAddress
	}
	_, p1, err1 := net.SplitHostPort(mine)
	_, p2, err2 := net.SplitHostPort(successor)
	return err1 != nil || err2 != nil || p1 == p2
}

// retiredHandler answers a retired agent's /healthz (200: the process is fine, do not
// restart it), /readyz (503 with the reason) and /metrics (503: scrape the successor).
func retiredHandler(to HandoverRequest) http.Handler {
	reason := retiredReason(to)
	mux := http.NewServeMux()
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		fmt.Fprintf(w, "ok\n%s\n", reason)
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusServiceUnavailable)
		fmt.Fprintf(w, "[-] %s\nfailed\n", reason)
	})
	mux.HandleFunc("/metrics", func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, reason+": scrape the successor", http.StatusServiceUnavailable)
	})
	return mux
}

// stayRetired is a retired agent's life: it holds no datapath, port, socket or OVSDB
// connection; it serves retiredHandler on its probe socket (probes, may be nil) and on its
// metrics address unless the successor uses that port (where HTTP probes then reach the
// successor); it never takes over again; it returns nil once ctx ends (SIGTERM), touching
// nothing on the host.
func stayRetired(ctx context.Context, log *slog.Logger, metricsAddress string, probes *probeServer, to HandoverRequest) error {
	log.Info("agent retired: holding nothing until SIGTERM", "reason", retiredReason(to))
	probes.set(retiredHandler(to))
	if !sharesPort(metricsAddress, to.MetricsAddress) && metricsAddress != "off" {
		addr := metricsAddress
		if addr == "" {
			addr = metrics.DefaultAddress
		}
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			log.Warn("retired agent cannot serve its probes", "address", addr, "err", err)
		} else {
			srv := &http.Server{Handler: retiredHandler(to), ReadHeaderTimeout: 5 * time.Second}
			go srv.Serve(ln)
			defer func() {
				sctx, cancel := context.WithTimeout(context.Background(), time.Second)
				defer cancel()
				srv.Shutdown(sctx)
			}()
		}
	} else {
		log.Info("retired agent leaves the metrics port to its successor", "address", metricsAddress, "successor", to.MetricsAddress)
	}
	<-ctx.Done()
	log.Info("retired agent stopped")
	return nil
}

// retiredBefore reports the marker of an earlier handover in path ("" path: none).
func retiredBefore(path string, log *slog.Logger) (HandoverRequest, bool) {
	if path == "" {
		return HandoverRequest{}, false
	}
	m, err := readRetiredMarker(path)
	if errors.Is(err, fs.ErrNotExist) {
		return HandoverRequest{}, false
	}
	if err != nil {
		// A marker exists, whatever its content: this pod's agent handed over before.
		log.Warn("retired marker unreadable; staying retired anyway", "err", err)
	}
	return m.HandoverRequest, true
}
