// Package deploy tests what deploy/ ships: the Kubernetes manifests (rendered with the same
// kustomize library `kubectl apply -k` runs, then decoded strictly into the k8s.io/api
// types, so an unknown or misspelt field fails), their agreement with the flags and
// endpoints the real `sclp-ovs agent` has, the Grafana dashboard ConfigMap, the Dockerfile,
// and node discovery driving a real agent against a real Open vSwitch in namespaces.
package deploy
