package ovs

import (
	"sync"

	"github.com/ovn-org/libovsdb/cache"
	"github.com/ovn-org/libovsdb/model"
)

// EventKind says what happened to a cached row.
type EventKind int

// Event kinds.
const (
	EventAdd EventKind = iota + 1
	EventUpdate
	EventDelete
)

// String returns "add", "update" or "delete".
func (k EventKind) String() string {
	switch k {
	case EventAdd:
		return "add"
	case EventUpdate:
		return "update"
	case EventDelete:
		return "delete"
	}
	return "unknown"
}

// Event is one change of the monitored cache. After a reconnect the cache is refilled and
// every row is reported again (as add or update).
type Event struct {
	Table string
	Kind  EventKind
	// Name is the row's name column (Bridge, Port, Interface); empty for Open_vSwitch.
	Name string
	// Old is nil for EventAdd; New is nil for EventDelete. Both are copies owned by the
	// cache: do not modify them.
	Old, New model.Model
}

type subscription struct {
	ch   chan struct{}
	once sync.Once
}

func (s *subscription) close() { s.once.Do(func() { close(s.ch) }) }

// Subscribe returns a channel that receives a value after the cache changed. Notifications
// coalesce (the channel holds at most one): a receiver must re-read the state it cares about,
// which makes it a good trigger for a reconciler. cancel stops the subscription and closes the
// channel; Close closes it too.
func (c *Client) Subscribe() (ch <-chan struct{}, cancel func()) {
	s := &subscription{ch: make(chan struct{}, 1)}
	c.mu.Lock()
	id := c.nextSub
	c.nextSub++
	c.subs[id] = s
	c.mu.Unlock()
	return s.ch, func() {
		c.mu.Lock()
		delete(c.subs, id)
		c.mu.Unlock()
		s.close()
	}
}

// OnChange calls fn for every cache change, in order, from libovsdb's event goroutine: fn must
// not block or call back into a transaction that waits for the cache. cancel removes fn.
func (c *Client) OnChange(fn func(Event)) (cancel func()) {
	c.mu.Lock()
	id := c.nextSub
	c.nextSub++
	c.handlers[id] = fn
	c.mu.Unlock()
	return func() {
		c.mu.Lock()
		delete(c.handlers, id)
		c.mu.Unlock()
	}
}

func (c *Client) eventHandler() *cache.EventHandlerFuncs {
	return &cache.EventHandlerFuncs{
		AddFunc: func(t string, m model.Model) { c.emit(Event{Table: t, Kind: EventAdd, Name: rowName(m), New: m}) },
		UpdateFunc: func(t string, o, m model.Model) {
			c.emit(Event{Table: t, Kind: EventUpdate, Name: rowName(m), Old: o, New: m})
		},
		DeleteFunc: func(t string, m model.Model) { c.emit(Event{Table: t, Kind: EventDelete, Name: rowName(m), Old: m}) },
	}
}

func (c *Client) emit(ev Event) {
	c.mu.Lock()
	handlers := make([]func(Event), 0, len(c.handlers))
	for _, h := range c.handlers {
		handlers = append(handlers, h)
	}
	for _, s := range c.subs {
		select {
		case s.ch <- struct{}{}:
		default:
		}
	}
	c.mu.Unlock()
	for _, h := range handlers {
		h(ev)
	}
}

func rowName(m model.Model) string {
	switch r := m.(type) {
	case *Bridge:
		return r.Name
	case *Port:
		return r.Name
	case *Interface:
		return r.Name
	}
	return ""
}
