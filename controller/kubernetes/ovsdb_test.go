package kubernetes

import (
	"context"
	"errors"
	"maps"
	"net/netip"
	"testing"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// fakeOVSDB keeps bridges and ports in memory and counts transactions.
type fakeOVSDB struct {
	bridges map[string]map[string]map[string]string // bridge -> port -> external_ids
	writes  []string
}

func (f *fakeOVSDB) Bridges(context.Context) ([]controller.Bridge, error) {
	var out []controller.Bridge
	for b, ports := range f.bridges {
		br := controller.Bridge{Name: b}
		for p, ids := range ports {
			br.Ports = append(br.Ports, controller.BridgePort{Name: p, ExternalIDs: maps.Clone(ids)})
		}
		out = append(out, br)
	}
	return out, nil
}

func (f *fakeOVSDB) AddPort(_ context.Context, bridge, name string, ids map[string]string) error {
	f.writes = append(f.writes, "add "+name)
	f.bridges[bridge][name] = maps.Clone(ids)
	return nil
}

func (f *fakeOVSDB) DeletePort(_ context.Context, bridge, name string) error {
	f.writes = append(f.writes, "del "+name)
	delete(f.bridges[bridge], name)
	return nil
}

// fakeRouter routes everything through eth0 (MTU 1500) from 10.9.0.1.
type fakeRouter struct{}

func (fakeRouter) RouteTo(context.Context, netip.Addr) (controller.Route, error) {
	return controller.Route{Local: netip.MustParseAddr("10.9.0.1"), Device: "eth0", MTU: 1500}, nil
}

func (fakeRouter) DeviceMTU(_ context.Context, dev string) (int, error) {
	if dev != "eth0" {
		return 0, errors.New("no such device")
	}
	return 1500, nil
}

func TestOVSDBStore(t *testing.T) {
	ctx := context.Background()
	db := &fakeOVSDB{bridges: map[string]map[string]map[string]string{"br-int": {
		"vm1":          {},
		"sclp0a090003": {controller.KeyOwner: controller.OwnerValue, controller.KeyPeer: "10.9.0.3", controller.KeyVNI: "1"},
	}}}
	s := &OVSDBStore{DB: db, Router: fakeRouter{}}
	peer := netip.MustParseAddr("10.9.0.2")
	opts := PeerOptions{VNI: 42, Local: netip.MustParseAddr("10.9.0.1"), ManagedBy: ManagedBy, Node: "b"}

	changed, err := s.EnsurePeer(ctx, "br-int", peer, opts)
	if err != nil || !changed {
		t.Fatalf("EnsurePeer: %v, %v", changed, err)
	}
	// Exactly what `sclp-ovs add-port br-int peer=10.9.0.2 key=42 local_ip=10.9.0.1` records,
	// plus discovery's two keys.
	want := map[string]string{
		"sclp-ovs:owner": "sclp-ovs", "sclp-ovs:peer": "10.9.0.2", "sclp-ovs:key": "42",
		"sclp-ovs:local_ip": "10.9.0.1", "sclp-ovs:dev": "eth0", "sclp-ovs:mode": "udp",
		"sclp-ovs:dst_port": "4795", "sclp-ovs:mtu": "1438", "sclp-ovs:ttl": "64", "sclp-ovs:df": "true",
		"sclp-ovs:managed-by": "kubernetes", "sclp-ovs:k8s-node": "b",
	}
	if got := db.bridges["br-int"]["sclp0a090002"]; !maps.Equal(got, want) {
		t.Fatalf("external_ids\n got %v\nwant %v", got, want)
	}

	// The agent's status does not count as a difference.
	db.bridges["br-int"]["sclp0a090002"][controller.KeyStatus] = controller.StatusReady
	db.writes = nil
	if changed, err := s.EnsurePeer(ctx, "br-int", peer, opts); err != nil || changed || len(db.writes) != 0 {
		t.Fatalf("second EnsurePeer: changed %v, %v, writes %v", changed, err, db.writes)
	}

	// A new VNI replaces the port.
	opts.VNI = 43
	if changed, err := s.EnsurePeer(ctx, "br-int", peer, opts); err != nil || !changed {
		t.Fatalf("EnsurePeer new VNI: %v, %v", changed, err)
	}
	if db.bridges["br-int"]["sclp0a090002"][controller.KeyVNI] != "43" || len(db.writes) != 2 {
		t.Fatalf("after VNI change: %v, writes %v", db.bridges["br-int"]["sclp0a090002"], db.writes)
	}

	// ListPeers decodes both ports; the hand-made one has no mark.
	peers, err := s.ListPeers(ctx, "br-int")
	if err != nil || len(peers) != 2 {
		t.Fatalf("ListPeers: %v, %v", peers, err)
	}
	for _, p := range peers {
		switch p.Addr.String() {
		case "10.9.0.2":
			w := PeerOptions{VNI: 43, Mode: "udp", DstPort: 4795, Local: opts.Local, Device: "eth0", MTU: 1438, ManagedBy: ManagedBy, Node: "b"}
			if p.Options != w || p.Port != "sclp0a090002" {
				t.Errorf("peer %v: %+v", p.Addr, p)
			}
		case "10.9.0.3":
			if p.Options.ManagedBy != "" {
				t.Errorf("hand-made port reads as managed: %+v", p)
			}
		}
	}

	// A hand-made port is never replaced nor deleted.
	db.writes = nil
	hand := netip.MustParseAddr("10.9.0.3")
	if _, err := s.EnsurePeer(ctx, "br-int", hand, opts); !errors.Is(err, ErrNotManaged) {
		t.Errorf("EnsurePeer over a hand-made port: %v", err)
	}
	if err := s.DeletePeer(ctx, "br-int", hand); !errors.Is(err, ErrNotManaged) {
		t.Errorf("DeletePeer of a hand-made port: %v", err)
	}
	if len(db.writes) != 0 {
		t.Errorf("writes to a hand-made port: %v", db.writes)
	}

	if err := s.DeletePeer(ctx, "br-int", peer); err != nil || db.bridges["br-int"]["sclp0a090002"] != nil {
		t.Errorf("DeletePeer: %v, %v", err, db.bridges["br-int"])
	}
	if err := s.DeletePeer(ctx, "br-int", peer); err != nil {
		t.Errorf("DeletePeer of an absent port: %v", err)
	}
	if _, err := s.EnsurePeer(ctx, "br-nope", peer, opts); !errors.Is(err, ErrNoBridge) {
		t.Errorf("missing bridge: %v", err)
	}
	if _, err := s.EnsurePeer(ctx, "br-int", peer, PeerOptions{MTU: 10}); !errors.Is(err, controller.ErrBadOption) {
		t.Errorf("bad option: %v", err)
	}
}
