package cli

import (
	"context"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/controller/kubernetes"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// TestAgentReadyzWaitsForKubernetes: with --kubernetes the agent's /readyz includes node
// discovery: 503 with a "kubernetes" line until discovery has reconciled once (although the
// reconciler has converged), then 200; /healthz does not depend on it.
func TestAgentReadyzWaitsForKubernetes(t *testing.T) {
	h := newHarness()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	release := make(chan struct{})
	d := Deps{Stdout: io.Discard, Stderr: io.Discard, Router: h.router, Links: controllertest.NewLinks(),
		OpenDB: func(context.Context, string) (DB, error) { return h.db, nil },
		NewAgentDeps: func(context.Context, AgentConfig) (AgentDeps, func(), error) {
			return AgentDeps{Flows: controllertest.NewFlows(),
				Datapaths: map[offload.Mode]offload.Datapath{offload.ModeUDP: controllertest.NewDatapath()}}, func() {}, nil
		},
		Now: time.Now, Log: slog.New(slog.DiscardHandler),
		// Discovery against a fake API server with this node only: it exists (ready is
		// called) but reconciles only once the test releases it.
		Discover: func(ctx context.Context, cfg kubernetes.Config, store kubernetes.PortStore, o kubernetes.Options, ready func(*kubernetes.Discovery)) error {
			self := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: cfg.NodeName}}
			self.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeInternalIP, Address: "10.0.0.1"}}
			k, err := kubernetes.New(fake.NewClientset(self), cfg, store, o)
			if err != nil {
				return err
			}
			ready(k)
			select {
			case <-release:
			case <-ctx.Done():
				return nil
			}
			return k.Run(ctx)
		},
	}
	cfg := AgentConfig{DB: "unix:" + t.TempDir() + "/db.sock", Modes: []offload.Mode{offload.ModeUDP},
		Log: d.Log, MetricsAddress: addr,
		Kubernetes: &kubernetes.Config{NodeName: "n1", Bridge: "br-int", Port: kubernetes.PeerOptions{VNI: 42}, Resync: time.Hour}}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- runAgent(ctx, d, cfg, 10*time.Millisecond) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("agent: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("agent did not stop")
		}
	})

	base := "http://" + addr
	// Wait until the endpoint serves and the reconciler has converged (/healthz fine and
	// /readyz failing for discovery alone).
	var code int
	var body string
	waitFor(t, func() bool {
		code, body = httpGet(base + "/readyz?verbose")
		return code == http.StatusServiceUnavailable && strings.Contains(body, "[+] converged")
	}, func() string { return body })
	if !strings.Contains(body, "[-] kubernetes: kubernetes discovery not converged") {
		t.Fatalf("/readyz before discovery reconciled: %d %q", code, body)
	}
	if code, body := httpGet(base + "/healthz"); code != http.StatusOK {
		t.Fatalf("/healthz %d %q: discovery must not fail liveness", code, body)
	}
	close(release)
	waitFor(t, func() bool {
		code, body = httpGet(base + "/readyz?verbose")
		return code == http.StatusOK
	}, func() string { return body })
	if !strings.Contains(body, "[+] kubernetes") {
		t.Fatalf("/readyz does not list the kubernetes check: %q", body)
	}
}

// httpGet returns the status and body of GET url (0 and the error text if it fails).
func httpGet(url string) (int, string) {
	c := http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, err.Error()
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitFor polls cond every 20 ms for up to 10 s and fails the test with last() if it never
// holds.
func waitFor(tb testing.TB, cond func() bool, last func() string) {
	tb.Helper()
	for deadline := time.Now().Add(10 * time.Second); !cond(); time.Sleep(20 * time.Millisecond) {
		if time.Now().After(deadline) {
			tb.Fatalf("condition not met in 10 s; last: %s", last())
		}
	}
}
