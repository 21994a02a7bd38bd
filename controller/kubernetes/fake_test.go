package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sort"
	"sync"
)

// fakeStore is a PortStore in memory that counts calls and can fail on demand.
type fakeStore struct {
	mu      sync.Mutex
	ports   map[string]map[netip.Addr]Peer // bridge -> peer -> port
	ensures int
	deletes int
	failN   int // fail the next failN calls of any method
}

var errInjected = errors.New("injected store failure")

func newFakeStore() *fakeStore { return &fakeStore{ports: map[string]map[netip.Addr]Peer{}} }

func (s *fakeStore) fail() error {
	if s.failN > 0 {
		s.failN--
		return errInjected
	}
	return nil
}

// EnsurePeer counts a write only when it changes the port.
func (s *fakeStore) EnsurePeer(_ context.Context, bridge string, peer netip.Addr, o PeerOptions) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(); err != nil {
		return false, err
	}
	if s.ports[bridge] == nil {
		s.ports[bridge] = map[netip.Addr]Peer{}
	}
	if p, ok := s.ports[bridge][peer]; ok && p.Options == o {
		return false, nil
	}
	s.ensures++
	s.ports[bridge][peer] = Peer{Addr: peer, Port: fmt.Sprintf("sclp%x", peer.As4()), Options: o}
	return true, nil
}

func (s *fakeStore) DeletePeer(_ context.Context, bridge string, peer netip.Addr) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(); err != nil {
		return err
	}
	s.deletes++
	delete(s.ports[bridge], peer)
	return nil
}

func (s *fakeStore) ListPeers(_ context.Context, bridge string) ([]Peer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.fail(); err != nil {
		return nil, err
	}
	var out []Peer
	for _, p := range s.ports[bridge] {
		out = append(out, p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Addr.Less(out[j].Addr) })
	return out, nil
}

// snapshot returns "peer=node" for every port on bridge ("peer=manual" for unmanaged ones).
func (s *fakeStore) snapshot(bridge string) []string {
	peers, _ := s.ListPeers(context.Background(), bridge)
	var out []string
	for _, p := range peers {
		who := p.Options.Node
		if p.Options.ManagedBy != ManagedBy {
			who = "manual"
		}
		out = append(out, p.Addr.String()+"="+who)
	}
	return out
}

func (s *fakeStore) counts() (ensures, deletes int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.ensures, s.deletes
}
