package controllertest

import (
	"context"
	"fmt"
	"maps"
	"sync"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// Store is an in-memory controller.Store.
type Store struct {
	mu        sync.Mutex
	bridges   []controller.Bridge
	heartbeat string
	changes   chan struct{}
	// Err, when set, is returned by every method.
	Err error
	// Writes counts SetStatus/SetProtected calls.
	Writes int
}

// NewStore returns a store holding copies of bridges.
func NewStore(bridges ...controller.Bridge) *Store {
	s := &Store{changes: make(chan struct{}, 1)}
	for _, b := range bridges {
		s.bridges = append(s.bridges, copyBridge(b))
	}
	return s
}

func copyBridge(b controller.Bridge) controller.Bridge {
	c := controller.Bridge{Name: b.Name}
	for _, p := range b.Ports {
		p.ExternalIDs = maps.Clone(p.ExternalIDs)
		c.Ports = append(c.Ports, p)
	}
	return c
}

// Bridges implements controller.Store.
func (s *Store) Bridges(ctx context.Context) ([]controller.Bridge, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return nil, s.Err
	}
	out := make([]controller.Bridge, len(s.bridges))
	for i, b := range s.bridges {
		out[i] = copyBridge(b)
	}
	return out, nil
}

func (s *Store) port(name string) (*controller.BridgePort, error) {
	for i := range s.bridges {
		for j := range s.bridges[i].Ports {
			if s.bridges[i].Ports[j].Name == name {
				return &s.bridges[i].Ports[j], nil
			}
		}
	}
	return nil, fmt.Errorf("no interface %s", name)
}

// SetStatus implements controller.Store.
func (s *Store) SetStatus(ctx context.Context, iface, status string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	p, err := s.port(iface)
	if err != nil {
		return err
	}
	s.Writes++
	if status == "" {
		delete(p.ExternalIDs, controller.KeyStatus)
	} else {
		p.ExternalIDs[controller.KeyStatus] = status
	}
	return nil
}

// SetProtected implements controller.Store.
func (s *Store) SetProtected(ctx context.Context, port string, on bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	p, err := s.port(port)
	if err != nil {
		return err
	}
	s.Writes++
	p.Protected = on
	return nil
}

// SetHeartbeat implements controller.Store.
func (s *Store) SetHeartbeat(ctx context.Context, v string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.Err != nil {
		return s.Err
	}
	s.heartbeat = v
	return nil
}

// Heartbeat returns the last heartbeat written.
func (s *Store) Heartbeat() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.heartbeat
}

// Changes implements controller.Store.
func (s *Store) Changes() <-chan struct{} { return s.changes }

// Update edits the bridges under the lock and signals a change.
func (s *Store) Update(fn func(bridges *[]controller.Bridge)) {
	s.mu.Lock()
	fn(&s.bridges)
	s.mu.Unlock()
	select {
	case s.changes <- struct{}{}:
	default:
	}
}

// Port returns a copy of the named port.
func (s *Store) Port(name string) (controller.BridgePort, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, err := s.port(name)
	if err != nil {
		return controller.BridgePort{}, false
	}
	c := *p
	c.ExternalIDs = maps.Clone(p.ExternalIDs)
	return c, true
}
