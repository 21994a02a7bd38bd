package kubernetes

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"regexp"
	"strconv"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/controller/controllertest"
	"github.com/sclp-ovs/sclp-ovs/offload"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// parse runs a throwaway app with Flags and returns the Config ConfigFromCLI builds.
func parse(t *testing.T, args ...string) (Config, error) {
	t.Helper()
	var (
		cfg Config
		err error
	)
	app := &ucli.App{Name: "t", Flags: Flags(), Writer: io.Discard, ErrWriter: io.Discard,
		Action: func(c *ucli.Context) error { cfg, err = ConfigFromCLI(c); return nil }}
	if runErr := app.Run(append([]string{"t"}, args...)); runErr != nil {
		t.Fatalf("app.Run: %v", runErr)
	}
	return cfg, err
}

func TestConfigFromCLI(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	cfg, err := parse(t, "--kubernetes", "--node-name", "n1", "--node-selector", "a=b,c in (d)",
		"--mesh-bridge", "br-x", "--mesh-vni", "4242", "--mesh-mode", "ip", "--mesh-mtu", "9000",
		"--mesh-local-ip", "10.1.2.3", "--mesh-resync", "1m")
	if err != nil {
		t.Fatal(err)
	}
	want := Config{NodeName: "n1", Selector: "a=b,c in (d)", AddressType: "InternalIP", Bridge: "br-x",
		Resync: time.Minute, Port: PeerOptions{VNI: 4242, Mode: "ip", MTU: 9000, Local: netip.MustParseAddr("10.1.2.3")}}
	if cfg != want {
		t.Errorf("config\n got %+v\nwant %+v", cfg, want)
	}

	t.Setenv("NODE_NAME", "from-env")
	t.Setenv("SCLP_OVS_VNI", "7")
	cfg, err = parse(t)
	if err != nil || cfg.NodeName != "from-env" || cfg.Port.VNI != 7 || cfg.Bridge != DefaultBridge || cfg.Port.Mode != "udp" {
		t.Errorf("environment: %+v, %v", cfg, err)
	}
}

func TestConfigFromCLIErrors(t *testing.T) {
	t.Setenv("NODE_NAME", "")
	for _, args := range [][]string{
		{}, // no node name
		{"--node-name", "n", "--mesh-vni", "16777216"},
		{"--node-name", "n", "--mesh-mode", "gre"},
		{"--node-name", "n", "--mesh-mtu", "65001"},
		{"--node-name", "n", "--mesh-local-ip", "fd00::1"},
		{"--node-name", "n", "--mesh-local-ip", "nope"},
		{"--node-name", "n", "--node-selector", "a in (b"},
		{"--node-name", "n", "--node-address-type", "Hostname"},
		{"--node-name", "n", "--mesh-dst-port", "70000"},
	} {
		if _, err := parse(t, args...); !errors.Is(err, ErrBadConfig) {
			t.Errorf("%q: error %v, want ErrBadConfig", args, err)
		}
	}
}

// TestMeshMTUHelpIsTrue: the default MTU that --mesh-mtu's help promises for each mode is the
// one controller.Resolve gives a port on a 1500-byte underlay, and it is the wire overhead of
// the mode (outer IPv4 + SCLP [+ UDP] + VXLAN + inner Ethernet).
func TestMeshMTUHelpIsTrue(t *testing.T) {
	var usage string
	for _, f := range Flags() {
		if ff, ok := f.(*ucli.IntFlag); ok && ff.Name == FlagMTU {
			usage = ff.Usage
		}
	}
	peer := netip.MustParseAddr("10.0.0.2")
	r := &controllertest.Router{Routes: map[netip.Addr]controller.Route{
		peer: {Local: netip.MustParseAddr("10.0.0.1"), Device: "ul0", MTU: 1500}}}
	for _, c := range []struct {
		mode offload.Mode
		wire int
	}{
		{offload.ModeUDP, sclp.UDPOverhead + sclp.VXLANHeaderLen + sclp.EthernetHeaderLen},
		{offload.ModeIP, sclp.IPv4Overhead + sclp.VXLANHeaderLen + sclp.EthernetHeaderLen},
	} {
		m := regexp.MustCompile(`underlay MTU - (\d+) in mode ` + string(c.mode) + `\b`).FindStringSubmatch(usage)
		if m == nil {
			t.Errorf("--%s help %q says nothing about mode %s", FlagMTU, usage, c.mode)
			continue
		}
		said, _ := strconv.Atoi(m[1])
		pc, err := controller.Resolve(context.Background(), r, controller.PortConfig{Peer: peer, VNI: 1, Mode: c.mode})
		if err != nil {
			t.Fatal(err)
		}
		if got := 1500 - pc.MTU; got != said || said != c.wire {
			t.Errorf("mode %s: help says MTU - %d, Resolve gives MTU - %d, wire overhead %d", c.mode, said, got, c.wire)
		}
	}
}
