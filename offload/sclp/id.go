package sclp

import "sync/atomic"

// IDGenerator hands out message identifications: a counter in steps of 2 (bit 0 stays clear
// for the F flag) started at a seed. Ids repeat only after 2^31 messages, far beyond any
// reassembly window. It is safe for concurrent use.
type IDGenerator struct {
	next atomic.Uint32
}

// NewIDGenerator returns a generator whose first id is seed with bit 0 cleared. Seed it from
// a random source so that ids from a restarted sender do not collide with stale reassemblies.
func NewIDGenerator(seed uint32) *IDGenerator {
	g := &IDGenerator{}
	g.next.Store(seed &^ 1)
	return g
}

// Next returns the next identification (bit 0 clear) without allocating.
func (g *IDGenerator) Next() uint32 {
	return (g.next.Add(2) - 2) &^ 1
}
