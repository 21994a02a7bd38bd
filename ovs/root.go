package ovs

import (
	"context"
	"fmt"
	"maps"
	"slices"

	"github.com/ovn-org/libovsdb/model"
	"github.com/ovn-org/libovsdb/ovsdb"
)

// SetRootExternalIDs sets the keys of set and removes the keys in remove from the
// Open_vSwitch row's external_ids in one transaction (for example an agent heartbeat).
func (c *Client) SetRootExternalIDs(ctx context.Context, set map[string]string, remove ...string) error {
	if len(set) == 0 && len(remove) == 0 {
		return nil
	}
	root, err := c.Root(ctx)
	if err != nil {
		return fmt.Errorf("set Open_vSwitch external_ids: %w", err)
	}
	r := &OpenvSwitch{UUID: root.UUID}
	keys := slices.AppendSeq(slices.Clone(remove), maps.Keys(set))
	muts := []model.Mutation{{Field: &r.ExternalIDs, Mutator: ovsdb.MutateOperationDelete, Value: keys}}
	if len(set) > 0 {
		muts = append(muts, model.Mutation{Field: &r.ExternalIDs, Mutator: ovsdb.MutateOperationInsert, Value: maps.Clone(set)})
	}
	ops, err := c.db.Where(r).Mutate(r, muts...)
	if err != nil {
		return fmt.Errorf("set Open_vSwitch external_ids: %w", err)
	}
	_, err = c.transact(ctx, "set Open_vSwitch external_ids", ops...)
	return err
}
