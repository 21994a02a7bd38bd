package kubernetes

import (
	"errors"
	"net/netip"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

func TestDesiredMesh(t *testing.T) {
	sel, err := labels.Parse(meshLabel + "=true")
	if err != nil {
		t.Fatal(err)
	}
	v6 := node("v6only", "", true)
	v6.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "fd00::5"}}
	ext := node("ext", "", true)
	ext.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "198.51.100.1"}}
	dual := node("dual", "", true)
	dual.Status.Addresses = []corev1.NodeAddress{
		{Type: corev1.NodeInternalIP, Address: "fd00::6"},
		{Type: corev1.NodeInternalIP, Address: "10.9.0.6"},
	}
	nodes := []*corev1.Node{
		node("self", "10.9.0.1", true),
		node("zz-dup", "10.9.0.2", true), // same address as b; b sorts first and wins
		node("b", "10.9.0.2", true),
		node("outside", "10.9.0.9", false),
		node("noaddr", "", true),
		node("twin-of-self", "10.9.0.1", true),
		v6, ext, dual,
	}
	m, err := DesiredMesh(nodes, "self", sel, corev1.NodeInternalIP)
	if err != nil {
		t.Fatal(err)
	}
	if m.Local != netip.MustParseAddr("10.9.0.1") {
		t.Errorf("local %v", m.Local)
	}
	want := map[netip.Addr]string{netip.MustParseAddr("10.9.0.2"): "b", netip.MustParseAddr("10.9.0.6"): "dual"}
	if len(m.Peers) != len(want) {
		t.Errorf("peers %v, want %v", m.Peers, want)
	}
	for a, n := range want {
		if m.Peers[a] != n {
			t.Errorf("peer %v = %q, want %q", a, m.Peers[a], n)
		}
	}
	for _, n := range []string{"zz-dup", "noaddr", "twin-of-self", "v6only", "ext"} {
		if m.Skipped[n] == "" {
			t.Errorf("node %s not reported as skipped (skipped: %v)", n, m.Skipped)
		}
	}
	if _, ok := m.Skipped["outside"]; ok {
		t.Errorf("a node outside the selector is reported as skipped")
	}

	// ExternalIP picks the other address family member.
	m, err = DesiredMesh([]*corev1.Node{ext, func() *corev1.Node {
		n := node("self", "", true)
		n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeExternalIP, Address: "198.51.100.9"}}
		return n
	}()}, "self", sel, corev1.NodeExternalIP)
	if err != nil || m.Peers[netip.MustParseAddr("198.51.100.1")] != "ext" {
		t.Errorf("ExternalIP mesh %+v, %v", m, err)
	}
}

func TestDesiredMeshSelfErrors(t *testing.T) {
	_, err := DesiredMesh([]*corev1.Node{node("b", "10.9.0.2", true)}, "self", labels.Everything(), corev1.NodeInternalIP)
	if !errors.Is(err, ErrSelfNotFound) {
		t.Errorf("self absent: %v, want ErrSelfNotFound", err)
	}
	_, err = DesiredMesh([]*corev1.Node{node("self", "10.9.0.1", false)}, "self", labels.SelectorFromSet(labels.Set{meshLabel: "true"}), corev1.NodeInternalIP)
	if !errors.Is(err, ErrSelfNotFound) {
		t.Errorf("self outside the selector: %v, want ErrSelfNotFound", err)
	}
	_, err = DesiredMesh([]*corev1.Node{node("self", "", true)}, "self", labels.Everything(), corev1.NodeInternalIP)
	if !errors.Is(err, ErrNoAddress) {
		t.Errorf("self without address: %v, want ErrNoAddress", err)
	}
}
