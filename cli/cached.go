package cli

import (
	"sync"
	"time"
)

// cached holds a value loaded at most once per ttl. Per-port views that each need a
// snapshot of whole-datapath state (a dump of every BPF per-port and per-peer counter) read it
// through one, so a pass over N ports costs one dump instead of N (N squared entries read).
type cached[T any] struct {
	ttl time.Duration
	now func() time.Time

	mu sync.Mutex
	at time.Time
	ok bool
	v  T
}

// get returns the value loaded within the last ttl, or loads it anew. A failed load is not
// cached.
func (c *cached[T]) get(load func() (T, error)) (T, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	if c.ok && now.Sub(c.at) < c.ttl && !now.Before(c.at) {
		return c.v, nil
	}
	v, err := load()
	if err != nil {
		var zero T
		return zero, err
	}
	c.v, c.at, c.ok = v, now, true
	return v, nil
}
