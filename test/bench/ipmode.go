package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"

	"github.com/cilium/ebpf/ringbuf"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// ipDatapath is mode=ip as the agent runs it: the tc-eBPF manager (segmentation on send,
// validation, merge and single-segment delivery on receive) plus the userspace fallback that
// finishes what BPF hands up through the exceptions ring (reassembly, GSO injection into the
// tunnel port). It mirrors the offload package's own integration test bed.
type ipDatapath struct {
	m       *offload.Manager
	pinRoot string
	pipe    *fallback.Pipeline

	mu      sync.Mutex
	inj     []*fallback.Injector
	cancel  context.CancelFunc
	rd      *ringbuf.Reader
	done    chan struct{}
	started bool
}

var _ offload.Datapath = (*ipDatapath)(nil)

// newIPDatapath loads the programs for the host namespace nsName with a private pin root.
func newIPDatapath(nsName string) (offload.Datapath, error) {
	root := filepath.Join("/sys/fs/bpf", "sclp-ovs-bench-"+nsName)
	m, err := offload.NewManager(offload.ManagerOptions{PinRoot: root, NetNS: "/run/netns/" + nsName,
		ReplaceIncompatible: true})
	if err != nil {
		os.RemoveAll(root)
		return nil, fmt.Errorf("mode=ip manager: %w", err)
	}
	pipe, err := fallback.NewPipeline(fallback.PipelineOptions{Workers: 1, Reassembly: sclp.DefaultConfig()})
	if err != nil {
		m.Uninstall()
		return nil, err
	}
	return &ipDatapath{m: m, pinRoot: root, pipe: pipe}, nil
}

// EnsurePort installs the port in BPF and its injector in the fallback (the injector's
// packet socket opens in the calling thread's namespace: call it inside the host's).
func (d *ipDatapath) EnsurePort(ctx context.Context, spec offload.PortSpec) error {
	if err := d.m.EnsurePort(ctx, spec); err != nil {
		return err
	}
	inj, err := fallback.NewInjector(fallback.InjectorOptions{Interface: spec.PeerName, MTU: spec.MTU})
	if err != nil {
		return fmt.Errorf("fallback injector on %s: %w", spec.PeerName, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.inj = append(d.inj, inj)
	d.pipe.Ports().Set(fallback.PortKey{Peer: spec.Peer, VNI: spec.VNI}, inj)
	if d.started {
		return nil
	}
	rd, err := ringbuf.NewReader(d.m.ExceptionRing())
	if err != nil {
		return fmt.Errorf("exceptions ring: %w", err)
	}
	cctx, cancel := context.WithCancel(context.Background())
	rr := fallback.NewRingReader(rd, d.pipe.Workers()[0], fallback.RingReaderOptions{OnRefused: d.m.NewThrottler(0).Refused})
	d.rd, d.cancel, d.done, d.started = rd, cancel, make(chan struct{}), true
	go func() { defer close(d.done); _ = rr.Run(cctx) }()
	return nil
}

// RemovePort is not needed by the harness (ports live as long as the run).
func (d *ipDatapath) RemovePort(ctx context.Context, name string) error {
	return d.m.RemovePort(ctx, name)
}

// Close stops the ring reader and the injectors and uninstalls the programs and pins.
func (d *ipDatapath) Close() error {
	d.mu.Lock()
	defer d.mu.Unlock()
	var errs []error
	if d.started {
		d.cancel()
		d.rd.Close()
		<-d.done
		d.started = false
	}
	d.pipe.Stop()
	for _, inj := range d.inj {
		errs = append(errs, inj.Close())
	}
	d.inj = nil
	if err := d.m.Uninstall(); err != nil && !errors.Is(err, offload.ErrClosed) {
		errs = append(errs, err)
	}
	errs = append(errs, os.RemoveAll(d.pinRoot))
	return errors.Join(errs...)
}
