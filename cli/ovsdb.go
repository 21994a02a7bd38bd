package cli

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"

	"github.com/sclp-ovs/sclp-ovs/controller"
	"github.com/sclp-ovs/sclp-ovs/ovs"
)

// ovsDB adapts *ovs.Client to DB (and so to controller.Store).
type ovsDB struct {
	c       *ovs.Client
	changes <-chan struct{}
	cancel  func()

	mu        sync.Mutex
	protected map[string]bool // ports this process has made protected
}

func openRealDB(ctx context.Context, endpoint string) (DB, error) {
	c, err := ovs.Dial(ctx, endpoint)
	if err != nil {
		return nil, err
	}
	ch, cancel := c.Subscribe()
	return &ovsDB{c: c, changes: ch, cancel: cancel, protected: map[string]bool{}}, nil
}

func (d *ovsDB) Close() { d.cancel(); d.c.Close() }

func (d *ovsDB) Changes() <-chan struct{} { return d.changes }

// Bridges reads bridges and their interfaces from the cache. It fails while the connection
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
	d.mu.Lock()
	defer d.mu.Unlock()
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
		p := controller.BridgePort{Name: i.Port, ExternalIDs: i.ExternalIDs, Protected: d.protected[i.Port]}
		if p.ExternalIDs == nil {
			p.ExternalIDs = map[string]string{}
		}
		if i.OFPort != nil {
			p.OFPort = *i.OFPort
		}
		if i.Error != nil {
			p.Error = *i.Error
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

// SetProtected sets Port.protected (a column the ovs models do not carry, so a raw update).
// Its value is not in the cache; the adapter remembers what it set, so a later agent sets it
// once more (a no-op) and never again.
func (d *ovsDB) SetProtected(ctx context.Context, port string, on bool) error {
	op := ovsdb.Operation{Op: ovsdb.OperationUpdate, Table: ovs.TablePort,
		Where: []ovsdb.Condition{ovsdb.NewCondition("name", ovsdb.ConditionEqual, port)},
		Row:   ovsdb.Row{"protected": on}}
	if err := d.transact(ctx, "set protected on port "+port, op); err != nil {
		return err
	}
	d.mu.Lock()
	d.protected[port] = on
	d.mu.Unlock()
	return nil
}

func (d *ovsDB) transact(ctx context.Context, what string, ops ...ovsdb.Operation) error {
	res, err := d.c.Raw().Transact(ctx, ops...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if opErrs, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		return fmt.Errorf("%s: %w: %v", what, err, opErrs)
	}
	return nil
}

// SetHeartbeat replaces (or removes) the heartbeat key in Open_vSwitch external_ids.
func (d *ovsDB) SetHeartbeat(ctx context.Context, value string) error {
	root, err := d.c.Root(ctx)
	if err != nil {
		return err
	}
	where := []ovsdb.Condition{ovsdb.NewCondition("_uuid", ovsdb.ConditionEqual, ovsdb.UUID{GoUUID: root.UUID})}
	ops := []ovsdb.Operation{{Op: ovsdb.OperationMutate, Table: ovs.TableOpenvSwitch, Where: where,
		Mutations: []ovsdb.Mutation{*ovsdb.NewMutation("external_ids", ovsdb.MutateOperationDelete,
			ovsdb.OvsSet{GoSet: []any{controller.KeyHeartbeat}})}}}
	if value != "" {
		ops = append(ops, ovsdb.Operation{Op: ovsdb.OperationMutate, Table: ovs.TableOpenvSwitch, Where: where,
			Mutations: []ovsdb.Mutation{*ovsdb.NewMutation("external_ids", ovsdb.MutateOperationInsert,
				ovsdb.OvsMap{GoMap: map[any]any{controller.KeyHeartbeat: value}})}})
	}
	return d.transact(ctx, "write agent heartbeat", ops...)
}

func (d *ovsDB) Heartbeat(ctx context.Context) (string, error) {
	root, err := d.c.Root(ctx)
	if err != nil {
		return "", err
	}
	return root.ExternalIDs[controller.KeyHeartbeat], nil
}

// AddPort inserts the Interface and the (protected) Port and attaches the port to the bridge,
// in one transaction.
func (d *ovsDB) AddPort(ctx context.Context, bridge, name string, ids map[string]string) error {
	iface := &ovs.Interface{UUID: "new_iface", Name: name, ExternalIDs: ids}
	port := &ovs.Port{UUID: "new_port", Name: name, Interfaces: []string{"new_iface"}}
	ops, err := d.c.Raw().Create(iface, port)
	if err != nil {
		return err
	}
	for i := range ops {
		if ops[i].Table == ovs.TablePort {
			ops[i].Row["protected"] = true
		}
	}
	br := &ovs.Bridge{Name: bridge}
	mut, err := d.c.Raw().Where(br).Mutate(br, model.Mutation{Field: &br.Ports, Mutator: ovsdb.MutateOperationInsert, Value: []string{"new_port"}})
	if err != nil {
		return err
	}
	ops = append(ops, mut...)
	res, err := d.c.Raw().Transact(ctx, ops...)
	if err != nil {
		return err
	}
	if _, err := ovsdb.CheckOperationResults(res, ops); err != nil {
		return err
	}
	if res[len(ops)-1].Count == 0 {
		return errors.New("the bridge disappeared meanwhile")
	}
	return nil
}

func (d *ovsDB) DeletePort(ctx context.Context, bridge, name string) error {
	return d.c.DeletePort(ctx, bridge, name)
}

// OtherConfig returns Open_vSwitch other_config.
func (d *ovsDB) OtherConfig(ctx context.Context) (map[string]string, error) {
	root, err := d.c.Root(ctx)
	if err != nil {
		return nil, err
	}
	return root.OtherConfig, nil
}
