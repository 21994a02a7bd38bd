package kubernetes

import (
	"context"
	"log/slog"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"
)

const meshLabel = "sclp-ovs.io/mesh"

// node returns a Node with one InternalIP (none if ip is empty) and the mesh label when
// inMesh is set.
func node(name, ip string, inMesh bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/hostname": name}}}
	if inMesh {
		n.Labels[meshLabel] = "true"
	}
	if ip != "" {
		n.Status.Addresses = []corev1.NodeAddress{
			{Type: corev1.NodeHostName, Address: name},
			{Type: corev1.NodeInternalIP, Address: ip},
		}
	}
	return n
}

// startDiscovery runs a Discovery for node self against client and store until the test
// ends.
func startDiscovery(t testing.TB, client *fake.Clientset, store PortStore, self string) *Discovery {
	t.Helper()
	cfg := Config{NodeName: self, Selector: meshLabel + "=true", Bridge: "br-int",
		Port: PeerOptions{VNI: 42}, Resync: time.Hour}
	d, err := New(client, cfg, store, Options{
		Logger:     slog.New(slog.NewTextHandler(testWriter{t}, nil)),
		MinBackoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond,
	})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("Run did not return after cancel")
		}
	})
	return d
}

// eventually polls cond every 10 ms for up to 10 s and fails the test with what() if it
// never holds.
func eventually(t testing.TB, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("condition not met in 10 s: %s", what())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// wantPorts waits until the store's ports on br-int are exactly want ("ip=node").
func wantPorts(t testing.TB, s *fakeStore, want ...string) {
	t.Helper()
	slices.Sort(want)
	got := func() []string { g := s.snapshot("br-int"); slices.Sort(g); return g }
	eventually(t, func() string {
		return "ports " + strings.Join(got(), ",") + ", want " + strings.Join(want, ",")
	}, func() bool { return slices.Equal(got(), want) })
}

// testWriter sends log lines to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(b []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(b)))
	return len(b), nil
}
