package deploy

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManifestFilesDecodeStrictly decodes every object of every file under deploy/kubernetes
// as written (before kustomize), so a misspelt field fails even if kustomize kept it.
func TestManifestFilesDecodeStrictly(t *testing.T) {
	for _, f := range manifestFiles(t) {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		b := &bundle{}
		for i, doc := range splitDocs(data) {
			if err := b.add(doc); err != nil {
				t.Errorf("%s document %d: %v", f, i, err)
			}
		}
	}
}

// TestStrictDecodeCatchesTypos proves the decoder is strict: one misspelt field in the real
// DaemonSet, and one in the real ServiceMonitor, must fail.
func TestStrictDecodeCatchesTypos(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy", "kubernetes")
	for file, typo := range map[string][2]string{
		"base/daemonset.yaml":                     {"hostNetwork: true", "hostNetwrok: true"},
		"prometheus-operator/servicemonitor.yaml": {"scrapeTimeout: 10s", "scrapeTimout: 10s"},
		"base/rbac.yaml":                          {"verbs:", "verb:"},
	} {
		data, err := os.ReadFile(filepath.Join(root, file))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Contains(data, []byte(typo[0])) {
			t.Fatalf("%s has no %q to misspell", file, typo[0])
		}
		bad := bytes.Replace(data, []byte(typo[0]), []byte(typo[1]), 1)
		failed := false
		for _, doc := range splitDocs(bad) {
			if err := (&bundle{}).add(doc); err != nil {
				failed = true
				if !strings.Contains(err.Error(), "unknown field") {
					t.Errorf("%s with %q: error %v, want an unknown field", file, typo[1], err)
				}
			}
		}
		if !failed {
			t.Errorf("%s with %q decoded without error", file, typo[1])
		}
	}
}

// TestKustomizeRenders builds both kustomizations and checks the object inventory.
func TestKustomizeRenders(t *testing.T) {
	base := render(t, "deploy/kubernetes")
	if len(base.DaemonSets) != 1 || len(base.ServiceAccounts) != 1 || len(base.ClusterRoles) != 1 ||
		len(base.ClusterRoleBindings) != 1 || len(base.Services) != 1 || len(base.ConfigMaps) != 2 {
		t.Fatalf("deploy/kubernetes renders %d DaemonSets, %d ServiceAccounts, %d ClusterRoles, %d bindings, %d Services, %d ConfigMaps",
			len(base.DaemonSets), len(base.ServiceAccounts), len(base.ClusterRoles), len(base.ClusterRoleBindings),
			len(base.Services), len(base.ConfigMaps))
	}
	if len(base.ServiceMonitors) != 0 {
		t.Errorf("the base must not need the Prometheus operator's CRD")
	}
	for _, o := range []string{base.DaemonSets[0].Namespace, base.ServiceAccounts[0].Namespace, base.Services[0].Namespace,
		base.ConfigMaps[0].Namespace, base.ConfigMaps[1].Namespace} {
		if o != "kube-system" {
			t.Errorf("object in namespace %q, want kube-system", o)
		}
	}
	op := render(t, "deploy/kubernetes/prometheus-operator")
	if len(op.ServiceMonitors) != 1 || len(op.DaemonSets) != 1 || len(op.ConfigMaps) != 2 {
		t.Fatalf("prometheus-operator renders %d ServiceMonitors, %d DaemonSets, %d ConfigMaps",
			len(op.ServiceMonitors), len(op.DaemonSets), len(op.ConfigMaps))
	}
	sm, err := decodeServiceMonitor(op.ServiceMonitors[0])
	if err != nil {
		t.Fatal(err)
	}
	svc := op.Services[0]
	if sm.Metadata.Namespace != "kube-system" || sm.Spec.NamespaceSelector.MatchNames[0] != svc.Namespace {
		t.Errorf("ServiceMonitor in %q selects namespace %v; the Service is in %q",
			sm.Metadata.Namespace, sm.Spec.NamespaceSelector.MatchNames, svc.Namespace)
	}
	for k, v := range sm.Spec.Selector.MatchLabels {
		if svc.Labels[k] != v {
			t.Errorf("ServiceMonitor selects %s=%s; the Service has %q", k, v, svc.Labels[k])
		}
	}
	if sm.Spec.Endpoints[0].Port != svc.Spec.Ports[0].Name || sm.Spec.Endpoints[0].Path != "/metrics" {
		t.Errorf("ServiceMonitor scrapes port %q path %q; the Service port is %q",
			sm.Spec.Endpoints[0].Port, sm.Spec.Endpoints[0].Path, svc.Spec.Ports[0].Name)
	}
}

// TestDashboardConfigMap checks that the dashboard ConfigMap carries deploy/grafana's
// dashboard byte for byte (kustomize reads the copy under deploy/kubernetes/base/dashboards).
func TestDashboardConfigMap(t *testing.T) {
	root := repoRoot(t)
	src, err := os.ReadFile(filepath.Join(root, "deploy", "grafana", "sclp-ovs.json"))
	if err != nil {
		t.Fatal(err)
	}
	cp, err := os.ReadFile(filepath.Join(root, "deploy", "kubernetes", "base", "dashboards", "sclp-ovs.json"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(src, cp) {
		t.Fatalf("deploy/kubernetes/base/dashboards/sclp-ovs.json differs from deploy/grafana/sclp-ovs.json: " +
			"cp deploy/grafana/sclp-ovs.json deploy/kubernetes/base/dashboards/sclp-ovs.json")
	}
	b := render(t, "deploy/kubernetes")
	for _, cm := range b.ConfigMaps {
		if cm.Name != "sclp-ovs-grafana-dashboard" {
			continue
		}
		if cm.Labels["grafana_dashboard"] != "1" {
			t.Errorf("dashboard ConfigMap labels %v: Grafana's sidecar looks for grafana_dashboard=1", cm.Labels)
		}
		if cm.Data["sclp-ovs.json"] != string(src) {
			t.Errorf("dashboard ConfigMap data differs from deploy/grafana/sclp-ovs.json")
		}
		return
	}
	t.Fatalf("no sclp-ovs-grafana-dashboard ConfigMap rendered")
}
