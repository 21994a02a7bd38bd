package metrics

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// DefaultAddress is where the agent serves metrics unless told otherwise: loopback only, so
// that nothing is exposed off the host by default.
const DefaultAddress = "127.0.0.1:9310"

// checkTimeout bounds each health check.
const checkTimeout = 2 * time.Second

// Check is one named health condition. Fn returns nil when the condition holds.
type Check struct {
	Name string
	Fn   func(ctx context.Context) error
}

// ServerOptions configure the HTTP server.
type ServerOptions struct {
	// Addr is the listen address (default DefaultAddress). Port 0 picks a free port.
	Addr string
	// Gatherer is what /metrics exposes (required; usually the *prometheus.Registry the
	// collector was registered on).
	Gatherer prometheus.Gatherer
	// Live are the liveness checks of /healthz (e.g. OVSDB reachable, programs attached).
	Live []Check
	// Ready are the readiness checks of /readyz (e.g. every desired port converged). /readyz
	// also fails while a Live check fails.
	Ready []Check
	// Log receives serve errors (default: discard).
	Log *slog.Logger
}

// Server is a running metrics and health server.
type Server struct {
	ln     net.Listener
	srv    *http.Server
	done   chan error
	closed chan struct{}
	once   sync.Once
}

// Handler returns the HTTP handler of /metrics, /healthz and /readyz.
func Handler(opts ServerOptions) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("/metrics", promhttp.HandlerFor(opts.Gatherer, promhttp.HandlerOpts{
		ErrorHandling: promhttp.ContinueOnError, Timeout: 10 * time.Second}))
	mux.Handle("/healthz", CheckHandler(opts.Live))
	mux.Handle("/readyz", CheckHandler(append(append([]Check(nil), opts.Live...), opts.Ready...)))
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/" {
			http.NotFound(w, r)
			return
		}
		fmt.Fprintln(w, "sclp-ovs agent: /metrics /healthz /readyz")
	})
	return mux
}

// CheckHandler answers 200 "ok" when every check passes, else 503 with one line per failed
// check. ?verbose lists passing checks too. The metrics endpoint serves /healthz and /readyz
// with it, and the agent's probe socket too (cli).
func CheckHandler(checks []Check) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx, cancel := context.WithTimeout(r.Context(), checkTimeout)
		defer cancel()
		var b strings.Builder
		failed := false
		for _, c := range checks {
			if err := c.Fn(ctx); err != nil {
				failed = true
				fmt.Fprintf(&b, "[-] %s: %v\n", c.Name, err)
			} else if r.URL.Query().Has("verbose") {
				fmt.Fprintf(&b, "[+] %s\n", c.Name)
			}
		}
		w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		if failed {
			w.WriteHeader(http.StatusServiceUnavailable)
			b.WriteString("failed\n")
		} else {
			b.WriteString("ok\n")
		}
		_, _ = w.Write([]byte(b.String()))
	})
}

// Start listens on opts.Addr and serves until ctx ends or Close is called.
func Start(ctx context.Context, opts ServerOptions) (*Server, error) {
	if opts.Gatherer == nil {
		return nil, errors.New("metrics: ServerOptions.Gatherer is required")
	}
	if opts.Addr == "" {
		opts.Addr = DefaultAddress
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", opts.Addr)
	if err != nil {
		return nil, fmt.Errorf("listen for metrics on %s: %w", opts.Addr, err)
	}
	s := &Server{ln: ln, done: make(chan error, 1), closed: make(chan struct{}), srv: &http.Server{Handler: Handler(opts),
		ReadHeaderTimeout: 5 * time.Second, WriteTimeout: 30 * time.Second, IdleTimeout: time.Minute}}
	go func() {
		err := s.srv.Serve(ln)
		if errors.Is(err, http.ErrServerClosed) {
			err = nil
		} else if err != nil {
			opts.Log.Error("metrics server stopped", "err", err)
		}
		s.done <- err
	}()
	go func() {
		select {
		case <-ctx.Done():
			s.Close()
		case <-s.closed:
		}
	}()
	return s, nil
}

// Addr returns the address the server listens on (useful with port 0).
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Close stops the server, letting in-flight requests finish for up to 2 s.
func (s *Server) Close() error {
	s.once.Do(func() { close(s.closed) })
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	return s.srv.Shutdown(ctx)
}

// Wait blocks until the server has stopped and returns its serve error, if any.
func (s *Server) Wait() error {
	err := <-s.done
	s.done <- err
	return err
}

// Serve runs a server until ctx ends.
func Serve(ctx context.Context, opts ServerOptions) error {
	s, err := Start(ctx, opts)
	if err != nil {
		return err
	}
	<-ctx.Done()
	s.Close()
	return s.Wait()
}
