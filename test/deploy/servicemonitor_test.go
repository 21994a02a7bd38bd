package deploy

import (
	"encoding/json"
	"errors"
	"fmt"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// serviceMonitor mirrors the fields of monitoring.coreos.com/v1 ServiceMonitor (prometheus-
// operator's CRD) that a scrape configuration uses. Its Go types are not among our modules,
// so the decode is strict against this copy: a field the CRD does not have fails.
type serviceMonitor struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Metadata   metav1.ObjectMeta `json:"metadata"`
	Spec       struct {
		JobLabel          string               `json:"jobLabel,omitempty"`
		TargetLabels      []string             `json:"targetLabels,omitempty"`
		PodTargetLabels   []string             `json:"podTargetLabels,omitempty"`
		Selector          metav1.LabelSelector `json:"selector"`
		NamespaceSelector struct {
			Any        bool     `json:"any,omitempty"`
			MatchNames []string `json:"matchNames,omitempty"`
		} `json:"namespaceSelector"`
		SampleLimit *uint64 `json:"sampleLimit,omitempty"`
		Endpoints   []struct {
			Port              string         `json:"port,omitempty"`
			TargetPort        any            `json:"targetPort,omitempty"`
			Path              string         `json:"path,omitempty"`
			Scheme            string         `json:"scheme,omitempty"`
			Params            map[string]any `json:"params,omitempty"`
			Interval          string         `json:"interval,omitempty"`
			ScrapeTimeout     string         `json:"scrapeTimeout,omitempty"`
			HonorLabels       bool           `json:"honorLabels,omitempty"`
			HonorTimestamps   *bool          `json:"honorTimestamps,omitempty"`
			Relabelings       []relabel      `json:"relabelings,omitempty"`
			MetricRelabelings []relabel      `json:"metricRelabelings,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// relabel is prometheus-operator's RelabelConfig.
type relabel struct {
	SourceLabels []string `json:"sourceLabels,omitempty"`
	Separator    string   `json:"separator,omitempty"`
	TargetLabel  string   `json:"targetLabel,omitempty"`
	Regex        string   `json:"regex,omitempty"`
	Modulus      uint64   `json:"modulus,omitempty"`
	Replacement  *string  `json:"replacement,omitempty"`
	Action       string   `json:"action,omitempty"`
}

// checkServiceMonitor decodes an unstructured ServiceMonitor strictly into serviceMonitor
// and checks the fields the CRD requires.
func checkServiceMonitor(u map[string]any) error {
	sm, err := decodeServiceMonitor(u)
	if err != nil {
		return err
	}
	if len(sm.Spec.Endpoints) == 0 {
		return errors.New("spec.endpoints is empty")
	}
	for i, e := range sm.Spec.Endpoints {
		if e.Port == "" && e.TargetPort == nil {
			return fmt.Errorf("spec.endpoints[%d]: neither port nor targetPort", i)
		}
	}
	return nil
}

func decodeServiceMonitor(u map[string]any) (*serviceMonitor, error) {
	raw, err := json.Marshal(u)
	if err != nil {
		return nil, err
	}
	sm := &serviceMonitor{}
	if err := yaml.UnmarshalStrict(raw, sm); err != nil {
		return nil, fmt.Errorf("ServiceMonitor: %w", err)
	}
	return sm, nil
}
