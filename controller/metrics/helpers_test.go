package metrics

import (
	"errors"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// fakeDatapath is a handwritten DatapathSource: it returns st, or err when set, and counts
// reads.
type fakeDatapath struct {
	st    DatapathStats
	err   error
	reads int
}

func (f *fakeDatapath) DatapathStats() (DatapathStats, error) {
	f.reads++
	if f.err != nil {
		return DatapathStats{}, f.err
	}
	return f.st, nil
}

// fakeController is a handwritten ControllerSource.
type fakeController struct{ st ControllerStats }

func (f *fakeController) ControllerStats() ControllerStats { return f.st }

// everySample returns one sample of every counter with distinct values (counter i has
// value 100+i) and a reassembler, so that every datapath metric is exported.
func everySample() DatapathStats {
	st := DatapathStats{Reassembly: &ReassemblyStats{Completed: 1, CompletedBytes: 2, TimedOut: 3, Evicted: 4,
		BufferedBytes: 5, BufferedMessages: 6}}
	for c := range numCounters {
		s := Sample{Counter: c, Port: "sclp0", Peer: "10.0.0.2", Value: 100 + uint64(c)}
		switch c {
		case RxFrames, RxFrameBytes:
			s.Path = PathUserspace
		case Exceptions:
			s.Port, s.Peer, s.Reason = "", "", "multi_segment"
		case Drops:
			s.Direction, s.Reason = DirectionRx, "bad_checksum"
		}
		st.Samples = append(st.Samples, s)
	}
	return st
}

// fullRegistry registers a collector whose sources export every metric it knows, and
// returns the registry.
func fullRegistry(tb testing.TB) *prometheus.Registry {
	tb.Helper()
	rec := &ReconcileRecorder{}
	rec.Observe(3*time.Millisecond, nil)
	rec.Observe(40*time.Millisecond, errors.New("boom"))
	reg := prometheus.NewPedanticRegistry()
	_, err := New(reg, Options{
		Datapaths: map[offload.Mode]DatapathSource{
			offload.ModeUDP: &fakeDatapath{st: everySample()},
			offload.ModeIP:  &fakeDatapath{err: errors.New("map gone")},
		},
		Controller: &fakeController{st: ControllerStats{PortsDesired: 2, PortsReady: 1, Reconcile: rec.Snapshot(),
			OVSDBConnected: true}},
		Version: "test",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return reg
}
