package deploy

import (
	"regexp"
	"slices"
	"strconv"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// agentOf returns the rendered DaemonSet, its agent container and the settings ConfigMap.
func agentOf(t *testing.T) (*appsv1.DaemonSet, *corev1.Container, *corev1.ConfigMap, *bundle) {
	t.Helper()
	b := render(t, "deploy/kubernetes")
	ds := b.DaemonSets[0]
	if n := len(ds.Spec.Template.Spec.Containers); n != 1 {
		t.Fatalf("%d containers, want the agent only", n)
	}
	var cm *corev1.ConfigMap
	for _, c := range b.ConfigMaps {
		if c.Name == "sclp-ovs-config" {
			cm = c
		}
	}
	if cm == nil {
		t.Fatalf("no sclp-ovs-config ConfigMap")
	}
	return ds, &ds.Spec.Template.Spec.Containers[0], cm, b
}

func TestDaemonSetHostAccess(t *testing.T) {
	ds, c, _, _ := agentOf(t)
	pod := ds.Spec.Template.Spec
	if !pod.HostNetwork || pod.HostPID || pod.HostIPC {
		t.Errorf("hostNetwork %v hostPID %v hostIPC %v, want true false false", pod.HostNetwork, pod.HostPID, pod.HostIPC)
	}
	if pod.DNSPolicy != corev1.DNSClusterFirstWithHostNet {
		t.Errorf("dnsPolicy %q with hostNetwork, want ClusterFirstWithHostNet", pod.DNSPolicy)
	}
	if pod.PriorityClassName != "system-node-critical" {
		t.Errorf("priorityClassName %q", pod.PriorityClassName)
	}
	sc := c.SecurityContext
	if sc == nil || sc.Capabilities == nil {
		t.Fatalf("no securityContext with capabilities")
	}
	if sc.Privileged != nil && *sc.Privileged {
		t.Errorf("the agent runs privileged")
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		t.Errorf("allowPrivilegeEscalation not false")
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		t.Errorf("root filesystem not read-only")
	}
	if !slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) {
		t.Errorf("capabilities drop %v, want ALL", sc.Capabilities.Drop)
	}
	add := slices.Clone(sc.Capabilities.Add)
	slices.Sort(add)
	want := []corev1.Capability{"BPF", "NET_ADMIN", "NET_RAW", "PERFMON", "SYS_RESOURCE"}
	if !slices.Equal(add, want) {
		t.Errorf("capabilities add %v, want %v", add, want)
	}

	mounts := map[string]corev1.VolumeMount{}
	for _, m := range c.VolumeMounts {
		mounts[m.MountPath] = m
	}
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for path, host := range map[string]string{"/sys/fs/bpf": "/sys/fs/bpf", "/var/run/openvswitch": "/var/run/openvswitch"} {
		m, ok := mounts[path]
		if !ok {
			t.Errorf("no mount at %s", path)
			continue
		}
		v := vols[m.Name]
		if v.HostPath == nil || v.HostPath.Path != host {
			t.Errorf("mount %s is volume %+v, want hostPath %s", path, v, host)
		}
		if m.ReadOnly {
			t.Errorf("mount %s is read-only; the agent writes there", path)
		}
	}
	if p := mounts["/sys/fs/bpf"].MountPropagation; p == nil || *p != corev1.MountPropagationHostToContainer {
		t.Errorf("bpffs mount propagation %v, want HostToContainer (Bidirectional needs privileged)", p)
	}

	// The update strategy (surge) is checked by TestDaemonSetSurgeUpdate.
	tolerateAll := false
	for _, tol := range pod.Tolerations {
		tolerateAll = tolerateAll || (tol.Operator == corev1.TolerationOpExists && tol.Key == "" && tol.Effect == "")
	}
	if !tolerateAll {
		t.Errorf("tolerations %v do not tolerate every taint", pod.Tolerations)
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		if _, ok := c.Resources.Requests[r]; !ok {
			t.Errorf("no %s request", r)
		}
	}
	if _, ok := c.Resources.Limits[corev1.ResourceMemory]; !ok {
		t.Errorf("no memory limit")
	}
}

var varRef = regexp.MustCompile(`\$\(([A-Za-z_][A-Za-z0-9_]*)\)`)

