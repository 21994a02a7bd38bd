package ovs

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// PortOptions describes a port for AddPort: an OVS Port with one Interface of the same name.
type PortOptions struct {
	// Bridge and Name are required.
	Bridge, Name string
	// Type is the Interface type ("" is a system device such as a veth end; "internal", ...).
	Type string
	// ExternalIDs are set on the Interface (other keys already there are kept).
	ExternalIDs map[string]string
	// Options are the Interface's options column (set at creation only).
	Options map[string]string
	// MTURequest asks ovs-vswitchd to set the device MTU; 0 leaves mtu_request unset.
	MTURequest int
	// OFPortRequest asks for a fixed OpenFlow port number; 0 lets OVS choose.
	OFPortRequest int
	// Protected sets Port.protected: the NORMAL action never forwards between two protected
	// ports, which gives tunnel ports split horizon (no tunnel-to-tunnel loops in a full mesh)
	// without any OpenFlow rule. AddPort on an existing port sets it to this value.
	Protected bool
}

// Named UUIDs used inside AddPort's transaction.
const (
	newIfaceUUID = "new_iface"
	newPortUUID  = "new_port"
)

// AddPort makes sure port opts.Name exists on opts.Bridge with an Interface of the same name
// carrying opts.ExternalIDs and opts.MTURequest. A missing port is created with one transaction
// (insert Interface, insert Port, add it to the bridge's ports); an existing one on the same
// bridge gets its external_ids keys and mtu_request updated in one transaction, or none if
// they already match. Errors wrap ErrNoBridge, ErrPortExists (on another bridge, or another
// interface type), ErrInvalid or ErrTransaction.
func (c *Client) AddPort(ctx context.Context, opts PortOptions) error {
	if opts.Bridge == "" || opts.Name == "" {
		return fmt.Errorf("add port %q to bridge %q: %w: names must not be empty", opts.Name, opts.Bridge, ErrInvalid)
	}
	if _, err := c.Bridge(ctx, opts.Bridge); err != nil {
		return fmt.Errorf("add port %q: %w", opts.Name, err)
	}
	p, err := c.Port(ctx, opts.Name)
	switch {
	case errors.Is(err, ErrNoPort):
		return c.createPort(ctx, opts)
	case err != nil:
		return fmt.Errorf("add port %q: %w", opts.Name, err)
	}
	owner, err := c.PortBridge(ctx, opts.Name)
	if err != nil || owner != opts.Bridge {
		return fmt.Errorf("add port %q to bridge %q: it is on bridge %q: %w", opts.Name, opts.Bridge, owner, ErrPortExists)
	}
	iface, err := c.Interface(ctx, opts.Name)
	if err != nil || !slices.Contains(p.Interfaces, iface.UUID) {
		return fmt.Errorf("add port %q: port has no interface of that name: %w", opts.Name, ErrPortExists)
	}
	if iface.Type != opts.Type {
		return fmt.Errorf("add port %q: interface type is %q, not %q: %w", opts.Name, iface.Type, opts.Type, ErrPortExists)
	}
	return c.updatePort(ctx, p, iface, opts)
}

func (c *Client) createPort(ctx context.Context, opts PortOptions) error {
	if _, err := c.Interface(ctx, opts.Name); err == nil {
		return fmt.Errorf("add port %q: an interface of that name exists without the port: %w", opts.Name, ErrPortExists)
	}
	iface := &Interface{UUID: newIfaceUUID, Name: opts.Name, Type: opts.Type,
		ExternalIDs: opts.ExternalIDs, Options: opts.Options}
	if opts.MTURequest > 0 {
		iface.MTURequest = &opts.MTURequest
	}
	if opts.OFPortRequest > 0 {
		iface.OFPortRequest = &opts.OFPortRequest
	}
	port := &Port{UUID: newPortUUID, Name: opts.Name, Interfaces: []string{newIfaceUUID}, Protected: opts.Protected}
	ops, err := c.db.Create(iface, port)
	if err != nil {
		return fmt.Errorf("add port %q: %w", opts.Name, err)
	}
	br := &Bridge{Name: opts.Bridge}
	mut, err := c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Ports,
		Mutator: ovsdb.MutateOperationInsert, Value: []string{newPortUUID}})
	if err != nil {
		return fmt.Errorf("add port %q: %w", opts.Name, err)
	}
	ops = append(ops, mut...)
	res, err := c.transact(ctx, fmt.Sprintf("add port %q to bridge %q", opts.Name, opts.Bridge), ops...)
	if err != nil {
		return err
	}
	// A bridge deleted meanwhile matches no row: the new rows were garbage collected.
	if res[len(ops)-1].Count == 0 {
		return fmt.Errorf("add port %q: bridge %q: %w", opts.Name, opts.Bridge, ErrNoBridge)
	}
	return nil
}

func (c *Client) updatePort(ctx context.Context, p *Port, iface *Interface, opts PortOptions) error {
	var ops []ovsdb.Operation
	if p.Protected != opts.Protected {
		row := &Port{Name: p.Name, Protected: opts.Protected}
		up, err := c.db.Where(row).Update(row, &row.Protected)
		if err != nil {
			return fmt.Errorf("update port %q: %w", p.Name, err)
		}
		ops = append(ops, up...)
	}
	if changed(iface.ExternalIDs, opts.ExternalIDs) {
		mut, err := c.mapMutation(iface.Name, "external_ids", opts.ExternalIDs, nil)
		if err != nil {
			return err
		}
		ops = append(ops, mut...)
	}
	if opts.MTURequest > 0 && (iface.MTURequest == nil || *iface.MTURequest != opts.MTURequest) {
		row := &Interface{Name: iface.Name, MTURequest: &opts.MTURequest}
		up, err := c.db.Where(row).Update(row, &row.MTURequest)
		if err != nil {
			return fmt.Errorf("update interface %q: %w", iface.Name, err)
		}
		ops = append(ops, up...)
	}
	if len(ops) == 0 {
		return nil
	}
	_, err := c.transact(ctx, fmt.Sprintf("update interface %q", iface.Name), ops...)
	return err
}

