package ovs

import (
	"context"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// disconnectsMetric is libovsdb's counter of lost connections (in the client's own registry).
const disconnectsMetric = "libovsdb_disconnects_total"

// Epoch returns the number of times the connection to ovsdb-server was lost. After a
// reconnect libovsdb purges and refills the cache, so a read that spans an epoch change may
// have seen a partial cache. Snapshot uses it.
func (c *Client) Epoch() uint64 {
	mfs, err := c.reg.Gather()
	if err != nil {
		return 0
	}
	for _, mf := range mfs {
		if mf.GetName() == disconnectsMetric && len(mf.GetMetric()) > 0 {
			return uint64(mf.GetMetric()[0].GetCounter().GetValue())
		}
	}
	return 0
}

// Snapshot runs fn, which reads the cache, and returns an error wrapping ErrNotConnected if the
// connection was down when fn started, or was lost (and maybe re-established, with the cache
// purged and refilled) while fn ran: fn's view may then be incomplete and must not be acted
// on (a reconciler would otherwise "clean up" ports it did not see). Retry later.
func (c *Client) Snapshot(ctx context.Context, fn func(ctx context.Context) error) error {
	e := c.Epoch()
	if !c.Connected() {
		return fmt.Errorf("read ovsdb cache: %w", ErrNotConnected)
	}
	if err := fn(ctx); err != nil {
		return err
	}
	if c.Epoch() != e || !c.Connected() {
		return fmt.Errorf("read ovsdb cache: connection lost during the read: %w", ErrNotConnected)
	}
	return nil
}

// Registry returns the Prometheus registry holding libovsdb's metrics for this client
// (update messages, table updates, disconnects, monitors), for re-export by an exporter.
func (c *Client) Registry() prometheus.Gatherer { return c.reg }
