package deploy

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"
)

// repoRoot is the repository's top directory (this file is test/deploy/render_test.go).
func repoRoot(tb testing.TB) string {
	tb.Helper()
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		tb.Fatalf("no caller information")
	}
	return filepath.Clean(filepath.Join(filepath.Dir(file), "..", ".."))
}

// bundle is a rendered kustomization, decoded strictly into typed objects.
type bundle struct {
	DaemonSets          []*appsv1.DaemonSet
	ServiceAccounts     []*corev1.ServiceAccount
	ConfigMaps          []*corev1.ConfigMap
	Services            []*corev1.Service
	ClusterRoles        []*rbacv1.ClusterRole
	ClusterRoleBindings []*rbacv1.ClusterRoleBinding
	ServiceMonitors     []map[string]any
}

// render runs kustomize (the krusty library that kubectl apply -k embeds) on dir, relative
// to the repository root, and decodes every object strictly.
func render(tb testing.TB, dir string) *bundle {
	tb.Helper()
	k := krusty.MakeKustomizer(krusty.MakeDefaultOptions())
	m, err := k.Run(filesys.MakeFsOnDisk(), filepath.Join(repoRoot(tb), dir))
	if err != nil {
		tb.Fatalf("kustomize build %s: %v", dir, err)
	}
	b := &bundle{}
	for _, r := range m.Resources() {
		doc, err := r.AsYAML()
		if err != nil {
			tb.Fatalf("%s: %v", r.CurId(), err)
		}
		if err := b.add(doc); err != nil {
			tb.Fatalf("kustomize build %s: %v\n%s", dir, err, doc)
		}
	}
	return b
}

// typeMeta reads only apiVersion and kind.
type typeMeta struct {
	APIVersion string `json:"apiVersion"`
	Kind       string `json:"kind"`
}

// add decodes one YAML document strictly into the type its apiVersion and kind name.
func (b *bundle) add(doc []byte) error {
	var tm typeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	gvk := tm.APIVersion + "/" + tm.Kind
	var err error
	switch gvk {
	case "apps/v1/DaemonSet":
		b.DaemonSets, err = appendStrict(b.DaemonSets, doc)
	case "v1/ServiceAccount":
		b.ServiceAccounts, err = appendStrict(b.ServiceAccounts, doc)
	case "v1/ConfigMap":
		b.ConfigMaps, err = appendStrict(b.ConfigMaps, doc)
	case "v1/Service":
		b.Services, err = appendStrict(b.Services, doc)
	case "rbac.authorization.k8s.io/v1/ClusterRole":
		b.ClusterRoles, err = appendStrict(b.ClusterRoles, doc)
	case "rbac.authorization.k8s.io/v1/ClusterRoleBinding":
		b.ClusterRoleBindings, err = appendStrict(b.ClusterRoleBindings, doc)
	case "monitoring.coreos.com/v1/ServiceMonitor":
		var sm map[string]any
		if err = yaml.UnmarshalStrict(doc, &sm); err == nil {
			err = checkServiceMonitor(sm)
			b.ServiceMonitors = append(b.ServiceMonitors, sm)
		}
	default:
		return fmt.Errorf("unexpected object %s: add it to the test with its Go type", gvk)
	}
	if err != nil {
		return fmt.Errorf("%s: %w", gvk, err)
	}
	return nil
}

// appendStrict decodes doc into a new T, failing on unknown and duplicate fields.
func appendStrict[T any](list []*T, doc []byte) ([]*T, error) {
	v := new(T)
	if err := yaml.UnmarshalStrict(doc, v); err != nil {
		return list, err
	}
	return append(list, v), nil
}

// splitDocs splits a multi-document YAML file; empty documents are dropped.
func splitDocs(data []byte) [][]byte {
	var out [][]byte
	for _, d := range bytes.Split(data, []byte("\n---")) {
		if len(bytes.TrimSpace(stripComments(d))) > 0 {
			out = append(out, d)
		}
	}
	return out
}

func stripComments(d []byte) []byte {
	var keep []string
	for _, l := range strings.Split(string(d), "\n") {
		if !strings.HasPrefix(strings.TrimSpace(l), "#") {
			keep = append(keep, l)
		}
	}
	return []byte(strings.Join(keep, "\n"))
}

// manifestFiles lists the Kubernetes object files below deploy/kubernetes (not the
// kustomizations).
func manifestFiles(tb testing.TB) []string {
	tb.Helper()
	var files []string
	root := filepath.Join(repoRoot(tb), "deploy", "kubernetes")
	err := filepath.WalkDir(root, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if !d.IsDir() && strings.HasSuffix(p, ".yaml") && filepath.Base(p) != "kustomization.yaml" {
			files = append(files, p)
		}
		return nil
	})
	if err != nil || len(files) == 0 {
		tb.Fatalf("list manifests: %v (%d files)", err, len(files))
	}
	return files
}
