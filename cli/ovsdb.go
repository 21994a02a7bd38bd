package cli

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/ovs"
)

// ovsDB adapts *ovs.Client to DB (and so to controller.Store).
type ovsDB struct {
	c       *ovs.Client
	changes <-chan struct{}
	cancel  func()
}

func openRealDB(ctx context.Context, endpoint string) (DB, error) {
	c, err := ovs.Dial(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	ch, cancel := c.Subscribe()
	return &ovsDB{c: c, changes: ch, cancel: cancel}, nil
}

func (d *ovsDB) Close() { d.cancel(); d.c.Close() }

func (d *ovsDB) Changes() <-chan struct{} { return d.changes }

// Bridges reads bridges, ports and interfaces from the cache. It fails while the connection
// is down, so that the reconciler never acts on a cache being refilled.
func (d *ovsDB) Bridges(ctx context.Context) ([]controller.Bridge, error) {
	if !d.c.Connected() {
		return nil, ovs.ErrNotConnected
	}
	brs, err := d.c.Bridges(ctx)
	if err != nil {
		return nil, err
	}
	ifaces, err := d.c.Interfaces(ctx, ovs.InterfaceFilter{})
	if err != nil {
		return nil, err
	}
	out := make([]controller.Bridge, 0, len(brs))
	idx := map[string]int{}
	for _, b := range brs {
		idx[b.Name] = len(out)
		out = append(out, controller.Bridge{Name: b.Name})
	}
	for _, i := range ifaces {
		k, ok := idx[i.Bridge]
		if !ok {
			continue
		}
		p := controller.BridgePort{Name: i.Port, ExternalIDs: i.ExternalIDs}
		if p.ExternalIDs == nil {
			p.ExternalIDs = map[string]string{}
		}
		if i.OFPort != nil {
			p.OFPort = *i.OFPort
		}
		if i.Error != nil {
			p.Error = *i.Error
		}
		if controller.Owned(p.ExternalIDs) {
			if port, err := d.c.Port(ctx, i.Port); err == nil {
				p.Protected = port.Protected
			}
		}
		out[k].Ports = append(out[k].Ports, p)
	}
	if !d.c.Connected() {
		return nil, ovs.ErrNotConnected
	}
	return out, nil
}

func (d *ovsDB) SetStatus(ctx context.Context, iface, status string) error {
	if status == "" {
		return d.c.SetInterfaceExternalIDs(ctx, iface, nil, controller.KeyStatus)
	}
	return d.c.SetInterfaceExternalIDs(ctx, iface, map[string]string{controller.KeyStatus: status})
}

func (d *ovsDB) SetProtected(ctx context.Context, port string, on bool) error {
	return d.c.SetPortProtected(ctx, port, on)
}

// SetHeartbeat replaces (or removes) the heartbeat key in Open_vSwitch external_ids.
func (d *ovsDB) SetHeartbeat(ctx context.Context, value string) error {
	if value == "" {
		return d.c.SetRootExternalIDs(ctx, nil, controller.KeyHeartbeat)
	}
	return d.c.SetRootExternalIDs(ctx, map[string]string{controller.KeyHeartbeat: value})
}

func (d *ovsDB) Heartbeat(ctx context.Context) (string, error) {
	root, err := d.c.Root(ctx)
	if err != nil {
		return "", err
	}
	return root.ExternalIDs[controller.KeyHeartbeat], nil
}

// OtherConfig returns Open_vSwitch other_config.
func (d *ovsDB) OtherConfig(ctx context.Context) (map[string]string, error) {
	root, err := d.c.Root(ctx)
	if err != nil {
		return nil, err
	}
	return root.OtherConfig, nil
}

// AddPort inserts the Interface (type system: a veth end) and the protected Port and attaches
// the port to the bridge, in one transaction.
func (d *ovsDB) AddPort(ctx context.Context, bridge, name string, ids map[string]string) error {
	return d.c.AddPort(ctx, ovs.PortOptions{Bridge: bridge, Name: name, ExternalIDs: ids, Protected: true})
}

func (d *ovsDB) DeletePort(ctx context.Context, bridge, name string) error {
	return d.c.DeletePort(ctx, bridge, name)
}

// ofFlows implements controller.Flows with the ovs package's OpenFlow client
// (go-openvswitch over ovs-ofctl; one --bundle per replacement).
type ofFlows struct{ of *ovs.OpenFlow }

func newOFFlows(runDir string) (*ofFlows, error) {
	of, err := ovs.NewOpenFlow(ovs.OpenFlowOptions{RunDir: runDir, Cookie: controller.CookieBase, CookieMask: controller.CookieMask})
	if err != nil {
		return nil, err
	}
	return &ofFlows{of: of}, nil
}

func (f *ofFlows) check(cookie, mask uint64) error {
	if c, m := f.of.Cookie(); c != cookie || m != mask {
		return fmt.Errorf("openflow client owns cookie %#x/%#x, asked for %#x/%#x", c, m, cookie, mask)
	}
	return nil
}

func (f *ofFlows) Cookies(ctx context.Context, bridge string, cookie, mask uint64) ([]uint64, error) {
	if err := f.check(cookie, mask); err != nil {
		return nil, err
	}
	out, err := f.of.DumpFlowsRaw(bridge)
	if err != nil {
		return nil, err
	}
	return parseCookies(out)
}

func (f *ofFlows) Replace(ctx context.Context, bridge string, cookie, mask uint64, flows []controller.Flow) error {
	if err := f.check(cookie, mask); err != nil {
		return err
	}
	raw := make([]ovs.RawFlow, len(flows))
	for i, fl := range flows {
		text := "table=" + strconv.Itoa(fl.Table) + ",priority=" + strconv.Itoa(fl.Priority)
		if fl.Match != "" {
			text += "," + fl.Match
		}
		raw[i] = ovs.RawFlow{Cookie: fl.Cookie &^ mask, Text: text + ",actions=" + fl.Actions}
	}
	return f.of.ReplaceRawFlows(bridge, raw...)
}

// parseCookies extracts the cookie of every flow line of an ovs-ofctl dump.
func parseCookies(out string) ([]uint64, error) {
	var cookies []uint64
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		v, ok := strings.CutPrefix(line, "cookie=")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, ",")
		c, err := strconv.ParseUint(strings.TrimSpace(v), 0, 64)
		if err != nil {
			return nil, fmt.Errorf("parse flow dump line %q: %w", line, err)
		}
		cookies = append(cookies, c)
	}
	return cookies, nil
}
