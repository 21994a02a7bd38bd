package deploy

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"net/http"
	"net/netip"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/kubernetes"
	"github.com/sclp-ovs/sclp-ovs/test/testbed"
)

// meshNode returns a Node with one InternalIP, labelled into the mesh when inMesh.
func meshNode(name string, ip netip.Addr, inMesh bool) *corev1.Node {
	n := &corev1.Node{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"kubernetes.io/os": "linux"}}}
	if inMesh {
		n.Labels["sclp-ovs.io/mesh"] = "true"
	}
	n.Status.Addresses = []corev1.NodeAddress{{Type: corev1.NodeHostName, Address: name}, {Type: corev1.NodeInternalIP, Address: ip.String()}}
	return n
}

// meshHosts makes n namespace hosts on subnet, a fake clientset with one Node per host
// (kvm-0, kvm-1, ..., all in the mesh) and an API server for it in the first host, which the
// others reach over the underlay; it returns the hosts, the clientset and the kubeconfig path.
func meshHosts(t *testing.T, n int, subnet netip.Prefix) ([]*testbed.Host, *fake.Clientset, string) {
	t.Helper()
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: n, Subnet: subnet})
	client := fake.NewClientset()
	for i, h := range hosts {
		if _, err := client.CoreV1().Nodes().Create(context.Background(), meshNode(fmt.Sprintf("kvm-%d", i), h.IP, true), metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}
	return hosts, client, startAPIServer(t, hosts[0].NS, hosts[0].IP, client).kubeconfig(t)
}

