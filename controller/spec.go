package controller

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// External-ids keys of a tunnel port's Interface row.
const (
	KeyOwner   = "sclp-ovs:owner"
	KeyPeer    = "sclp-ovs:peer"
	KeyVNI     = "sclp-ovs:key"
	KeyLocalIP = "sclp-ovs:local_ip"
	KeyDev     = "sclp-ovs:dev"
	KeyMode    = "sclp-ovs:mode"
	KeyDstPort = "sclp-ovs:dst_port"
	KeyMTU     = "sclp-ovs:mtu"
	KeyTOS     = "sclp-ovs:tos"
	KeyTTL     = "sclp-ovs:ttl"
	KeyDF      = "sclp-ovs:df"
	// KeyStatus is written by the agent: StatusReady or "error: ...".
	KeyStatus = "sclp-ovs:status"
	// KeyHeartbeat lives in Open_vSwitch external_ids: the agent's last sign of life.
	KeyHeartbeat = "sclp-ovs:agent-heartbeat"
	// OwnerValue is the value of KeyOwner on every port sclp-ovs owns.
	OwnerValue = "sclp-ovs"
	// StatusReady is the status of a port that the agent has fully converged.
	StatusReady = "ready"
)

// Overheads subtracted from the underlay MTU for the default tunnel MTU: outer IPv4 20 +
// SCLP 12 + VXLAN 8 + inner Ethernet 14 (ip), plus UDP 8 (udp).
const (
	OverheadIP  = 54
	OverheadUDP = 62
	// MaxMTU is the largest tunnel MTU: SCLP carries inner frames of up to 64 KB over any
	// underlay without IP fragmentation.
	MaxMTU = 65000
	// MinMTU is the smallest tunnel MTU (the IPv4 minimum).
	MinMTU = 68
	// DefaultTTL is the outer TTL when none is configured.
	DefaultTTL = 64
	// MaxNameLen is the longest port name: the datapath-side veth appends "p" and Linux
	// allows 15 characters.
	MaxNameLen = 14
)

// ErrBadOption is wrapped by every OptionError.
var ErrBadOption = errors.New("invalid option")

// OptionError names the option that failed validation and why.
type OptionError struct {
	Key, Value, Reason string
}

// Error returns "key=value: reason", or the quoted argument and the reason when it has no key.
func (e *OptionError) Error() string {
	if e.Key == "" {
		return fmt.Sprintf("%q: %s", e.Value, e.Reason)
	}
	return fmt.Sprintf("%s=%s: %s", e.Key, e.Value, e.Reason)
}

// Unwrap makes errors.Is(err, ErrBadOption) true.
func (e *OptionError) Unwrap() error { return ErrBadOption }

// PortConfig is one tunnel port as recorded in OVSDB. Zero values of the optional fields
// mean "default"; Resolve fills them in.
type PortConfig struct {
	Bridge  string
	Name    string // OVS port and OVS-side veth
	Peer    netip.Addr
	Local   netip.Addr
	Device  string
	VNI     uint32
	Mode    offload.Mode
	DstPort uint16
	MTU     int
	TOS     uint8
	TTL     uint8
}

// PeerName is the datapath-side veth of the port.
func (c PortConfig) PeerName() string { return PeerNameOf(c.Name) }

// PeerNameOf returns the datapath-side veth name for a tunnel port name.
func PeerNameOf(name string) string { return name + "p" }

// DefaultName derives a port name from the peer address: "sclp" and 8 hex digits.
func DefaultName(peer netip.Addr) string {
	b := peer.As4()
	return fmt.Sprintf("sclp%02x%02x%02x%02x", b[0], b[1], b[2], b[3])
}

// options lists every key ParseOptions accepts, in the order the usage text gives them.
var options = []string{"peer", "key", "local_ip", "dev", "name", "mtu", "mode", "dst_port", "tos", "ttl", "df"}

// OptionNames returns the keys add-port accepts (for usage text and shell completion).
func OptionNames() []string { return append([]string(nil), options...) }

// ParseOptions turns ovs-vsctl-like key=value arguments into a PortConfig for bridge. It
// validates every value and rejects unknown and repeated keys; it fills no defaults.
func ParseOptions(bridge string, args []string) (PortConfig, error) {
	c := PortConfig{Bridge: bridge}
	if err := ValidateName("bridge", bridge, 15); err != nil {
		return c, err
	}
	seen := map[string]bool{}
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		if !ok {
			return c, &OptionError{Value: a, Reason: "want key=value (keys: " + strings.Join(options, ", ") + ")"}
		}
		if seen[k] {
			return c, &OptionError{Key: k, Value: v, Reason: "given twice"}
		}
		seen[k] = true
		if err := c.set(k, v); err != nil {
			return c, err
		}
	}
	if !c.Peer.IsValid() {
		return c, &OptionError{Key: "peer", Reason: "required: the remote host's underlay IPv4 address, e.g. peer=10.0.0.2"}
	}
	if c.Local.IsValid() && c.Local == c.Peer {
		return c, &OptionError{Key: "local_ip", Value: c.Local.String(), Reason: "equals peer"}
	}
	if c.Mode == offload.ModeIP && seen["dst_port"] {
		return c, &OptionError{Key: "dst_port", Value: strconv.Itoa(int(c.DstPort)), Reason: "only meaningful with mode=udp"}
	}
	return c, nil
}

