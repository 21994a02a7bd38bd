package ovs

import (
	"context"
	"errors"
	"fmt"
	"sort"

	"github.com/ovn-org/libovsdb/client"
)

// Root returns the Open_vSwitch root row from the cache.
func (c *Client) Root(ctx context.Context) (*OpenvSwitch, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	var rows []OpenvSwitch
	if err := c.db.List(ctx, &rows); err != nil {
		return nil, fmt.Errorf("list Open_vSwitch: %w", err)
	}
	if len(rows) == 0 {
		return nil, fmt.Errorf("open_vSwitch table is empty (run ovs-vsctl init): %w", ErrNotConnected)
	}
	return &rows[0], nil
}

// Bridge returns the named bridge from the cache, or an error wrapping ErrNoBridge.
func (c *Client) Bridge(ctx context.Context, name string) (*Bridge, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	b := &Bridge{Name: name}
	if err := c.db.Get(ctx, b); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("bridge %q: %w", name, ErrNoBridge)
		}
		return nil, fmt.Errorf("get bridge %q: %w", name, err)
	}
	return b, nil
}

// BridgeExists reports whether the named bridge is in the cache.
func (c *Client) BridgeExists(ctx context.Context, name string) (bool, error) {
	_, err := c.Bridge(ctx, name)
	if errors.Is(err, ErrNoBridge) {
		return false, nil
	}
	return err == nil, err
}

// Bridges returns every bridge, sorted by name.
func (c *Client) Bridges(ctx context.Context) ([]Bridge, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	var bs []Bridge
	if err := c.db.List(ctx, &bs); err != nil {
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	sort.Slice(bs, func(i, j int) bool { return bs[i].Name < bs[j].Name })
	return bs, nil
}

// Port returns the named port from the cache, or an error wrapping ErrNoPort.
func (c *Client) Port(ctx context.Context, name string) (*Port, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	p := &Port{Name: name}
	if err := c.db.Get(ctx, p); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("port %q: %w", name, ErrNoPort)
		}
		return nil, fmt.Errorf("get port %q: %w", name, err)
	}
	return p, nil
}

// Interface returns the named interface from the cache, or an error wrapping ErrNoInterface.
func (c *Client) Interface(ctx context.Context, name string) (*Interface, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	i := &Interface{Name: name}
	if err := c.db.Get(ctx, i); err != nil {
		if errors.Is(err, client.ErrNotFound) {
			return nil, fmt.Errorf("interface %q: %w", name, ErrNoInterface)
		}
		return nil, fmt.Errorf("get interface %q: %w", name, err)
	}
	return i, nil
}

// PortBridge returns the name of the bridge that holds the named port, or an error wrapping
// ErrNoPort when no bridge does.
func (c *Client) PortBridge(ctx context.Context, port string) (string, error) {
	p, err := c.Port(ctx, port)
	if err != nil {
		return "", err
	}
	bs, err := c.Bridges(ctx)
	if err != nil {
		return "", err
	}
	for _, b := range bs {
		for _, u := range b.Ports {
			if u == p.UUID {
				return b.Name, nil
			}
		}
	}
	return "", fmt.Errorf("port %q is on no bridge: %w", port, ErrNoPort)
}

// InterfaceFilter selects interfaces for Interfaces. Empty fields match everything.
type InterfaceFilter struct {
	// Bridge keeps only interfaces of ports on this bridge.
	Bridge string
	// Key keeps only interfaces whose external_ids have this key (e.g. an ownership mark);
	// Value, if set, must match too.
	Key, Value string
}

// InterfaceInfo is an interface with the port and bridge it belongs to.
type InterfaceInfo struct {
	Bridge, Port string
	Interface
}

// Interfaces lists the interfaces that are attached to a bridge through a port and match f,
// sorted by bridge and interface name.
func (c *Client) Interfaces(ctx context.Context, f InterfaceFilter) ([]InterfaceInfo, error) {
	if err := c.ready(); err != nil {
		return nil, err
	}
	var (
		bridges []Bridge
		ports   []Port
		ifaces  []Interface
	)
	if err := c.db.List(ctx, &bridges); err != nil {
		return nil, fmt.Errorf("list bridges: %w", err)
	}
	if err := c.db.List(ctx, &ports); err != nil {
		return nil, fmt.Errorf("list ports: %w", err)
	}
	if err := c.db.List(ctx, &ifaces); err != nil {
		return nil, fmt.Errorf("list interfaces: %w", err)
	}
	portByUUID := make(map[string]*Port, len(ports))
	for i := range ports {
		portByUUID[ports[i].UUID] = &ports[i]
	}
	ifByUUID := make(map[string]*Interface, len(ifaces))
	for i := range ifaces {
		ifByUUID[ifaces[i].UUID] = &ifaces[i]
	}
	var out []InterfaceInfo
	for _, b := range bridges {
		if f.Bridge != "" && b.Name != f.Bridge {
			continue
		}
		for _, pu := range b.Ports {
			p := portByUUID[pu]
			if p == nil {
				continue
			}
			for _, iu := range p.Interfaces {
				if i := ifByUUID[iu]; i != nil && f.match(i) {
					out = append(out, InterfaceInfo{Bridge: b.Name, Port: p.Name, Interface: *i})
				}
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Bridge != out[j].Bridge {
			return out[i].Bridge < out[j].Bridge
		}
		return out[i].Name < out[j].Name
	})
	return out, nil
}

func (f InterfaceFilter) match(i *Interface) bool {
	if f.Key == "" {
		return true
	}
	v, ok := i.ExternalIDs[f.Key]
	return ok && (f.Value == "" || v == f.Value)
}
