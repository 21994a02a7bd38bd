package kubernetes

import (
	"fmt"
	"net/netip"

	ucli "github.com/urfave/cli/v2"
	corev1 "k8s.io/api/core/v1"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/offload"
)

// Flag names of `sclp-ovs agent` that this package defines. The manifests in
// deploy/kubernetes use exactly these (a test checks them against the real command).
const (
	FlagKubernetes  = "kubernetes"
	FlagKubeconfig  = "kubeconfig"
	FlagNodeName    = "node-name"
	FlagSelector    = "node-selector"
	FlagAddressType = "node-address-type"
	FlagBridge      = "mesh-bridge"
	FlagVNI         = "mesh-vni"
	FlagMode        = "mesh-mode"
	FlagDstPort     = "mesh-dst-port"
	FlagMTU         = "mesh-mtu"
	FlagDevice      = "mesh-device"
	FlagLocalIP     = "mesh-local-ip"
	FlagResync      = "mesh-resync"
)

const category = "Kubernetes node discovery"

// mtuUsage is the help of --mesh-mtu: the default depends on the mode (controller.Resolve).
var mtuUsage = fmt.Sprintf("MTU of the mesh ports (0: underlay MTU - %d in mode udp, underlay MTU - %d in mode ip)",
	controller.OverheadUDP, controller.OverheadIP)

// Flags returns the flags that `sclp-ovs agent` adds for node discovery. Each one can also
// be set by the environment variable named in its help.
func Flags() []ucli.Flag {
	return []ucli.Flag{
		&ucli.BoolFlag{Name: FlagKubernetes, Category: category, EnvVars: []string{"SCLP_OVS_KUBERNETES"},
			Usage: "watch Kubernetes Nodes and keep one tunnel port per other node"},
		&ucli.StringFlag{Name: FlagKubeconfig, Category: category, EnvVars: []string{"KUBECONFIG"},
			Usage: "kubeconfig file (default: the in-cluster service account)"},
		&ucli.StringFlag{Name: FlagNodeName, Category: category, EnvVars: []string{"NODE_NAME"},
			Usage: "this node's name (the DaemonSet passes spec.nodeName)"},
		&ucli.StringFlag{Name: FlagSelector, Category: category, EnvVars: []string{"SCLP_OVS_NODE_SELECTOR"},
			Usage: "label selector of the nodes in the mesh (default: all nodes)"},
		&ucli.StringFlag{Name: FlagAddressType, Category: category, Value: string(corev1.NodeInternalIP),
			EnvVars: []string{"SCLP_OVS_NODE_ADDRESS_TYPE"}, Usage: "node address used as tunnel endpoint: InternalIP or ExternalIP"},
		&ucli.StringFlag{Name: FlagBridge, Category: category, Value: DefaultBridge, EnvVars: []string{"SCLP_OVS_BRIDGE"},
			Usage: "OVS bridge of the mesh ports"},
		&ucli.UintFlag{Name: FlagVNI, Category: category, EnvVars: []string{"SCLP_OVS_VNI"},
			Usage: "VXLAN network identifier of the mesh ports (add-port key=)"},
		&ucli.StringFlag{Name: FlagMode, Category: category, Value: string(offload.ModeUDP), EnvVars: []string{"SCLP_OVS_MODE"},
			Usage: "encapsulation of the mesh ports: udp or ip"},
		&ucli.UintFlag{Name: FlagDstPort, Category: category, EnvVars: []string{"SCLP_OVS_DST_PORT"},
			Usage: "UDP destination port in mode udp (0: the default)"},
		&ucli.IntFlag{Name: FlagMTU, Category: category, EnvVars: []string{"SCLP_OVS_MTU"},
			Usage: mtuUsage},
		&ucli.StringFlag{Name: FlagDevice, Category: category, EnvVars: []string{"SCLP_OVS_DEVICE"},
			Usage: "underlay device (default: chosen by route to the peer)"},
		&ucli.StringFlag{Name: FlagLocalIP, Category: category, EnvVars: []string{"SCLP_OVS_LOCAL_IP"},
			Usage: "local underlay address (default: this node's address)"},
		&ucli.DurationFlag{Name: FlagResync, Category: category, Value: DefaultResync, EnvVars: []string{"SCLP_OVS_RESYNC"},
			Usage: "period of the full reconcile without events"},
	}
}

// Enabled reports whether --kubernetes is set.
func Enabled(c *ucli.Context) bool { return c.Bool(FlagKubernetes) }

// ConfigFromCLI reads the flags of Flags into a validated Config.
func ConfigFromCLI(c *ucli.Context) (Config, error) {
	cfg := Config{
		Kubeconfig:  c.String(FlagKubeconfig),
		NodeName:    c.String(FlagNodeName),
		Selector:    c.String(FlagSelector),
		AddressType: corev1.NodeAddressType(c.String(FlagAddressType)),
		Bridge:      c.String(FlagBridge),
		Resync:      c.Duration(FlagResync),
		Port: PeerOptions{
			Mode:   offload.Mode(c.String(FlagMode)),
			MTU:    c.Int(FlagMTU),
			Device: c.String(FlagDevice),
		},
	}
	vni, port := c.Uint(FlagVNI), c.Uint(FlagDstPort)
	if vni >= 1<<24 {
		return Config{}, fmt.Errorf("%w: --%s %d does not fit 24 bits", ErrBadConfig, FlagVNI, vni)
	}
	if port > 65535 {
		return Config{}, fmt.Errorf("%w: --%s %d is not a port", ErrBadConfig, FlagDstPort, port)
	}
	cfg.Port.VNI, cfg.Port.DstPort = uint32(vni), uint16(port)
	if s := c.String(FlagLocalIP); s != "" {
		ip, err := netip.ParseAddr(s)
		if err != nil {
			return Config{}, fmt.Errorf("%w: --%s: %v", ErrBadConfig, FlagLocalIP, err)
		}
		cfg.Port.Local = ip
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}
