package ovs

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cenkalti/backoff/v4"
	"github.com/go-logr/logr"
	"github.com/ovn-org/libovsdb/client"
	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
	"github.com/prometheus/client_golang/prometheus"
)

// SystemRunDir is the run directory of the system Open vSwitch on Debian.
const SystemRunDir = "/var/run/openvswitch"

// RunDir returns $OVS_RUNDIR, else SystemRunDir (the convention every OVS tool follows).
func RunDir() string {
	if d := os.Getenv("OVS_RUNDIR"); d != "" {
		return d
	}
	return SystemRunDir
}

var debugLogger *logr.Logger

// DefaultEndpoint returns "unix:" + RunDir() + "/db.sock".
func DefaultEndpoint() string { return "unix:" + filepath.Join(RunDir(), "db.sock") }

// DialOptions configures DialWith. The zero value (plus an endpoint) is what Dial uses.
type DialOptions struct {
	// Endpoint is "unix:PATH", "tcp:HOST:PORT" or "ssl:..."; empty means DefaultEndpoint().
	Endpoint string
	// NoReconnect disables automatic reconnection: after a disconnect every call fails with
	// ErrNotConnected and the caller must Dial again. By default the client reconnects
	// forever (backoff up to MaxBackoff), re-monitors and refills the cache, and calls block
	// until reconnected or until their context ends.
	NoReconnect bool
	// MaxBackoff caps the reconnect backoff (default 2 s).
	MaxBackoff time.Duration
	// InactivityProbe sends an echo after this much silence and reconnects when it fails
	// (default 0: off; ovsdb-server's own probes keep unix connections honest).
	InactivityProbe time.Duration
	// Logger receives libovsdb's logs (default: discarded).
	Logger *logr.Logger
}

// Client is an OVSDB client with a monitored cache of the Open_vSwitch, Bridge, Port and
// Interface tables. It is safe for concurrent use.
type Client struct {
	db       client.Client
	endpoint string
	reg      *prometheus.Registry
	// dead is set when a client without reconnect lost its connection for good.
	dead atomic.Bool

	mu       sync.Mutex
	subs     map[int]*subscription
	nextSub  int
	handlers map[int]func(Event)
}

// Dial connects to endpoint (empty: DefaultEndpoint) with automatic reconnection and waits
// for the initial cache fill.
func Dial(ctx context.Context, endpoint string) (*Client, error) {
	return DialWith(ctx, DialOptions{Endpoint: endpoint})
}

// DialWith connects with options.
func DialWith(ctx context.Context, opts DialOptions) (*Client, error) {
	if opts.Endpoint == "" {
		opts.Endpoint = DefaultEndpoint()
	}
	if opts.MaxBackoff == 0 {
		opts.MaxBackoff = 2 * time.Second
	}
	logger := logr.Discard()
	if debugLogger != nil {
		logger = *debugLogger
	}
	if opts.Logger != nil {
		logger = *opts.Logger
	}
	dbModel, err := ClientDBModel()
	if err != nil {
		return nil, fmt.Errorf("build ovsdb model: %w", err)
	}
	reg := prometheus.NewRegistry()
	copts := []client.Option{client.WithEndpoint(opts.Endpoint), client.WithLogger(&logger),
		client.WithMetricsRegistry(reg)}
	if !opts.NoReconnect {
		bo := backoff.NewExponentialBackOff()
		bo.InitialInterval = 50 * time.Millisecond
		bo.MaxInterval = opts.MaxBackoff
		bo.MaxElapsedTime = 0 // never give up: libovsdb panics when the backoff stops
		if opts.InactivityProbe > 0 {
			copts = append(copts, client.WithInactivityCheck(opts.InactivityProbe, 5*time.Second, bo))
		} else {
			copts = append(copts, client.WithReconnect(5*time.Second, bo))
		}
	}
	db, err := client.NewOVSDBClient(dbModel, copts...)
	if err != nil {
		return nil, fmt.Errorf("ovsdb client for %s: %w", opts.Endpoint, err)
	}
	c := &Client{db: db, endpoint: opts.Endpoint, reg: reg, subs: map[int]*subscription{}, handlers: map[int]func(Event){}}
	if err := db.Connect(ctx); err != nil {
		return nil, fmt.Errorf("connect to ovsdb %s: %w: %v", opts.Endpoint, ErrNotConnected, err)
	}
	if opts.NoReconnect {
		go func() { <-db.DisconnectNotify(); c.dead.Store(true) }()
	}
	db.Cache().AddEventHandler(c.eventHandler())
	if _, err := db.Monitor(ctx, db.NewMonitor(monitorTables()...)); err != nil {
		db.Close()
		return nil, fmt.Errorf("monitor ovsdb %s: %w", opts.Endpoint, err)
	}
	return c, nil
}

// Endpoint returns the endpoint the client was dialled with.
func (c *Client) Endpoint() string { return c.endpoint }

// Connected reports whether ovsdb-server answers an echo right now (waiting at most 1 s).
// libovsdb's own flag stays true while it reconnects, so this asks the server.
func (c *Client) Connected() bool {
	if c.dead.Load() || !c.db.Connected() {
		return false
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	return c.db.Echo(ctx) == nil
}

// ready returns ErrNotConnected when the cache is gone (a client without reconnect that lost
// its connection). With reconnect the cache survives and reads may be stale until it is back.
func (c *Client) ready() error {
	if c.dead.Load() || c.db.Cache() == nil {
		return fmt.Errorf("%w: %s", ErrNotConnected, c.endpoint)
	}
	return nil
}

// Close disconnects and stops reconnecting. Subscriptions' channels are closed.
func (c *Client) Close() {
	c.db.Close()
	c.mu.Lock()
	defer c.mu.Unlock()
	for id, s := range c.subs {
		s.close()
		delete(c.subs, id)
	}
}

// Raw returns the underlying libovsdb client, for operations this package does not wrap.
func (c *Client) Raw() client.Client { return c.db }

// transact runs ops in one transaction and checks every result.
func (c *Client) transact(ctx context.Context, what string, ops ...ovsdb.Operation) ([]ovsdb.OperationResult, error) {
	if err := c.ready(); err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	res, err := c.db.Transact(ctx, ops...)
	if err != nil {
		if errors.Is(err, client.ErrNotConnected) || !c.Connected() {
			return nil, fmt.Errorf("%s: %w: %v", what, ErrNotConnected, err)
		}
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	if opErrs, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		return res, fmt.Errorf("%s: %w: %v %v", what, ErrTransaction, err, opErrs)
	}
	return res, nil
}

// monitorTables monitors exactly the columns of our models: libovsdb fails a whole cache
// update when the server sends a column the model lacks (MonitorAll asks for all of them).
func monitorTables() []client.MonitorOption {
	models := []model.Model{&OpenvSwitch{}, &Bridge{}, &Port{}, &Interface{}}
	opts := make([]client.MonitorOption, 0, len(models))
	for _, m := range models {
		v := reflect.ValueOf(m).Elem()
		var fields []interface{}
		for i := range v.NumField() {
			if v.Type().Field(i).Tag.Get("ovsdb") != "_uuid" {
				fields = append(fields, v.Field(i).Addr().Interface())
			}
		}
		opts = append(opts, client.WithTable(m, fields...))
	}
	return opts
}
