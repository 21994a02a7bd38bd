package kubernetes

import (
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	ucli "github.com/urfave/cli/v2"
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
