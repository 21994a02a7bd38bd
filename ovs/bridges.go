package ovs

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// DatapathNetdev is the userspace datapath type, the only one usable without the kernel module.
const DatapathNetdev = "netdev"

// BridgeOptions describes a bridge for AddBridge.
type BridgeOptions struct {
	// Name is required.
	Name string
	// DatapathType defaults to DatapathNetdev; set "system" explicitly for the kernel datapath.
	DatapathType string
	// FailMode is "", "standalone" or "secure".
	FailMode string
	// ExternalIDs are set on the Bridge row at creation.
	ExternalIDs map[string]string
}

// Named UUIDs used inside AddBridge's transaction.
const (
	newBridgeUUID     = "new_bridge"
	newBrPortUUID     = "new_brport"
	newBrIfaceUUID    = "new_briface"
	ifaceTypeInternal = "internal"
)

// AddBridge creates the bridge like `ovs-vsctl --may-exist add-br` does (with its internal
// port of the same name and the datapath type in the same transaction). An existing bridge is
// left as it is.
func (c *Client) AddBridge(ctx context.Context, opts BridgeOptions) error {
	if opts.Name == "" {
		return fmt.Errorf("add bridge: %w: empty name", ErrInvalid)
	}
	if ok, err := c.BridgeExists(ctx, opts.Name); err != nil || ok {
		return err
	}
	if opts.DatapathType == "" {
		opts.DatapathType = DatapathNetdev
	}
	root, err := c.Root(ctx)
	if err != nil {
		return fmt.Errorf("add bridge %q: %w", opts.Name, err)
	}
	iface := &Interface{UUID: newBrIfaceUUID, Name: opts.Name, Type: ifaceTypeInternal}
	port := &Port{UUID: newBrPortUUID, Name: opts.Name, Interfaces: []string{newBrIfaceUUID}}
	br := &Bridge{UUID: newBridgeUUID, Name: opts.Name, DatapathType: opts.DatapathType,
		Ports: []string{newBrPortUUID}, ExternalIDs: opts.ExternalIDs}
	if opts.FailMode != "" {
		br.FailMode = &opts.FailMode
	}
	ops, err := c.db.Create(iface, port, br)
	if err != nil {
		return fmt.Errorf("add bridge %q: %w", opts.Name, err)
	}
	r := &OpenvSwitch{UUID: root.UUID}
	mut, err := c.db.Where(r).Mutate(r, model.Mutation{Field: &r.Bridges,
		Mutator: ovsdb.MutateOperationInsert, Value: []string{newBridgeUUID}})
	if err != nil {
		return fmt.Errorf("add bridge %q: %w", opts.Name, err)
	}
	_, err = c.transact(ctx, fmt.Sprintf("add bridge %q", opts.Name), append(ops, mut...)...)
	return err
}

// DeleteBridge removes the bridge and, by garbage collection, its ports. A missing bridge is
// not an error.
func (c *Client) DeleteBridge(ctx context.Context, name string) error {
	b, err := c.Bridge(ctx, name)
	if errors.Is(err, ErrNoBridge) {
		return nil
	} else if err != nil {
		return err
	}
	root, err := c.Root(ctx)
	if err != nil {
		return fmt.Errorf("delete bridge %q: %w", name, err)
	}
	r := &OpenvSwitch{UUID: root.UUID}
	ops, err := c.db.Where(r).Mutate(r, model.Mutation{Field: &r.Bridges,
		Mutator: ovsdb.MutateOperationDelete, Value: []string{b.UUID}})
	if err != nil {
		return fmt.Errorf("delete bridge %q: %w", name, err)
	}
	_, err = c.transact(ctx, fmt.Sprintf("delete bridge %q", name), ops...)
	return err
}

// WaitVswitchd increments Open_vSwitch.next_cfg and waits until ovs-vswitchd has caught up
// (cur_cfg), like ovs-vsctl without --no-wait: after it returns, every change committed before
// the call is in effect in ovs-vswitchd (ports exist, ofport numbers are assigned). If
// ovs-vswitchd does not answer before ctx ends, the error wraps ErrNoVswitchd.
func (c *Client) WaitVswitchd(ctx context.Context) error {
	root, err := c.Root(ctx)
	if err != nil {
		return fmt.Errorf("wait for ovs-vswitchd: %w", err)
	}
	r := &OpenvSwitch{UUID: root.UUID}
	ops, err := c.db.Where(r).Mutate(r, model.Mutation{Field: &r.NextCfg,
		Mutator: ovsdb.MutateOperationAdd, Value: 1})
	if err != nil {
		return fmt.Errorf("wait for ovs-vswitchd: %w", err)
	}
	ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationSelect, Table: TableOpenvSwitch,
		Where:   []ovsdb.Condition{ovsdb.NewCondition("_uuid", ovsdb.ConditionEqual, ovsdb.UUID{GoUUID: root.UUID})},
		Columns: []string{"next_cfg"}})
	res, err := c.transact(ctx, "increment next_cfg", ops...)
	if err != nil {
		return err
	}
	if len(res) < 2 || len(res[1].Rows) != 1 {
		return fmt.Errorf("wait for ovs-vswitchd: %w: next_cfg not returned", ErrTransaction)
	}
	target, ok := res[1].Rows[0]["next_cfg"].(float64)
	if !ok {
		return fmt.Errorf("wait for ovs-vswitchd: %w: next_cfg is %T", ErrTransaction, res[1].Rows[0]["next_cfg"])
	}
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		if cur, err := c.Root(ctx); err == nil && cur.CurCfg >= int(target) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for cur_cfg %d: %w: %v", int(target), ErrNoVswitchd, ctx.Err())
		case <-tick.C:
		}
	}
}
