package kubernetes

import (
	"context"
	"errors"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

func TestDiscoveryFollowsNodes(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(
		node("self", "10.9.0.1", true),
		node("b", "10.9.0.2", true),
		node("c", "10.9.0.3", true),
		node("outside", "10.9.0.9", false),
	)
	store := newFakeStore()
	d := startDiscovery(t, client, store, "self")
	nodes := client.CoreV1().Nodes()

	wantPorts(t, store, "10.9.0.2=b", "10.9.0.3=c")
	store.mu.Lock()
	p := store.ports["br-int"][netip.MustParseAddr("10.9.0.2")]
	store.mu.Unlock()
	want := PeerOptions{VNI: 42, Mode: "udp", Local: netip.MustParseAddr("10.9.0.1"), ManagedBy: ManagedBy, Node: "b"}
	if p.Options != want {
		t.Fatalf("port options %+v, want %+v", p.Options, want)
	}
	eventually(t, func() string { return "not ready" }, func() bool { return d.Ready() == nil })
	if err := d.Check(context.Background()); err != nil {
		t.Errorf("Check after convergence: %v", err)
	}

	// A node joins.
	if _, err := nodes.Create(ctx, node("d", "10.9.0.4", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPorts(t, store, "10.9.0.2=b", "10.9.0.3=c", "10.9.0.4=d")

	// A node changes address: the old port goes, a new one comes.
	b := node("b", "10.9.0.22", true)
	if _, err := nodes.Update(ctx, b, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPorts(t, store, "10.9.0.22=b", "10.9.0.3=c", "10.9.0.4=d")

	// A node loses the mesh label (the fake watch does not filter by selector, so this
	// arrives as an update and exercises discovery's own filter).
	if _, err := nodes.Update(ctx, node("c", "10.9.0.3", false), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPorts(t, store, "10.9.0.22=b", "10.9.0.4=d")

	// A node is deleted.
	if err := nodes.Delete(ctx, "d", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPorts(t, store, "10.9.0.22=b")

	// This node's own address changes: every port gets the new local address.
	if _, err := nodes.Update(ctx, node("self", "10.9.0.11", true), metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() string { return "local address not updated" }, func() bool {
		store.mu.Lock()
		defer store.mu.Unlock()
		return store.ports["br-int"][netip.MustParseAddr("10.9.0.22")].Options.Local == netip.MustParseAddr("10.9.0.11")
	})
}

func TestDiscoveryNoChurnOnHeartbeat(t *testing.T) {
	ctx := context.Background()
	client := fake.NewClientset(node("self", "10.9.0.1", true), node("b", "10.9.0.2", true))
	store := newFakeStore()
	d := startDiscovery(t, client, store, "self")
	wantPorts(t, store, "10.9.0.2=b")
	eventually(t, func() string { return "not ready" }, func() bool { return d.Ready() == nil })
	ens, del := store.counts()

	// A status heartbeat (conditions only) must not touch the store.
	hb := node("b", "10.9.0.2", true)
	hb.Status.Conditions = []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue,
		LastHeartbeatTime: metav1.Now()}}
	if _, err := client.CoreV1().Nodes().UpdateStatus(ctx, hb, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	// A forced wake-up (as a resync would do) finds nothing to change either.
	d.kick()
	reconciles := d.Status().Reconciles
	eventually(t, func() string { return "no reconcile after kick" }, func() bool { return d.Status().Reconciles > reconciles })
	if e, dl := store.counts(); e != ens || dl != del {
		t.Fatalf("store calls after a no-op: ensures %d->%d deletes %d->%d", ens, e, del, dl)
	}
}

func TestDiscoveryLeavesManualPorts(t *testing.T) {
	store := newFakeStore()
	manual := netip.MustParseAddr("10.9.0.2") // also a node: must not be taken over
	other := netip.MustParseAddr("192.0.2.7") // no node: must not be deleted
	for _, a := range []netip.Addr{manual, other} {
		if _, err := store.EnsurePeer(context.Background(), "br-int", a, PeerOptions{VNI: 7}); err != nil {
			t.Fatal(err)
		}
	}
	client := fake.NewClientset(node("self", "10.9.0.1", true), node("b", "10.9.0.2", true), node("c", "10.9.0.3", true))
	startDiscovery(t, client, store, "self")
	wantPorts(t, store, "10.9.0.2=manual", "10.9.0.3=c", "192.0.2.7=manual")
}

func TestDiscoveryKeepsPortsWhileSelfMissing(t *testing.T) {
	ctx := context.Background()
	store := newFakeStore()
	stale := PeerOptions{VNI: 42, Mode: "udp", Local: netip.MustParseAddr("10.9.0.1"), ManagedBy: ManagedBy, Node: "b"}
	if _, err := store.EnsurePeer(ctx, "br-int", netip.MustParseAddr("10.9.0.2"), stale); err != nil {
		t.Fatal(err)
	}
	client := fake.NewClientset(node("b", "10.9.0.2", true)) // this node is not registered yet
	d := startDiscovery(t, client, store, "self")
	eventually(t, func() string { return "no error reported" }, func() bool {
		return errors.Is(d.Ready(), ErrSelfNotFound) && d.Status().Synced
	})
	time.Sleep(100 * time.Millisecond) // several backoff rounds
	if got := store.snapshot("br-int"); len(got) != 1 {
		t.Fatalf("ports changed while this node was unknown: %v", got)
	}
	if _, err := client.CoreV1().Nodes().Create(ctx, node("self", "10.9.0.1", true), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	wantPorts(t, store, "10.9.0.2=b")
	eventually(t, func() string { return d.Ready().Error() }, func() bool { return d.Ready() == nil })
}

func TestDiscoveryRetriesStoreFailures(t *testing.T) {
	store := newFakeStore()
	store.failN = 5
	client := fake.NewClientset(node("self", "10.9.0.1", true), node("b", "10.9.0.2", true), node("c", "10.9.0.3", true))
	d := startDiscovery(t, client, store, "self")
	wantPorts(t, store, "10.9.0.2=b", "10.9.0.3=c")
	eventually(t, func() string { return "not ready" }, func() bool { return d.Ready() == nil })
	store.mu.Lock()
	left := store.failN
	store.mu.Unlock()
	if left != 0 {
		t.Fatalf("%d injected failures left unconsumed", left)
	}
}
