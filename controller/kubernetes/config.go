package kubernetes

import (
	"errors"
	"fmt"
	"net/netip"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// ErrBadConfig is returned (wrapped) for a Config that fails validation.
var ErrBadConfig = errors.New("invalid kubernetes discovery config")

// DefaultBridge is the bridge the mesh ports go on when none is configured.
const DefaultBridge = "br-int"

// DefaultResync is how often discovery re-lists the store even without Node events.
const DefaultResync = 5 * time.Minute

// Config configures node discovery.
type Config struct {
	// Kubeconfig is a kubeconfig file; empty means the in-cluster service account.
	Kubeconfig string
	// NodeName is this node's name (the DaemonSet passes spec.nodeName as NODE_NAME).
	NodeName string
	// Selector is a label selector for the nodes that form the mesh; empty selects all.
	Selector string
	// AddressType is the node address used as tunnel endpoint (InternalIP by default).
	AddressType corev1.NodeAddressType
	// Bridge is the OVS bridge that carries the mesh ports.
	Bridge string
	// Port holds the settings of every mesh port. A valid Port.Local overrides this node's
	// address as the local end.
	Port PeerOptions
	// Resync is the period of the full reconcile without events (DefaultResync if zero).
	Resync time.Duration
}

// Validate checks c and fills defaults. It returns an error wrapping ErrBadConfig.
func (c *Config) Validate() error {
	if c.NodeName == "" {
		return fmt.Errorf("%w: node name missing: set --node-name or NODE_NAME (the DaemonSet passes spec.nodeName)", ErrBadConfig)
	}
	if _, err := labels.Parse(c.Selector); err != nil {
		return fmt.Errorf("%w: label selector %q: %v", ErrBadConfig, c.Selector, err)
	}
	if c.AddressType == "" {
		c.AddressType = corev1.NodeInternalIP
	}
	if c.AddressType != corev1.NodeInternalIP && c.AddressType != corev1.NodeExternalIP {
		return fmt.Errorf("%w: address type %q (want InternalIP or ExternalIP)", ErrBadConfig, c.AddressType)
	}
	if c.Bridge == "" {
		c.Bridge = DefaultBridge
	}
	if c.Port.Mode == "" {
		c.Port.Mode = offload.ModeUDP
	}
	switch {
	case !c.Port.Mode.Valid():
		return fmt.Errorf("%w: mode %q (want udp or ip)", ErrBadConfig, c.Port.Mode)
	case c.Port.VNI >= 1<<24:
		return fmt.Errorf("%w: VNI %d does not fit 24 bits", ErrBadConfig, c.Port.VNI)
	case c.Port.MTU != 0 && (c.Port.MTU < 68 || c.Port.MTU > 65000):
		return fmt.Errorf("%w: mtu %d outside 68-65000", ErrBadConfig, c.Port.MTU)
	case c.Port.Local.IsValid() && !c.Port.Local.Is4():
		return fmt.Errorf("%w: local address %v is not IPv4", ErrBadConfig, c.Port.Local)
	}
	if c.Resync <= 0 {
		c.Resync = DefaultResync
	}
	return nil
}

// selector returns the parsed label selector (Validate has checked it).
func (c *Config) selector() labels.Selector {
	s, err := labels.Parse(c.Selector)
	if err != nil {
		return labels.Nothing()
	}
	return s
}

// portOptions returns the options of the port towards the node named node.
func (c *Config) portOptions(local netip.Addr, node string) PeerOptions {
	o := c.Port
	if !o.Local.IsValid() {
		o.Local = local
	}
	o.ManagedBy = ManagedBy
	o.Node = node
	return o
}
