package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
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

// HandoverRequest is the body of POST /v1/handover and POST /v1/successor: who takes over.
// An agent of an earlier version sends no body (the zero value: successor unknown).
type HandoverRequest struct {
	// PID is the successor's process id (in its own PID namespace).
	PID int `json:"pid"`
	// MetricsAddress is the successor's --metrics-address: a retired agent serves its own
	// /healthz and /readyz only on a port the successor does not use.
	MetricsAddress string `json:"metrics_address,omitempty"`
}

// StatusHandlers are what an agent's status socket serves.
type StatusHandlers struct {
	// Status answers GET /v1/status.
	Status func() AgentStatus
	// Handover is called once POST /v1/handover has been answered: a successor carries
	// every port and asks this agent to let go.
	Handover func(HandoverRequest)
	// Refuse, if set, is asked first: a non-nil error refuses the handover (409 Conflict
	// with the error's text; the agent carries on).
	Refuse func(HandoverRequest) error
	// Prepare, if set, is called once Refuse allowed the handover and before it is
	// answered: what must hold once the successor has its 202 (the retired marker) is
	// recorded here. A non-nil error refuses the handover (500 with the error's text; the
	// agent carries on).
	Prepare func(HandoverRequest) error
	// Successor, if set, serves POST /v1/successor: a starting successor announces itself
	// and holds the request open until it has taken over or given up (or died). Successor is
	// called when the request arrives; the function it returns when the request ends.
	Successor func(HandoverRequest) (leave func())
}

// serveStatus serves the agent's status on a unix socket with handlers for GET /v1/status
// and POST /v1/handover only (see serveStatusHandlers).
func serveStatus(path string, status func() AgentStatus, handover func()) (func(), error) {
	var h func(HandoverRequest)
	if handover != nil {
		h = func(HandoverRequest) { handover() }
	}
	return serveStatusHandlers(path, StatusHandlers{Status: status, Handover: h})
}

// serveStatusHandlers serves the agent's status on a unix socket: GET /v1/status; POST
// /v1/handover, which a successor agent sends once it carries every port (h.Handover is
// then called); POST /v1/successor, which a successor holds open while it starts.
//
// The socket is created under a name of its own (.sclp-PID.sock in the same directory, no
// longer than path's own name, for the 108-byte limit of a socket path), restricted, and renamed
// onto path, so path always names a complete, restricted socket and replacing a stale one is
// atomic. An agent only ever removes the socket file it created: the returned stop removes
// path only while it still names this agent's socket (same inode), before the listener
// closes, so a successor (which creates its socket only once this one stops answering)
// never loses its own.
func serveStatusHandlers(path string, h StatusHandlers) (func(), error) {
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
	closing := make(chan struct{}) // ends the held POST /v1/successor requests
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(h.Status())
	})
	mux.HandleFunc("POST /v1/handover", func(w http.ResponseWriter, r *http.Request) {
		req := readHandoverRequest(r)
		if h.Refuse != nil {
			if err := h.Refuse(req); err != nil {
				http.Error(w, err.Error(), http.StatusConflict)
				return
			}
		}
		if h.Prepare != nil {
			if err := h.Prepare(req); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
		}
		w.WriteHeader(http.StatusAccepted)
		if h.Handover != nil {
			h.Handover(req)
		}
	})
	if h.Successor != nil {
		mux.HandleFunc("POST /v1/successor", func(w http.ResponseWriter, r *http.Request) {
			leave := h.Successor(readHandoverRequest(r))
			defer leave()
			w.WriteHeader(http.StatusAccepted)
			if f, ok := w.(http.Flusher); ok {
				f.Flush()
			}
			// The request's context ends when the successor closes the connection (it has
			// taken over, gave up, or died: the kernel closes its socket).
			select {
			case <-r.Context().Done():
			case <-closing:
			}
		})
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	var once sync.Once
	return func() {
		once.Do(func() {
			removeIfSame(path, mine)
			close(closing)
			cctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			srv.Shutdown(cctx)
		})
	}, nil
}

// readHandoverRequest decodes the optional JSON body of a handover or successor request
// (an empty or unreadable body is the zero request).
func readHandoverRequest(r *http.Request) HandoverRequest {
	var req HandoverRequest
	json.NewDecoder(io.LimitReader(r.Body, 4096)).Decode(&req)
	io.Copy(io.Discard, io.LimitReader(r.Body, 4096))
	return req
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
	return requestHandoverFrom(ctx, path, HandoverRequest{})
}

// requestHandoverFrom is requestHandover telling the old agent who takes over.
func requestHandoverFrom(ctx context.Context, path string, from HandoverRequest) error {
	body, err := json.Marshal(from)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/handover", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := unixClient(path).Do(req)
	if err != nil {
		return err
	}
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 1024))
	resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		if m := strings.TrimSpace(string(msg)); m != "" {
			return fmt.Errorf("%s: %s", resp.Status, m)
		}
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

// announceSuccessor tells the agent behind path that a successor is starting (POST
// /v1/successor) and holds the request open until ctx ends or that agent stops serving. It
// returns once the request has ended; an agent of an earlier version answers 404.
func announceSuccessor(ctx context.Context, path string, self HandoverRequest) error {
	body, err := json.Marshal(self)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, "POST", "http://agent/v1/successor", bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	client := unixClient(path)
	client.Timeout = 0 // held open on purpose
	resp, err := client.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusAccepted {
		return errors.New(resp.Status)
	}
	io.Copy(io.Discard, resp.Body) // until ctx ends or the old agent ends the request
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