// vsctlPorts returns the external_ids of every Interface that carries the sclp-ovs mark,
// by name, read with ovs-vsctl.
func vsctlPorts(t *testing.T, o *testbed.OVS) map[string]map[string]string {
	t.Helper()
	out, err := o.Vsctl("--format=json", "--columns=name,external_ids", "list", "Interface")
	if err != nil {
		t.Fatalf("ovs-vsctl list Interface: %v\n%s", err, out)
	}
	var tbl struct {
		Data [][2]json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal([]byte(out), &tbl); err != nil {
		t.Fatalf("ovs-vsctl JSON: %v\n%s", err, out)
	}
	ports := map[string]map[string]string{}
	for _, row := range tbl.Data {
		var name string
		var ids struct {
			Pairs [][2]string
		}
		var m []json.RawMessage // ["map", [[k, v], ...]]
		if json.Unmarshal(row[0], &name) != nil || json.Unmarshal(row[1], &m) != nil || len(m) != 2 ||
			json.Unmarshal(m[1], &ids.Pairs) != nil {
			t.Fatalf("ovs-vsctl row %s %s", row[0], row[1])
		}
		kv := map[string]string{}
		for _, p := range ids.Pairs {
			kv[p[0]] = p[1]
		}
		if controller.Owned(kv) {
			ports[name] = kv
		}
	}
	return ports
}

// waitPorts waits (20 s at most) until the marked ports are exactly want (name -> node, ""
// for a port discovery does not manage), every managed one reported ready by the agent.
func waitPorts(t *testing.T, o *testbed.OVS, agent *testbed.Proc, want map[string]string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	var got map[string]map[string]string
	for {
		got = vsctlPorts(t, o)
		ok := len(got) == len(want)
		for name, node := range want {
			ids, present := got[name]
			ok = ok && present && ids[kubernetes.KeyNode] == node
			if node != "" {
				ok = ok && ids[kubernetes.KeyManagedBy] == kubernetes.ManagedBy && ids[controller.KeyStatus] == controller.StatusReady
			}
		}
		if ok {
			return
		}
		select {
		case <-agent.Done():
			t.Fatalf("agent exited: %v\n%s", agent.Err(), agent.Output())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("ports not as wanted after 20 s\n got %v\nwant %v\nagent log:\n%s", got, want, agent.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// httpIn returns an HTTP client whose connections are opened inside ns.
func httpIn(ns *testbed.NS) *http.Client {
	return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{
		DialContext: func(ctx context.Context, network, addr string) (c net.Conn, err error) {
			err = ns.Do(func() error {
				var d net.Dialer
				c, err = d.DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}}}
}

// probe GETs path from the agent's metrics address and returns the status code.
func probe(t *testing.T, c *http.Client, addr, path string) int {
	t.Helper()
	resp, err := c.Get("http://" + addr + path)
	if err != nil {
		return 0
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestAgentMeshesNodes runs the real sclp-ovs binary with the DaemonSet's command line (only
// --db, --pin-path and --modes pointed at the test's private OVS, bpffs directory and the
// udp datapath, plus --kubeconfig) in a host namespace next to a real Open vSwitch. Node
// objects live in a client-go fake clientset served over HTTP; the test adds, readdresses,
// unlabels and deletes nodes and checks that the tunnel ports in OVSDB follow, that the agent
// makes them ready and removes their veths, that an operator's own port is left alone, and
// that the probes answer.
func TestAgentMeshesNodes(t *testing.T) {
	testbed.RequireRoot(t)
	hosts := testbed.NewHosts(t, testbed.HostsOptions{N: 2, Subnet: netip.MustParsePrefix("10.91.0.0/24")})
	h := hosts[0]
	o := testbed.StartOVS(t, h.NS)
	o.AddBridge(t, "br-int")
	ip := func(s string) netip.Addr { return netip.MustParseAddr(s) }

	client := fake.NewClientset(
		meshNode("node-a", h.IP, true), // this node
		meshNode("node-b", hosts[1].IP, true),
		meshNode("node-c", ip("10.91.0.3"), true),
		meshNode("node-x", ip("10.91.0.7"), false), // not in the mesh
	)
	api := startAPIServer(t, h.NS, h.IP, client)

	_, _, cm, _ := agentOf(t)
	bin := agentBinary(t)
	kubeconfig := api.kubeconfig(t)
	agent := startMeshAgent(t, o, "node-a", h.IP, kubeconfig)

	// An operator's own port, made with add-port before discovery sees its peer as a node.
	if out, err := o.Command(bin, "--db", o.DBEndpoint(), "add-port", "--wait=false", "br-int", "peer=10.91.0.9").CombinedOutput(); err != nil {
		t.Fatalf("add-port: %v\n%s", err, out)
	}

	waitPorts(t, o, agent, map[string]string{"sclp0a5b0002": "node-b", "sclp0a5b0003": "node-c", "sclp0a5b0009": ""})
	ids := vsctlPorts(t, o)["sclp0a5b0002"]
	for k, v := range map[string]string{controller.KeyPeer: "10.91.0.2", controller.KeyLocalIP: h.IP.String(),
		controller.KeyVNI: cm.Data["vni"], controller.KeyMode: cm.Data["mode"], controller.KeyDstPort: cm.Data["dst-port"],
		controller.KeyDev: h.Underlay} {
		if ids[k] != v {
			t.Errorf("port to node-b: %s=%q, want %q (all: %v)", k, ids[k], v, ids)
		}
	}
	if _, err := h.Run("ip", "link", "show", "sclp0a5b0003"); err != nil {
		t.Errorf("the agent made no veth for node-c's port: %v", err)
	}

	metricsAddr := h.IP.String() + ":" + cm.Data["metrics-port"]
	hc := httpIn(h.NS)
	deadline := time.Now().Add(20 * time.Second)
	for probe(t, hc, metricsAddr, "/readyz") != http.StatusOK {
		if time.Now().After(deadline) {
			t.Fatalf("/readyz never answered 200 on %s\n%s", metricsAddr, agent.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, p := range []string{"/healthz", "/metrics"} {
		if code := probe(t, hc, metricsAddr, p); code != http.StatusOK {
			t.Errorf("GET %s: %d", p, code)
		}
	}

	ctx := context.Background()
	nodes := client.CoreV1().Nodes()
	step := func(what string, fn func() error, want map[string]string) {
		t.Helper()
		if err := fn(); err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		waitPorts(t, o, agent, want)
	}
	step("node-c changes address", func() error {
		_, err := nodes.Update(ctx, meshNode("node-c", ip("10.91.0.4"), true), metav1.UpdateOptions{})
		return err
	}, map[string]string{"sclp0a5b0002": "node-b", "sclp0a5b0004": "node-c", "sclp0a5b0009": ""})
	step("node-d joins", func() error {
		_, err := nodes.Create(ctx, meshNode("node-d", ip("10.91.0.5"), true), metav1.CreateOptions{})
		return err
	}, map[string]string{"sclp0a5b0002": "node-b", "sclp0a5b0004": "node-c", "sclp0a5b0005": "node-d", "sclp0a5b0009": ""})
	step("node-b leaves the mesh (label removed)", func() error {
		_, err := nodes.Update(ctx, meshNode("node-b", hosts[1].IP, false), metav1.UpdateOptions{})
		return err
	}, map[string]string{"sclp0a5b0004": "node-c", "sclp0a5b0005": "node-d", "sclp0a5b0009": ""})
	step("node-c is deleted", func() error {
		return nodes.Delete(ctx, "node-c", metav1.DeleteOptions{})
	}, map[string]string{"sclp0a5b0005": "node-d", "sclp0a5b0009": ""})
	step("node-x joins the mesh (label added)", func() error {
		_, err := nodes.Update(ctx, meshNode("node-x", ip("10.91.0.7"), true), metav1.UpdateOptions{})
		return err
	}, map[string]string{"sclp0a5b0005": "node-d", "sclp0a5b0007": "node-x", "sclp0a5b0009": ""})

	// The agent removes the veths of the ports discovery deleted.
	deadline = time.Now().Add(20 * time.Second)
	for {
		out, _ := h.Run("ip", "-o", "link", "show")
		var left []string
		for _, gone := range []string{"sclp0a5b0002", "sclp0a5b0003", "sclp0a5b0004"} {
			if strings.Contains(out, gone+"@") || strings.Contains(out, gone+":") {
				left = append(left, gone)
			}
		}
		if len(left) == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("veths of deleted ports still present after 20 s: %v\n%s", left, out)
		}
		time.Sleep(100 * time.Millisecond)
	}

	// SIGTERM: a clean exit that leaves every port for the next agent.
	before := vsctlPorts(t, o)
	agent.Stop(10 * time.Second)
	if err := agent.Err(); err != nil {
		t.Errorf("agent exit after SIGTERM: %v\n%s", err, agent.Output())
	}
	after := vsctlPorts(t, o)
	if !slices.Equal(slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after))) {
		t.Errorf("ports changed across the agent's stop: %v -> %v", slices.Sorted(maps.Keys(before)), slices.Sorted(maps.Keys(after)))
	}
	if t.Failed() || testing.Verbose() {
		t.Logf("agent log:\n%s", agent.Output())
	}

	// Everything the agent asked the API server is allowed by the ClusterRole it gets.
	checkRBAC(t, api.seen())

	// A new agent with the same settings (a rolling update) changes nothing: same OVSDB rows,
	// same veths.
	rows, links := ifaceUUIDs(t, o), linkIndexes(t, h.NS)
	agent = startMeshAgent(t, o, "node-a", h.IP, kubeconfig)
	waitPorts(t, o, agent, map[string]string{"sclp0a5b0005": "node-d", "sclp0a5b0007": "node-x", "sclp0a5b0009": ""})
	time.Sleep(500 * time.Millisecond) // a few agent passes
	if got := ifaceUUIDs(t, o); !maps.Equal(got, rows) {
		t.Errorf("Interface rows changed across an agent restart:\n%v\n%v", rows, got)
	}
	if got := linkIndexes(t, h.NS); !maps.Equal(got, links) {
		t.Errorf("veths changed across an agent restart:\n%v\n%v", links, got)
	}
	agent.Stop(10 * time.Second)

	// A new VNI in the ConfigMap (the last flag wins, as the kubelet would pass only the new
	// one): the mesh ports are replaced, the operator's port is not.
	agent = startMeshAgent(t, o, "node-a", h.IP, kubeconfig, "--mesh-vni=4097")
	deadline = time.Now().Add(20 * time.Second)
	for {
		p := vsctlPorts(t, o)
		if p["sclp0a5b0005"][controller.KeyVNI] == "4097" && p["sclp0a5b0007"][controller.KeyVNI] == "4097" &&
			p["sclp0a5b0005"][controller.KeyStatus] == controller.StatusReady && p["sclp0a5b0009"][controller.KeyVNI] == "0" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("ports after the VNI change: %v\n%s", p, agent.Output())
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// ifaceUUIDs returns the _uuid of every Interface by name.
func ifaceUUIDs(t *testing.T, o *testbed.OVS) map[string]string {
	t.Helper()
	out := o.MustVsctl(t, "--bare", "--columns=name,_uuid", "list", "Interface")
	m := map[string]string{}
	var name string
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		switch {
		case l == "":
			name = ""
		case name == "":
			name = l
		default:
			m[name] = l
		}
	}
	return m
}

// linkIndexes returns "ifindex" of every link in ns by name.
func linkIndexes(t *testing.T, ns *testbed.NS) map[string]string {
	t.Helper()
	m := map[string]string{}
	for _, l := range strings.Split(ns.MustRun(t, "ip", "-o", "link", "show"), "\n") {
		f := strings.Fields(l)
		if len(f) >= 2 {
			m[strings.SplitN(strings.TrimSuffix(f[1], ":"), "@", 2)[0]] = f[0]
		}
	}
	return m
}

// startMeshAgent starts the real binary in o's namespace with the DaemonSet's command line
// for node name at ip, pointed at o (--db), a private pin directory, the udp datapath only
// (mode=ip has its own tests) and kubeconfig.
func startMeshAgent(t *testing.T, o *testbed.OVS, name string, ip netip.Addr, kubeconfig string, extra ...string) *testbed.Proc {
	t.Helper()
	p, _ := startMeshPod(t, o, name, ip, kubeconfig, extra...)
	return p
}

// meshPod is one started agent's pod: its emptyDir (/tmp in the manifest) is a directory
// of its own, as a new pod gets.
type meshPod struct {
	mount, dir string
}

// path maps a path of the manifest (the container's view) to the pod's own directory.
func (p meshPod) path(s string) string {
	if rest, ok := strings.CutPrefix(s, p.mount+"/"); ok {
		return filepath.Join(p.dir, rest)
	}
	return s
}

// startMeshPod is startMeshAgent also returning the pod, whose emptyDir paths (the retired
// marker, the probe socket) point into a directory of its own; extra arguments come last
// and override the manifest's (an extra --db, a global flag, replaces the test's OVSDB).
func startMeshPod(t *testing.T, o *testbed.OVS, name string, ip netip.Addr, kubeconfig string, extra ...string) (*testbed.Proc, meshPod) {
	t.Helper()
	ds, c, cm, _ := agentOf(t)
	args, err := containerArgs(c, cm, map[string]string{"spec.nodeName": name, "status.podIP": ip.String()})
	if err != nil {
		t.Fatal(err)
	}
	pod := meshPod{dir: t.TempDir()}
	for _, a := range args {
		if v, ok := strings.CutPrefix(a, "--retired-marker="); ok {
			pod.mount = podDir(ds.Spec.Template.Spec, c, v)
		}
	}
	if pod.mount == "" {
		t.Fatal("the manifest's --retired-marker is not in an emptyDir")
	}
	pins := t.TempDir()
	db := "--db=" + o.DBEndpoint()
	extra = slices.DeleteFunc(slices.Clone(extra), func(a string) bool {
		if strings.HasPrefix(a, "--db=") {
			db = a
			return true
		}
		return false
	})
	for i, a := range args {
		switch {
		case strings.HasPrefix(a, "--db="):
			args[i] = db
		case strings.HasPrefix(a, "--pin-path="):
			args[i] = "--pin-path=" + pins
		case strings.HasPrefix(a, "--modes="):
			args[i] = "--modes=udp"
		default:
			if k, v, ok := strings.Cut(a, "="); ok {
				args[i] = k + "=" + pod.path(v)
			}
		}
	}
	args = append(append(args, "--kubeconfig="+kubeconfig), extra...)
	return testbed.StartCmd(t, o.Command(append([]string{agentBinary(t)}, args[1:]...)...)), pod
}

// execProbe runs the manifest's exec probe pr of the pod as the kubelet does (the real
// binary, the command's arguments with the pod's emptyDir) and returns its exit code and
// output.
func execProbe(t *testing.T, pod meshPod, pr *corev1.Probe) (int, string) {
	t.Helper()
	if pr == nil || pr.Exec == nil {
		t.Fatalf("probe %+v is not an exec probe", pr)
	}
	args := slices.Clone(pr.Exec.Command[1:])
	for i, a := range args {
		if k, v, ok := strings.Cut(a, "="); ok {
			args[i] = k + "=" + pod.path(v)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(max(pr.TimeoutSeconds, 1))*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, agentBinary(t), args...).CombinedOutput()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return ee.ExitCode(), string(out)
	}
	if err != nil {
		t.Fatalf("probe %q: %v", args, err)
	}
	return 0, string(out)
}

// checkRBAC fails the test for any request ("verb resource") that the rendered ClusterRole
// does not allow, and when there were no list and watch requests at all.
func checkRBAC(t *testing.T, seen map[string]int) {
	t.Helper()
	role := render(t, "deploy/kubernetes").ClusterRoles[0]
	allowed := map[string]bool{}
	for _, r := range role.Rules {
		for _, res := range r.Resources {
			for _, v := range r.Verbs {
				allowed[v+" "+res] = true
			}
		}
	}
	for req, n := range seen {
		if !allowed[req] {
			t.Errorf("the agent made %d request(s) %q that its ClusterRole does not allow", n, req)
		}
	}
	if seen["list nodes"] == 0 || seen["watch nodes"] == 0 {
		t.Errorf("requests %v: want node lists and watches", seen)
	}
}
