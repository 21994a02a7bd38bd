//go:build linux

package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
)

// ErrNotAttached is wrapped by the AttachedCheck error for a device that lacks its program.
var ErrNotAttached = errors.New("program not attached")

// AttachedCheck is the mode=ip /healthz check "programs_attached": for every port the
// datapath carries (ports, e.g. (*offload.Manager).Ports), the tx program (bpf.ProgTx) is
// attached at the ingress of the port's datapath-side veth and the rx program (bpf.ProgRx) at
// the ingress of its underlay device, either as a TCX program or, as the manager attaches on
// kernels without TCX, as a direct-action cls_bpf filter on the clsact qdisc. The kernel is
// asked (BPF_PROG_QUERY, RTM_GETTFILTER), not the manager's bookkeeping. in, if set, runs the
// queries where the devices are (a network namespace); nil runs them on the calling thread.
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

// attached returns nil if a program named prog is attached at the ingress of dev, through
// TCX or a clsact filter. Query errors are reported only when neither kind is found (a
// kernel without TCX fails the TCX query and may still carry the filter).
func attached(dev, prog string) error {
	ifi, err := net.InterfaceByName(dev)
	if err != nil {
		return fmt.Errorf("%s: %w", dev, err)
	}
	tcx, tcxErr := onTCX(ifi.Index, prog)
	if tcx {
		return nil
	}
	cls, clsErr := onClsact(ifi.Index, prog)
	if cls {
		return nil
	}
	if err := errors.Join(tcxErr, clsErr); err != nil {
		return fmt.Errorf("%s at ingress of %s: %w (%w)", prog, dev, ErrNotAttached, err)
	}
	return fmt.Errorf("%s at ingress of %s (tcx or clsact): %w", prog, dev, ErrNotAttached)
}

// onTCX reports whether a program named prog is attached at TCX ingress of ifindex.
func onTCX(ifindex int, prog string) (bool, error) {
	res, err := link.QueryPrograms(link.QueryOptions{Target: ifindex, Attach: ebpf.AttachTCXIngress})
	if err != nil {
		return false, fmt.Errorf("query tcx ingress: %w", err)
	}
	for _, ap := range res.Programs {
		if progNamed(ap.ID, prog) {
			return true, nil
		}
	}
	return false, nil
}

// onClsact reports whether a direct-action cls_bpf filter running a program named prog sits
// at the clsact ingress of ifindex (offload's fallback for kernels without TCX).
func onClsact(ifindex int, prog string) (bool, error) {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false, fmt.Errorf("link %d: %w", ifindex, err)
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false, fmt.Errorf("list clsact ingress filters: %w", err)
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.DirectAction && bf.Id > 0 && progNamed(ebpf.ProgramID(bf.Id), prog) {
			return true, nil
		}
	}
	return false, nil
}

// progNamed reports whether the program with the given ID is named name.
func progNamed(id ebpf.ProgramID, name string) bool {
	p, err := ebpf.NewProgramFromID(id)
	if err != nil {
		return false // detached meanwhile
	}
	defer p.Close()
	info, err := p.Info()
	return err == nil && info.Name == name
}