func (c *PortConfig) set(k, v string) error {
	bad := func(reason string) error { return &OptionError{Key: k, Value: v, Reason: reason} }
	switch k {
	case "peer", "local_ip":
		a, err := parseIPv4(v)
		if err != nil {
			return bad(err.Error())
		}
		if k == "peer" {
			c.Peer = a
		} else {
			c.Local = a
		}
	case "key":
		n, err := strconv.ParseUint(v, 0, 32)
		if err != nil || n >= 1<<24 {
			return bad("want a VNI 0-16777215")
		}
		c.VNI = uint32(n)
	case "dev":
		if err := ValidateName(k, v, 15); err != nil {
			return err
		}
		c.Device = v
	case "name":
		if err := ValidateName(k, v, MaxNameLen); err != nil {
			return err
		}
		c.Name = v
	case "mtu":
		n, err := strconv.Atoi(v)
		if err != nil || n < MinMTU || n > MaxMTU {
			return bad(fmt.Sprintf("want %d-%d", MinMTU, MaxMTU))
		}
		c.MTU = n
	case "mode":
		m := offload.Mode(v)
		if !m.Valid() {
			return bad("want udp (SCLP in UDP) or ip (SCLP as IP protocol 234)")
		}
		c.Mode = m
	case "dst_port":
		n, err := strconv.ParseUint(v, 10, 16)
		if err != nil || n == 0 {
			return bad("want a UDP port 1-65535")
		}
		c.DstPort = uint16(n)
	case "tos", "ttl":
		n, err := strconv.ParseUint(v, 0, 8)
		if err != nil || (k == "ttl" && n == 0) {
			return bad(map[string]string{"tos": "want 0-255", "ttl": "want 1-255"}[k])
		}
		if k == "tos" {
			c.TOS = uint8(n)
		} else {
			c.TTL = uint8(n)
		}
	case "df":
		if v != "true" {
			return bad("SCLP always sets DF (it segments to the path MTU itself); only df=true is accepted")
		}
	default:
		return &OptionError{Key: k, Value: v, Reason: "unknown option (keys: " + strings.Join(options, ", ") + ")"}
	}
	return nil
}

func parseIPv4(v string) (netip.Addr, error) {
	a, err := netip.ParseAddr(v)
	switch {
	case err != nil || !a.Is4():
		return a, errors.New("not an IPv4 address")
	case a.IsUnspecified() || a.IsMulticast() || a.IsLoopback() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return a, errors.New("not a unicast address")
	}
	return a, nil
}

// ValidateName checks an interface or bridge name: 1..max characters, no '/', whitespace,
// '=' or ':'.
func ValidateName(key, v string, max int) error {
	if v == "" || len(v) > max {
		return &OptionError{Key: key, Value: v, Reason: fmt.Sprintf("want 1-%d characters", max)}
	}
	if strings.ContainsAny(v, "/ \t\n=:") || v == "." || v == ".." {
		return &OptionError{Key: key, Value: v, Reason: "not a valid interface name"}
	}
	return nil
}

// ExternalIDs encodes the configuration (every non-default field) with the ownership mark.
func (c PortConfig) ExternalIDs() map[string]string {
	m := map[string]string{KeyOwner: OwnerValue, KeyPeer: c.Peer.String(), KeyVNI: strconv.FormatUint(uint64(c.VNI), 10)}
	put := func(k, v string, ok bool) {
		if ok {
			m[k] = v
		}
	}
	put(KeyLocalIP, c.Local.String(), c.Local.IsValid())
	put(KeyDev, c.Device, c.Device != "")
	put(KeyMode, string(c.Mode), c.Mode != "")
	put(KeyDstPort, strconv.Itoa(int(c.DstPort)), c.DstPort != 0)
	put(KeyMTU, strconv.Itoa(c.MTU), c.MTU != 0)
	put(KeyTOS, strconv.Itoa(int(c.TOS)), c.TOS != 0)
	put(KeyTTL, strconv.Itoa(int(c.TTL)), c.TTL != 0)
	m[KeyDF] = "true"
	return m
}

// Owned reports whether external_ids carry the sclp-ovs ownership mark.
func Owned(ids map[string]string) bool { return ids[KeyOwner] == OwnerValue }

// ConfigFromExternalIDs decodes a port's configuration. It is the inverse of ExternalIDs and
// validates like ParseOptions, so a row edited by hand with bad values is reported, not used.
func ConfigFromExternalIDs(bridge, name string, ids map[string]string) (PortConfig, error) {
	if !Owned(ids) {
		return PortConfig{}, fmt.Errorf("port %s: no %s=%s mark", name, KeyOwner, OwnerValue)
	}
	var args []string
	for _, k := range options {
		if v, ok := ids["sclp-ovs:"+k]; ok {
			args = append(args, k+"="+v)
		}
	}
	args = append(args, "name="+name)
	c, err := ParseOptions(bridge, args)
	if err != nil {
		return c, fmt.Errorf("port %s: external_ids: %w", name, err)
	}
	return c, nil
}
