package metrics

import (
	"sort"
	"sync"
	"time"
)

// ReconcileBuckets are the upper bounds, in seconds, of the reconcile-duration histogram.
var ReconcileBuckets = []float64{0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30}

// ReconcileSnapshot is the reconcile history: passes, failed passes and the duration
// histogram (cumulative bucket counts by upper bound, as Prometheus wants them).
type ReconcileSnapshot struct {
	Passes, Errors uint64
	// Count and Sum (seconds) of the observed durations.
	Count uint64
	Sum   float64
	// Buckets maps each upper bound of ReconcileBuckets to the number of passes that took at
	// most that long. Nil means the source has no timings: Errors, Count and Sum are then
	// unknown and not exported.
	Buckets map[float64]uint64
}

// ReconcileRecorder records reconcile passes. It is safe for concurrent use; the zero value
// is ready. The controller calls Observe after each pass; the collector reads Snapshot.
type ReconcileRecorder struct {
	mu     sync.Mutex
	passes uint64
	errs   uint64
	sum    float64
	counts [16]uint64 // per bucket, not cumulative; the last one is +Inf
}

var _ = [1]int{}[len(ReconcileRecorder{}.counts)-len(ReconcileBuckets)-2] // room for +Inf

// Observe records one pass that took d and failed if err is non-nil.
func (r *ReconcileRecorder) Observe(d time.Duration, err error) {
	s := d.Seconds()
	i := sort.SearchFloat64s(ReconcileBuckets, s) // first bound >= s
	r.mu.Lock()
	r.passes++
	if err != nil {
		r.errs++
	}
	r.sum += s
	r.counts[i]++
	r.mu.Unlock()
}

// Snapshot returns the history so far.
func (r *ReconcileRecorder) Snapshot() ReconcileSnapshot {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := ReconcileSnapshot{Passes: r.passes, Errors: r.errs, Count: r.passes, Sum: r.sum,
		Buckets: make(map[float64]uint64, len(ReconcileBuckets))}
	var cum uint64
	for i, b := range ReconcileBuckets {
		cum += r.counts[i]
		out.Buckets[b] = cum
	}
	return out
}
