package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"time"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// AgentStatus is what the agent serves on its status socket (GET /v1/status).
type AgentStatus struct {
	PID     int                    `json:"pid"`
	Version string                 `json:"version"`
	Started time.Time              `json:"started"`
	Passes  int                    `json:"passes"`
	Ports   []controller.PortState `json:"ports"`
}

// serveStatus serves the agent's status on a unix socket: GET /v1/status, and POST
// /v1/handover, which a successor agent sends once it carries every port (handover is then
// called).
//
// The socket is created under a name of its own (.sclp-PID.sock in the same directory, no
// longer than path's own name, for the 108-byte limit of a socket path), restricted, and renamed
// onto path, so path always names a complete, restricted socket and replacing a stale one is
// atomic. An agent only ever removes the socket file it created: the returned stop removes
// path only while it still names this agent's socket (same inode), before the listener
// closes, so a successor (which creates its socket only once this one stops answering)
// never loses its own.
func serveStatus(path string, status func() AgentStatus, handover func()) (func(), error) {
	if agentAnswers(path) {
		return nil, fmt.Errorf("another agent answers on %s", path)
	}
	tmp := filepath.Join(filepath.Dir(path), fmt.Sprintf(".sclp-%d.sock", os.Getpid()))
	os.Remove(tmp) // a leftover of a dead process with our pid
	ln, err := net.Listen("unix", tmp)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", tmp, err)
	}
	ul := ln.(*net.UnixListener)
	ul.SetUnlinkOnClose(false) // removal is ours: only while path is still our socket
	// Root only: the socket can retire the agent (POST /v1/handover).
	err = os.Chmod(tmp, 0o600)
	var mine os.FileInfo
	if err == nil {
		mine, err = os.Lstat(tmp)
	}
	if err == nil {
		err = os.Rename(tmp, path) // replaces a stale socket of a dead agent
	}
	if err != nil {
		ln.Close()
		os.Remove(tmp)
		return nil, fmt.Errorf("status socket %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	mux.HandleFunc("POST /v1/handover", func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusAccepted)
		handover()
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		removeIfSame(path, mine)
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(cctx)
	}, nil
}

// removeIfSame removes path if it still names the file mine describes (same device and
// inode), and leaves any other file (a successor's socket) alone.
func removeIfSame(path string, mine os.FileInfo) {
	if fi, err := os.Lstat(path); err == nil && os.SameFile(fi, mine) {
		os.Remove(path)
	}
}

// agentAnswers reports whether an agent listens on path.
func agentAnswers(path string) bool {
	c, err := net.DialTimeout("unix", path, 200*time.Millisecond)
	if err != nil {
		return false
	}
	c.Close()
	return true
}

// requestHandover asks the agent behind path to stop (leaving its ports and heartbeat) and
// waits until its socket is gone.
func requestHandover(ctx context.Context, path string) error {
	req, err := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/handover", nil)
	if err != nil {
		return err
	}
	resp, err := unixClient(path).Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return errors.New(resp.Status)
	}
	for agentAnswers(path) {
		select {
		case <-ctx.Done():
			return fmt.Errorf("the old agent still answers on %s: %w", path, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
	return nil
}

func unixClient(path string) *http.Client {
	return &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
}

// fetchStatus asks the agent behind path for its status.
func fetchStatus(ctx context.Context, path string) (AgentStatus, error) {
	var st AgentStatus
	client := unixClient(path)
	req, err := http.NewRequestWithContext(ctx, "GET", "http://agent/v1/status", nil)
	if err != nil {
		return st, err
	}
	resp, err := client.Do(req)
	if err != nil {
		return st, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return st, errors.New(resp.Status)
	}
	return st, json.NewDecoder(resp.Body).Decode(&st)
}
