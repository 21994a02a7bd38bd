//go:build linux

package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// ErrNotAttached is wrapped by the AttachedCheck error for a device that lacks its program.
var ErrNotAttached = errors.New("program not attached")

// AttachedCheck is the mode=ip /healthz check "programs_attached": for every port the
// datapath carries (ports, e.g. (*offload.Manager).Ports), the tx program (bpf.ProgTx) is
// attached at TCX ingress of the port's datapath-side veth and the rx program (bpf.ProgRx) at
// TCX ingress of its underlay device. The kernel is asked (BPF_PROG_QUERY), not the manager's
// bookkeeping. in, if set, runs the query where the devices are (a network namespace);
// nil runs it on the calling thread.
func AttachedCheck(ports func() []offload.PortSpec, in func(func() error) error) Check {
	if in == nil {
		in = func(f func() error) error { return f() }
	}
	return Check{Name: "programs_attached", Fn: func(context.Context) error {
		return in(func() error {
			for _, p := range ports() {
				if err := attached(p.PeerName, bpf.ProgTx); err != nil {
					return fmt.Errorf("port %s: %w", p.Name, err)
				}
				if err := attached(p.Device, bpf.ProgRx); err != nil {
					return fmt.Errorf("port %s: %w", p.Name, err)
				}
			}
			return nil
		})
	}}
}

// attached returns nil if a program named prog is attached at TCX ingress of dev.
func attached(dev, prog string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifi.Index, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return fmt.Errorf("query tcx ingress of %s: %w", dev, err)
	}
	for _, ap := range res.Programs {
		p, err := ebpf.NewProgramFromID(ap.ID)
		if err != nil {
			continue // detached meanwhile
		}
		info, err := p.Info()
		p.Close()
		if err == nil && info.Name == prog {
			return nil
		}
	}
	return fmt.Errorf("%s at tcx ingress of %s: %w", prog, dev, ErrNotAttached)
}
