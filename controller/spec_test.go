package controller

import (
	"context"
	"errors"
	"net/netip"
	"strings"
	"testing"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

func TestParseOptions(t *testing.T) {
	good := []struct {
		args []string
		want PortConfig
	}{
		{[]string{"peer=10.0.0.2"}, PortConfig{Bridge: "br-int", Peer: netip.MustParseAddr("10.0.0.2")}},
		{[]string{"peer=10.0.0.2", "key=5000", "local_ip=10.0.0.1", "dev=eth0", "name=tun1", "mtu=65000", "mode=ip", "tos=0x10", "ttl=9", "df=true"},
			PortConfig{Bridge: "br-int", Name: "tun1", Peer: netip.MustParseAddr("10.0.0.2"), Local: netip.MustParseAddr("10.0.0.1"),
				Device: "eth0", VNI: 5000, Mode: offload.ModeIP, MTU: 65000, TOS: 16, TTL: 9}},
		{[]string{"peer=10.0.0.2", "mode=udp", "dst_port=9999", "key=16777215"},
			PortConfig{Bridge: "br-int", Peer: netip.MustParseAddr("10.0.0.2"), Mode: offload.ModeUDP, DstPort: 9999, VNI: 1<<24 - 1}},
	}
	for _, tc := range good {
		got, err := ParseOptions("br-int", tc.args)
		if err != nil || got != tc.want {
			t.Errorf("ParseOptions(%q) = %+v, %v; want %+v", tc.args, got, err, tc.want)
		}
	}
	bad := map[string][]string{
		"missing peer":      {"key=1"},
		"bad ip":            {"peer=10.0.0.300"},
		"ipv6":              {"peer=fe80::1"},
		"multicast":         {"peer=224.0.0.1"},
		"unknown option":    {"peer=10.0.0.2", "remote=1"},
		"no equals":         {"peer=10.0.0.2", "bogus"},
		"repeated":          {"peer=10.0.0.2", "peer=10.0.0.3"},
		"vni too big":       {"peer=10.0.0.2", "key=16777216"},
		"mtu too big":       {"peer=10.0.0.2", "mtu=65001"},
		"mtu too small":     {"peer=10.0.0.2", "mtu=67"},
		"bad mode":          {"peer=10.0.0.2", "mode=gre"},
		"name too long":     {"peer=10.0.0.2", "name=abcdefghijklmno"},
		"name with slash":   {"peer=10.0.0.2", "name=a/b"},
		"ttl zero":          {"peer=10.0.0.2", "ttl=0"},
		"tos big":           {"peer=10.0.0.2", "tos=256"},
		"df false":          {"peer=10.0.0.2", "df=false"},
		"dst_port ip mode":  {"peer=10.0.0.2", "mode=ip", "dst_port=1"},
		"dst_port zero":     {"peer=10.0.0.2", "dst_port=0"},
		"local equals peer": {"peer=10.0.0.2", "local_ip=10.0.0.2"},
	}
	for name, args := range bad {
		_, err := ParseOptions("br-int", args)
		if !errors.Is(err, ErrBadOption) {
			t.Errorf("%s: ParseOptions(%q) err = %v, want ErrBadOption", name, args, err)
		}
	}
	if _, err := ParseOptions("", []string{"peer=10.0.0.2"}); !errors.Is(err, ErrBadOption) {
		t.Errorf("empty bridge: err = %v", err)
	}
	_, err := ParseOptions("br-int", []string{"peer=10.0.0.2", "colour=blue"})
	if !strings.Contains(err.Error(), "unknown option") || !strings.Contains(err.Error(), "peer, key") {
		t.Errorf("unknown-option error does not name the valid keys: %v", err)
	}
}

func TestExternalIDsRoundTrip(t *testing.T) {
	c, err := ParseOptions("br0", []string{"peer=192.168.1.9", "key=7", "local_ip=192.168.1.1", "dev=ens3", "name=t0", "mtu=9000", "mode=udp", "dst_port=4800", "tos=4", "ttl=32"})
	if err != nil {
		t.Fatal(err)
	}
	ids := c.ExternalIDs()
	if !Owned(ids) || ids[KeyPeer] != "192.168.1.9" || ids[KeyMTU] != "9000" {
		t.Fatalf("ExternalIDs = %v", ids)
	}
	got, err := ConfigFromExternalIDs("br0", "t0", ids)
	if err != nil || got != c {
		t.Fatalf("round trip = %+v, %v; want %+v", got, err, c)
	}
	delete(ids, KeyOwner)
	if _, err := ConfigFromExternalIDs("br0", "t0", ids); err == nil {
		t.Fatal("config without the ownership mark accepted")
	}
	ids[KeyOwner], ids[KeyMTU] = OwnerValue, "abc"
	if _, err := ConfigFromExternalIDs("br0", "t0", ids); !errors.Is(err, ErrBadOption) {
		t.Fatalf("hand-edited bad mtu: err = %v", err)
	}
}

func TestDefaultName(t *testing.T) {
	n := DefaultName(netip.MustParseAddr("10.0.0.2"))
	if n != "sclp0a000002" || len(PeerNameOf(n)) > 15 {
		t.Fatalf("DefaultName = %q", n)
	}
}

type staticRouter struct{}

func (staticRouter) RouteTo(_ context.Context, peer netip.Addr) (Route, error) {
	if peer == netip.MustParseAddr("10.9.9.9") {
		return Route{}, errors.New("network is unreachable")
	}
	return Route{Local: netip.MustParseAddr("10.0.0.1"), Device: "eth0", MTU: 1500}, nil
}

func (staticRouter) DeviceMTU(_ context.Context, dev string) (int, error) {
	if dev == "jumbo0" {
		return 9000, nil
	}
	if dev == "eth0" {
		return 1500, nil
	}
	return 0, errors.New("link not found")
}

func TestResolve(t *testing.T) {
	ctx := context.Background()
	for _, tc := range []struct {
		args    []string
		mtu     int
		mode    offload.Mode
		port    uint16
		dev     string
		wantErr bool
	}{
		{args: []string{"peer=10.0.0.2"}, mtu: 1438, mode: offload.ModeUDP, port: offload.DefaultUDPPort, dev: "eth0"},
		{args: []string{"peer=10.0.0.2", "mode=ip"}, mtu: 1446, mode: offload.ModeIP, dev: "eth0"},
		{args: []string{"peer=10.0.0.2", "dev=jumbo0"}, mtu: 8938, mode: offload.ModeUDP, port: offload.DefaultUDPPort, dev: "jumbo0"},
		{args: []string{"peer=10.0.0.2", "mtu=65000"}, mtu: 65000, mode: offload.ModeUDP, port: offload.DefaultUDPPort, dev: "eth0"},
		{args: []string{"peer=10.9.9.9"}, wantErr: true},
		{args: []string{"peer=10.9.9.9", "local_ip=10.0.0.1", "dev=eth0"}, mtu: 1438, mode: offload.ModeUDP, port: offload.DefaultUDPPort, dev: "eth0"},
		{args: []string{"peer=10.0.0.2", "dev=nosuch0"}, wantErr: true},
	} {
		c, err := ParseOptions("br-int", tc.args)
		if err != nil {
			t.Fatal(err)
		}
		r, err := Resolve(ctx, staticRouter{}, c)
		if tc.wantErr {
			if err == nil {
				t.Errorf("Resolve(%q) succeeded: %+v", tc.args, r)
			}
			continue
		}
		if err != nil || r.MTU != tc.mtu || r.Mode != tc.mode || r.DstPort != tc.port || r.Device != tc.dev || r.TTL != 64 || !r.Local.IsValid() {
			t.Errorf("Resolve(%q) = %+v, %v", tc.args, r, err)
		}
		if err := r.PortSpec().Validate(); err != nil {
			t.Errorf("resolved spec invalid: %v", err)
		}
	}
}

func TestBackoff(t *testing.T) {
	b := Backoff{Min: 100, Max: 1000}
	want := []int{100, 100, 200, 400, 800, 1000, 1000}
	for n, w := range want {
		if d := b.Delay(n); int(d) != w {
			t.Errorf("Delay(%d) = %d, want %d", n, d, w)
		}
	}
}