// changed reports whether applying set to have would change it.
func changed(have, set map[string]string) bool {
	for k, v := range set {
		if hv, ok := have[k]; !ok || hv != v {
			return true
		}
	}
	return false
}

// DeletePort removes port name from bridge (if bridge is empty, from whichever bridge holds
// it). A port that does not exist is not an error (--if-exists); a bridge that does not exist
// is (ErrNoBridge), and so is a port on another bridge (ErrNoPort).
func (c *Client) DeletePort(ctx context.Context, bridge, name string) error {
	if bridge != "" {
		if _, err := c.Bridge(ctx, bridge); err != nil {
			return fmt.Errorf("delete port %q: %w", name, err)
		}
	}
	p, err := c.Port(ctx, name)
	if errors.Is(err, ErrNoPort) {
		return nil
	} else if err != nil {
		return fmt.Errorf("delete port %q: %w", name, err)
	}
	owner, err := c.PortBridge(ctx, name)
	if errors.Is(err, ErrNoPort) {
		return nil // unreferenced: ovsdb-server collects it
	} else if err != nil {
		return fmt.Errorf("delete port %q: %w", name, err)
	}
	if bridge != "" && owner != bridge {
		return fmt.Errorf("delete port %q: it is on bridge %q, not %q: %w", name, owner, bridge, ErrNoPort)
	}
	br := &Bridge{Name: owner}
	ops, err := c.db.Where(br).Mutate(br, model.Mutation{Field: &br.Ports,
		Mutator: ovsdb.MutateOperationDelete, Value: []string{p.UUID}})
	if err != nil {
		return fmt.Errorf("delete port %q: %w", name, err)
	}
	_, err = c.transact(ctx, fmt.Sprintf("delete port %q from bridge %q", name, owner), ops...)
	return err
}

// SetInterfaceExternalIDs sets the keys of set and removes the keys in remove from the
// interface's external_ids in one transaction, leaving other keys alone.
func (c *Client) SetInterfaceExternalIDs(ctx context.Context, name string, set map[string]string, remove ...string) error {
	return c.setIfaceMap(ctx, name, "external_ids", set, remove)
}

// SetInterfaceStatus is SetInterfaceExternalIDs for the status column. ovs-vswitchd rewrites
// that column when it refreshes the interface, so keys written here can disappear; state that
// must last belongs in external_ids.
func (c *Client) SetInterfaceStatus(ctx context.Context, name string, set map[string]string, remove ...string) error {
	return c.setIfaceMap(ctx, name, "status", set, remove)
}

func (c *Client) setIfaceMap(ctx context.Context, name, column string, set map[string]string, remove []string) error {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	if _, err := c.Interface(ctx, name); err != nil {
		return fmt.Errorf("set %s: %w", column, err)
	}
	ops, err := c.mapMutation(name, column, set, remove)
	if err != nil {
		return err
	}
	res, err := c.transact(ctx, fmt.Sprintf("set %s of interface %q", column, name), ops...)
	if err != nil {
		return err
	}
	if res[0].Count == 0 {
		return fmt.Errorf("set %s: interface %q: %w", column, name, ErrNoInterface)
	}
	return nil
}

// mapMutation returns one mutate operation on Interface name that deletes the keys of set and
// remove from the map column ("external_ids" or "status"), then inserts set.
func (c *Client) mapMutation(name, column string, set map[string]string, remove []string) ([]ovsdb.Operation, error) {
	row := &Interface{Name: name}
	target := &row.ExternalIDs
	if column == "status" {
		target = &row.Status
	}
	keys := slices.AppendSeq(slices.Clone(remove), maps.Keys(set))
	var muts []model.Mutation
	if len(keys) > 0 {
		muts = append(muts, model.Mutation{Field: target, Mutator: ovsdb.MutateOperationDelete, Value: keys})
	}
	if len(set) > 0 {
		muts = append(muts, model.Mutation{Field: target, Mutator: ovsdb.MutateOperationInsert, Value: maps.Clone(set)})
	}
	ops, err := c.db.Where(row).Mutate(row, muts...)
	if err != nil {
		return nil, fmt.Errorf("mutate %s of interface %q: %w", column, name, err)
	}
	return ops, nil
}

// SetPortProtected sets Port.protected (see PortOptions.Protected) on an existing port.
func (c *Client) SetPortProtected(ctx context.Context, name string, on bool) error {
	p, err := c.Port(ctx, name)
	if err != nil {
		return fmt.Errorf("set protected: %w", err)
	}
	if p.Protected == on {
		return nil
	}
	row := &Port{Name: name, Protected: on}
	ops, err := c.db.Where(row).Update(row, &row.Protected)
	if err != nil {
		return fmt.Errorf("set protected on port %q: %w", name, err)
	}
	res, err := c.transact(ctx, fmt.Sprintf("set protected on port %q", name), ops...)
	if err != nil {
		return err
	}
	if res[0].Count == 0 {
		return fmt.Errorf("set protected: port %q: %w", name, ErrNoPort)
	}
	return nil
}
