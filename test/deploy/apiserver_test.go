package deploy

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/watch"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// apiServer serves the Nodes of a client-go fake clientset over HTTP: the list and the
// watch (with label selectors, as kube-apiserver applies them: an object that stops
// matching is DELETED from the watch, one that starts matching is ADDED). That is all a
// Node informer in another process (the real agent binary) needs. The test changes nodes
// through the fake clientset.
type apiServer struct {
	client *fake.Clientset
	url    string

	mu       sync.Mutex
	requests map[string]int // "verb resource" (RBAC terms) -> count, refused ones included
}

// record notes a request in RBAC terms.
func (a *apiServer) record(verb, resource string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.requests[verb+" "+resource]++
}

// seen returns the requests so far ("verb resource" -> count).
func (a *apiServer) seen() map[string]int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return maps.Clone(a.requests)
}

// startAPIServer listens on ip (an address inside ns, so that the agent in ns reaches it and
// nothing outside does) and serves until the test ends.
func startAPIServer(t *testing.T, ns *testbed.NS, ip netip.Addr, client *fake.Clientset) *apiServer {
	t.Helper()
	var ln net.Listener
	if err := ns.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(ip, 0).String())
		return err
	}); err != nil {
		t.Fatalf("listen in %s: %v", ns.Name, err)
	}
	a := &apiServer{client: client, url: "http://" + ln.Addr().String(), requests: map[string]int{}}
	srv := &http.Server{Handler: http.HandlerFunc(a.serve), ReadHeaderTimeout: 5 * time.Second}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	t.Cleanup(func() {
		srv.Close()
		<-done
	})
	return a
}

// kubeconfig writes a kubeconfig for the server and returns its path.
func (a *apiServer) kubeconfig(t *testing.T) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "kubeconfig")
	cfg := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: fake
    cluster: {server: %q}
users:
  - name: agent
    user: {}
contexts:
  - name: fake
    context: {cluster: fake, user: agent}
current-context: fake
`, a.url)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func (a *apiServer) serve(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if r.Method != http.MethodGet || r.URL.Path != "/api/v1/nodes" {
		a.record(strings.ToLower(r.Method), r.URL.Path)
		writeStatus(w, http.StatusNotFound, "NotFound", "this test server serves GET /api/v1/nodes only")
		return
	}
	if q.Get("watch") == "true" || q.Get("watch") == "1" {
		a.record("watch", "nodes")
	} else {
		a.record("list", "nodes")
	}
	sel, err := labels.Parse(q.Get("labelSelector"))
	if err != nil {
		writeStatus(w, http.StatusBadRequest, "BadRequest", err.Error())
		return
	}
	if q.Get("watch") != "true" && q.Get("watch") != "1" {
		a.list(w, r, sel)
		return
	}
	if q.Get("sendInitialEvents") == "true" {
		// Like a kube-apiserver without streaming lists: client-go falls back to list+watch.
		writeStatus(w, http.StatusBadRequest, "BadRequest", "sendInitialEvents is not supported")
		return
	}
	a.watch(w, r, sel, q.Get("timeoutSeconds"))
}

func (a *apiServer) list(w http.ResponseWriter, r *http.Request, sel labels.Selector) {
	all, err := a.client.CoreV1().Nodes().List(r.Context(), metav1.ListOptions{})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	out := corev1.NodeList{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "NodeList"},
		ListMeta: metav1.ListMeta{ResourceVersion: "1"}}
	for _, n := range all.Items {
		if sel.Matches(labels.Set(n.Labels)) {
			out.Items = append(out.Items, n)
		}
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(out)
}

func (a *apiServer) watch(w http.ResponseWriter, r *http.Request, sel labels.Selector, timeout string) {
	ctx := r.Context()
	if s, err := strconv.Atoi(timeout); err == nil && s > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, time.Duration(s)*time.Second)
		defer cancel()
	}
	wi, err := a.client.CoreV1().Nodes().Watch(ctx, metav1.ListOptions{})
	if err != nil {
		writeStatus(w, http.StatusInternalServerError, "InternalError", err.Error())
		return
	}
	defer wi.Stop()
	// Names currently matching: seeded from the list the client has just made.
	matching := map[string]bool{}
	if all, err := a.client.CoreV1().Nodes().List(ctx, metav1.ListOptions{}); err == nil {
		for _, n := range all.Items {
			matching[n.Name] = sel.Matches(labels.Set(n.Labels))
		}
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusOK)
	flush := func() {
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
	}
	flush()
	enc := json.NewEncoder(w)
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-wi.ResultChan():
			if !ok {
				return
			}
			n, isNode := ev.Object.(*corev1.Node)
			if !isNode {
				continue
			}
			typ := selectorEvent(ev.Type, matching[n.Name], sel.Matches(labels.Set(n.Labels)))
			matching[n.Name] = ev.Type != watch.Deleted && sel.Matches(labels.Set(n.Labels))
			if typ == "" {
				continue
			}
			obj := n.DeepCopy()
			obj.APIVersion, obj.Kind = "v1", "Node"
			if err := enc.Encode(map[string]any{"type": typ, "object": obj}); err != nil {
				return
			}
			flush()
		}
	}
}

// selectorEvent maps an event to what a watch with a label selector sees ("" for nothing).
func selectorEvent(t watch.EventType, before, after bool) watch.EventType {
	switch {
	case t == watch.Deleted && before:
		return watch.Deleted
	case t == watch.Deleted:
		return ""
	case before && after:
		return watch.Modified
	case before:
		return watch.Deleted
	case after:
		return watch.Added
	}
	return ""
}

func writeStatus(w http.ResponseWriter, code int, reason, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(metav1.Status{TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Status"},
		Status: metav1.StatusFailure, Code: int32(code), Reason: metav1.StatusReason(reason), Message: msg})
}
