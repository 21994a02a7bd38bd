//go:build linux

package metrics

import (
	"context"
	"errors"
	"net"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/bpf"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// loadPrograms loads the datapath's programs (maps unpinned) until the test ends.
func loadPrograms(t *testing.T) *ebpf.Collection {
	t.Helper()
	spec, err := bpf.Spec()
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range spec.Maps {
		m.Pinning = ebpf.PinNone
	}
	spec.Maps[bpf.MapExceptions].MaxEntries = 1 << 16
	coll, err := ebpf.NewCollection(spec)
	if err != nil {
		t.Fatalf("load programs: %v", err)
	}
	t.Cleanup(coll.Close)
	return coll
}

// clsactFilter is a direct-action cls_bpf filter at the clsact ingress of dev (as offload
// attaches on kernels without TCX).
func clsactFilter(dev string, p *ebpf.Program, name string) (*netlink.BpfFilter, error) {
	l, err := netlink.LinkByName(dev)
	if err != nil {
		return nil, err
	}
	q := &netlink.GenericQdisc{QdiscType: "clsact", QdiscAttrs: netlink.QdiscAttrs{LinkIndex: l.Attrs().Index,
		Handle: netlink.MakeHandle(0xffff, 0), Parent: netlink.HANDLE_CLSACT}}
	if err := netlink.QdiscReplace(q); err != nil {
		return nil, err
	}
	f := &netlink.BpfFilter{FilterAttrs: netlink.FilterAttrs{LinkIndex: l.Attrs().Index, Parent: netlink.HANDLE_MIN_INGRESS,
		Handle: 0x5c1, Priority: 0xc1, Protocol: unix.ETH_P_ALL}, Fd: p.FD(), Name: name, DirectAction: true}
	return f, netlink.FilterReplace(f)
}

// TestAttachedCheckTCXAndClsact: programs_attached recognises both attach kinds of the
// manager, TCX and (kernels without TCX) a clsact filter, in any mix, and fails when a
// program is missing from either device.
func TestAttachedCheckTCXAndClsact(t *testing.T) {
	testbed.RequireRoot(t)
	ns := testbed.NewNS(t, "attchk")
	ns.MustRun(t, "ip", "link", "add", "ul0", "type", "veth", "peer", "name", "vm0h")
	ns.MustRun(t, "ip", "link", "set", "ul0", "up")
	ns.MustRun(t, "ip", "link", "set", "vm0h", "up")
	coll := loadPrograms(t)
	tx, rx := coll.Programs[bpf.ProgTx], coll.Programs[bpf.ProgRx]
	ports := func() []offload.PortSpec { return []offload.PortSpec{{Name: "sclp0", PeerName: "vm0h", Device: "ul0"}} }
	check := AttachedCheck(ports, ns.Do)
	run := func() error { return check.Fn(context.Background()) }

	if err := run(); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("nothing attached: %v, want ErrNotAttached", err)
	}
	// tx as a clsact filter, rx through TCX.
	var txFilter *netlink.BpfFilter
	var rxLink link.Link
	if err := ns.Do(func() (err error) {
		if txFilter, err = clsactFilter("vm0h", tx, bpf.ProgTx); err != nil {
			return err
		}
		ifi, err := net.InterfaceByName("ul0")
		if err != nil {
			return err
		}
		rxLink, err = link.AttachTCX(link.TCXOptions{Interface: ifi.Index, Program: rx, Attach: ebpf.AttachTCXIngress})
		return err
	}); err != nil {
		t.Fatalf("attach: %v", err)
	}
	t.Cleanup(func() { rxLink.Close() })
	if err := run(); err != nil {
		t.Fatalf("tx on clsact, rx on tcx: %v", err)
	}
	// rx moves to clsact too: both programs as filters (a kernel without TCX).
	if err := rxLink.Close(); err != nil {
		t.Fatal(err)
	}
	if err := run(); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("rx detached: %v, want ErrNotAttached", err)
	}
	if err := ns.Do(func() error { _, err := clsactFilter("ul0", rx, bpf.ProgRx); return err }); err != nil {
		t.Fatal(err)
	}
	if err := run(); err != nil {
		t.Fatalf("both on clsact: %v", err)
	}
	// The wrong program in the tx filter does not count.
	if err := ns.Do(func() error { _, err := clsactFilter("vm0h", rx, bpf.ProgTx); return err }); err != nil {
		t.Fatal(err)
	}
	if err := run(); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("rx program in the tx filter: %v, want ErrNotAttached", err)
	}
	if err := ns.Do(func() error { return netlink.FilterDel(txFilter) }); err != nil {
		t.Fatal(err)
	}
	if err := run(); !errors.Is(err, ErrNotAttached) {
		t.Fatalf("tx filter deleted: %v, want ErrNotAttached", err)
	}
}
