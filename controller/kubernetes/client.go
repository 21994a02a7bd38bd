package kubernetes

import (
	"context"
	"fmt"

	k8s "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
)

// NewClient returns a clientset from kubeconfig, or from the in-cluster service account
// (the DaemonSet's) when kubeconfig is empty.
func NewClient(kubeconfig string) (k8s.Interface, error) {
	var (
		cfg *rest.Config
		err error
	)
	if kubeconfig != "" {
		cfg, err = clientcmd.BuildConfigFromFlags("", kubeconfig)
	} else {
		cfg, err = rest.InClusterConfig()
	}
	if err != nil {
		return nil, fmt.Errorf("kubernetes client config: %w (outside a pod, pass --kubeconfig)", err)
	}
	cfg.UserAgent = "sclp-ovs-agent"
	cs, err := k8s.NewForConfig(cfg)
	if err != nil {
		return nil, fmt.Errorf("kubernetes client: %w", err)
	}
	return cs, nil
}

// Run connects to the cluster named by cfg (in-cluster or cfg.Kubeconfig) and runs node
// discovery against store until ctx ends. It is what `sclp-ovs agent --kubernetes` calls;
// a non-nil ready receives the Discovery before it starts, for the agent's /readyz.
func Run(ctx context.Context, cfg Config, store PortStore, opts Options, ready func(*Discovery)) error {
	client, err := NewClient(cfg.Kubeconfig)
	if err != nil {
		return err
	}
	d, err := New(client, cfg, store, opts)
	if err != nil {
		return err
	}
	if ready != nil {
		ready(d)
	}
	return d.Run(ctx)
}
