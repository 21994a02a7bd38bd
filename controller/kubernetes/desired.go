package kubernetes

import (
	"errors"
	"fmt"
	"net/netip"
	"sort"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

var (
	// ErrSelfNotFound means this node is not among the selected nodes, so the local end of
	// the tunnels is unknown; discovery then changes nothing.
	ErrSelfNotFound = errors.New("this node is not among the selected nodes")
	// ErrNoAddress means a node has no IPv4 address of the configured type.
	ErrNoAddress = errors.New("node has no IPv4 address of the configured type")
)

// Mesh is what the selected nodes ask for: this node's address and one peer per other node.
type Mesh struct {
	// Local is this node's address.
	Local netip.Addr
	// Peers maps each other node's address to its node name.
	Peers map[netip.Addr]string
	// Skipped names the nodes left out, with the reason (no address, duplicate address).
	Skipped map[string]string
}

// NodeAddress returns the first IPv4 address of type t in the node's status (SCLP tunnels
// are IPv4 only), or ErrNoAddress.
func NodeAddress(n *corev1.Node, t corev1.NodeAddressType) (netip.Addr, error) {
	for _, a := range n.Status.Addresses {
		if a.Type != t {
			continue
		}
		ip, err := netip.ParseAddr(a.Address)
		if err == nil && ip.Is4() {
			return ip, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("node %s: %w (%s)", n.Name, ErrNoAddress, t)
}

// DesiredMesh computes the mesh that nodes ask for, seen from the node named self. Nodes
// that do not match sel are ignored (the informer already filters; this also covers a
// label removed in an update). Two nodes with the same address keep the one whose name
// sorts first, so the result does not depend on list order.
func DesiredMesh(nodes []*corev1.Node, self string, sel labels.Selector, t corev1.NodeAddressType) (Mesh, error) {
	m := Mesh{Peers: map[netip.Addr]string{}, Skipped: map[string]string{}}
	sorted := append([]*corev1.Node(nil), nodes...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	selfFound := false
	for _, n := range sorted {
		if sel != nil && !sel.Matches(labels.Set(n.Labels)) {
			continue
		}
		ip, err := NodeAddress(n, t)
		if n.Name == self {
			if err != nil {
				return Mesh{}, err
			}
			m.Local, selfFound = ip, true
			continue
		}
		if err != nil {
			m.Skipped[n.Name] = err.Error()
			continue
		}
		if other, dup := m.Peers[ip]; dup {
			m.Skipped[n.Name] = fmt.Sprintf("address %v already used by node %s", ip, other)
			continue
		}
		m.Peers[ip] = n.Name
	}
	if !selfFound {
		return Mesh{}, fmt.Errorf("node %q: %w", self, ErrSelfNotFound)
	}
	if name, ok := m.Peers[m.Local]; ok {
		delete(m.Peers, m.Local)
		m.Skipped[name] = fmt.Sprintf("address %v is this node's own", m.Local)
	}
	return m, nil
}
