package offload

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// attachment is a program attached to a device's ingress: a pinned TCX link, or on kernels
// without TCX a cls_bpf filter (direct action) on a clsact qdisc.
type attachment interface {
	// Update replaces the program in place.
	Update(prog *ebpf.Program) error
	// Detach removes the attachment (unpin and close, or delete the filter).
	Detach() error
	// Close releases the manager's handle and leaves the program attached.
	Close() error
}

// tcxAttachment is a pinned TCX link.
type tcxAttachment struct{ l link.Link }

func (a tcxAttachment) Update(p *ebpf.Program) error { return a.l.Update(p) }
func (a tcxAttachment) Close() error                 { return a.l.Close() }
func (a tcxAttachment) Detach() error {
	return errors.Join(a.l.Unpin(), a.l.Close())
}

// Legacy filter identity: ingress of clsact, a fixed priority and handle per program.
const (
	legacyPrio   = 0xc1
	legacyHandle = 0x5c1
)

// clsactAttachment is a cls_bpf filter; the kernel keeps it (and its program) attached
// without any pin, and a successor finds it by name on the device.
type clsactAttachment struct {
	ifindex int
	name    string
}

func (a clsactAttachment) filter(p *ebpf.Program) *netlink.BpfFilter {
	f := &netlink.BpfFilter{
		FilterAttrs: netlink.FilterAttrs{
			LinkIndex: a.ifindex, Parent: netlink.HANDLE_MIN_INGRESS, Handle: legacyHandle,
			Priority: legacyPrio, Protocol: unix.ETH_P_ALL,
		},
		Name: a.name, DirectAction: true, Fd: -1,
	}
	if p != nil {
		f.Fd = p.FD()
	}
	return f
}

// Update replaces the filter's program atomically (same handle and priority).
func (a clsactAttachment) Update(p *ebpf.Program) error {
	if err := netlink.FilterReplace(a.filter(p)); err != nil {
		return fmt.Errorf("replace clsact filter %s on ifindex %d: %w", a.name, a.ifindex, err)
	}
	return nil
}

func (a clsactAttachment) Detach() error {
	err := netlink.FilterDel(a.filter(nil))
	if err != nil && !errors.Is(err, unix.ENOENT) && !errors.Is(err, unix.ENODEV) {
		return fmt.Errorf("delete clsact filter %s: %w", a.name, err)
	}
	return nil
}

func (a clsactAttachment) Close() error { return nil }

// attachClsact adds a clsact qdisc to ifindex (if absent) and the program as a filter.
func attachClsact(ifindex int, name string, p *ebpf.Program) (attachment, error) {
	q := &netlink.GenericQdisc{
		QdiscAttrs: netlink.QdiscAttrs{LinkIndex: ifindex, Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT},
		QdiscType:  "clsact",
	}
	if err := netlink.QdiscReplace(q); err != nil {
		return nil, fmt.Errorf("clsact qdisc on ifindex %d: %w", ifindex, err)
	}
	a := clsactAttachment{ifindex: ifindex, name: name}
	return a, a.Update(p)
}

// findClsact reports whether ifindex carries our filter for the named program.
func findClsact(ifindex int, name string) bool {
	l, err := netlink.LinkByIndex(ifindex)
	if err != nil {
		return false
	}
	filters, err := netlink.FilterList(l, netlink.HANDLE_MIN_INGRESS)
	if err != nil {
		return false
	}
	for _, f := range filters {
		if bf, ok := f.(*netlink.BpfFilter); ok && bf.Priority == legacyPrio && bf.Handle == legacyHandle &&
			len(bf.Name) >= len(name) && bf.Name[:len(name)] == name {
			return true
		}
	}
	return false
}
