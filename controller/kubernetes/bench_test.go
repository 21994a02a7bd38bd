package kubernetes

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"testing"

	"k8s.io/client-go/kubernetes/fake"
	listersv1 "k8s.io/client-go/listers/core/v1"
	"k8s.io/client-go/tools/cache"
)

// BenchmarkReconcileSteady measures one reconcile pass of a converged mesh of n nodes (what
// every resync and every relevant Node event costs), against the in-memory store: the cost
// of discovery itself, without OVSDB.
func BenchmarkReconcileSteady(b *testing.B) {
	for _, n := range []int{10, 100, 1000} {
		b.Run(fmt.Sprintf("nodes=%d", n), func(b *testing.B) {
			idx := cache.NewIndexer(cache.MetaNamespaceKeyFunc, cache.Indexers{})
			for i := range n {
				a := netip.AddrFrom4([4]byte{10, 9, byte(i >> 8), byte(i)})
				if err := idx.Add(node(fmt.Sprintf("n%04d", i), a.String(), true)); err != nil {
					b.Fatal(err)
				}
			}
			store := newFakeStore()
			d, err := New(fake.NewClientset(), Config{NodeName: "n0000", Selector: meshLabel + "=true"}, store,
				Options{Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
			if err != nil {
				b.Fatal(err)
			}
			lister := listersv1.NewNodeLister(idx)
			ctx := context.Background()
			if err := d.reconcileOnce(ctx, lister); err != nil {
				b.Fatal(err)
			}
			if got := len(store.snapshot("br-int")); got != n-1 {
				b.Fatalf("%d ports, want %d", got, n-1)
			}
			ens, _ := store.counts()
			b.ReportAllocs()
			b.ResetTimer()
			for b.Loop() {
				if err := d.reconcileOnce(ctx, lister); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if e, _ := store.counts(); e != ens {
				b.Fatalf("a steady pass wrote %d ports", e-ens)
			}
		})
	}
}