func TestDaemonSetWiring(t *testing.T) {
	ds, c, cm, b := agentOf(t)
	pod := ds.Spec.Template.Spec

	// Every $(VAR) in the args is an env var, and every configMapKeyRef names a key that exists.
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
		if ref := e.ValueFrom; ref != nil && ref.ConfigMapKeyRef != nil {
			if ref.ConfigMapKeyRef.Name != cm.Name {
				t.Errorf("env %s reads ConfigMap %q, want %q", e.Name, ref.ConfigMapKeyRef.Name, cm.Name)
			}
			if _, ok := cm.Data[ref.ConfigMapKeyRef.Key]; !ok {
				t.Errorf("env %s reads key %q, not in the ConfigMap", e.Name, ref.ConfigMapKeyRef.Key)
			}
		}
	}
	for _, a := range append(slices.Clone(c.Command), c.Args...) {
		for _, m := range varRef.FindAllStringSubmatch(a, -1) {
			if _, ok := env[m[1]]; !ok {
				t.Errorf("argument %q uses $(%s), which is not in env (Kubernetes would pass it literally)", a, m[1])
			}
		}
	}
	if f := env["NODE_NAME"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "spec.nodeName" {
		t.Errorf("NODE_NAME is not spec.nodeName from the downward API")
	}
	if f := env["POD_IP"].ValueFrom; f == nil || f.FieldRef == nil || f.FieldRef.FieldPath != "status.podIP" {
		t.Errorf("POD_IP is not status.podIP from the downward API")
	}

	// One metrics port, the same everywhere: ConfigMap, scrape annotations, Service (every
	// reference resolves: see resolvePort). The probes ask the pod's own agent instead
	// (checkExecProbes).
	metrics, err := strconv.Atoi(cm.Data["metrics-port"])
	if err != nil {
		t.Fatalf("ConfigMap metrics-port %q: %v", cm.Data["metrics-port"], err)
	}
	if a := ds.Spec.Template.Annotations; a["prometheus.io/scrape"] != "true" || a["prometheus.io/port"] != strconv.Itoa(metrics) || a["prometheus.io/path"] != "/metrics" {
		t.Errorf("scrape annotations %v, want port %d path /metrics", a, metrics)
	}
	checkExecProbes(t, ds.Spec.Template.Spec, c)
	svc := b.Services[0]
	if port, err := resolvePort(c, svc.Spec.Ports[0].TargetPort); err != nil || port != metrics || svc.Spec.Ports[0].Port != int32(metrics) {
		t.Errorf("Service port %+v (target %d, %v), want %d -> %d", svc.Spec.Ports[0], port, err, metrics, metrics)
	}
	if !labels.SelectorFromSet(svc.Spec.Selector).Matches(labels.Set(ds.Spec.Template.Labels)) {
		t.Errorf("Service selector %v does not select the agent pods %v", svc.Spec.Selector, ds.Spec.Template.Labels)
	}

	// The nodes that run the agent are the nodes discovery meshes.
	sel, err := labels.Parse(cm.Data["node-selector"])
	if err != nil {
		t.Fatalf("ConfigMap node-selector: %v", err)
	}
	if !sel.Matches(labels.Set(pod.NodeSelector)) {
		t.Errorf("DaemonSet nodeSelector %v is outside the mesh selector %q", pod.NodeSelector, sel)
	}

	// Identity and RBAC: get/list/watch nodes, nothing else.
	sa := b.ServiceAccounts[0]
	if pod.ServiceAccountName != sa.Name {
		t.Errorf("serviceAccountName %q, ServiceAccount %q", pod.ServiceAccountName, sa.Name)
	}
	role, bind := b.ClusterRoles[0], b.ClusterRoleBindings[0]
	if len(role.Rules) != 1 || !slices.Equal(role.Rules[0].APIGroups, []string{""}) ||
		!slices.Equal(role.Rules[0].Resources, []string{"nodes"}) ||
		!slices.Equal(role.Rules[0].Verbs, []string{"get", "list", "watch"}) || len(role.Rules[0].ResourceNames) != 0 {
		t.Errorf("ClusterRole rules %+v, want get/list/watch on nodes only", role.Rules)
	}
	if bind.RoleRef.Kind != "ClusterRole" || bind.RoleRef.Name != role.Name || len(bind.Subjects) != 1 ||
		bind.Subjects[0].Kind != "ServiceAccount" || bind.Subjects[0].Name != sa.Name || bind.Subjects[0].Namespace != sa.Namespace {
		t.Errorf("ClusterRoleBinding %+v does not bind %s to %s/%s", bind, role.Name, sa.Namespace, sa.Name)
	}
}
