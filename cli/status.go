package cli

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
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

// serveStatus serves the agent's status on a unix socket until ctx ends.
func serveStatus(ctx context.Context, path string, status func() AgentStatus) (func(), error) {
	if c, err := net.DialTimeout("unix", path, 200*time.Millisecond); err == nil {
		c.Close()
		return nil, fmt.Errorf("another agent answers on %s (stop it first)", path)
	}
	os.Remove(path) // a stale socket of a dead agent
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("listen on %s: %w", path, err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(status())
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	return func() {
		cctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		srv.Shutdown(cctx)
		os.Remove(path)
	}, nil
}

// fetchStatus asks the agent behind path for its status.
func fetchStatus(ctx context.Context, path string) (AgentStatus, error) {
	var st AgentStatus
	client := &http.Client{Timeout: 3 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return (&net.Dialer{}).DialContext(ctx, "unix", path)
		},
	}}
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
