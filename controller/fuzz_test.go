package controller

import (
	"errors"
	"strings"
	"testing"
)

// FuzzParseOptions: any argument list either fails with ErrBadOption or yields a config whose
// external_ids decode back to the same config (what add-port stores is what the agent reads).
func FuzzParseOptions(f *testing.F) {
	for _, seed := range []string{
		"peer=10.0.0.2",
		"peer=10.0.0.2 key=5000 mode=ip mtu=65000 tos=0x10 ttl=9 name=t0",
		"peer=192.168.1.9 mode=udp dst_port=4800 local_ip=192.168.1.1 dev=ens3 df=true",
		"peer=1.2.3.4 key=16777216",
		"peer=10.0.0.2 peer=10.0.0.3",
		"name=a/b peer=::1",
		"=",
		"peer=10.0.0.2 mtu=0x20",
	} {
		f.Add("br-int", seed)
	}
	f.Fuzz(func(t *testing.T, bridge, args string) {
		c, err := ParseOptions(bridge, strings.Fields(args))
		if err != nil {
			if !errors.Is(err, ErrBadOption) {
				t.Fatalf("error %v does not wrap ErrBadOption", err)
			}
			return
		}
		name := c.Name
		if name == "" {
			name = DefaultName(c.Peer)
		}
		back, err := ConfigFromExternalIDs(bridge, name, c.ExternalIDs())
		if err != nil {
			t.Fatalf("external_ids of a valid config do not decode: %v", err)
		}
		c.Name = name
		if back != c {
			t.Fatalf("round trip: %+v != %+v", back, c)
		}
	})
}

// FuzzConfigFromExternalIDs: hand-edited external_ids never panic the agent, and whatever
// decodes re-encodes to an equivalent map.
func FuzzConfigFromExternalIDs(f *testing.F) {
	f.Add("10.0.0.2", "7", "udp", "1438", "4795", "64")
	f.Add("10.0.0.300", "x", "gre", "-1", "0", "0")
	f.Add("", "", "", "", "", "")
	f.Fuzz(func(t *testing.T, peer, key, mode, mtu, port, ttl string) {
		ids := map[string]string{KeyOwner: OwnerValue, KeyPeer: peer, KeyVNI: key, KeyMode: mode, KeyMTU: mtu, KeyDstPort: port, KeyTTL: ttl}
		c, err := ConfigFromExternalIDs("br-int", "sclp0", ids)
		if err != nil {
			return
		}
		if again, err := ConfigFromExternalIDs("br-int", "sclp0", c.ExternalIDs()); err != nil || again != c {
			t.Fatalf("re-encode: %+v, %v; want %+v", again, err, c)
		}
	})
}
