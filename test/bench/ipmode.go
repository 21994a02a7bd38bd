package main

import (
	"fmt"

	"github.com/sclp-ovs/sclp-ovs/offload"
)

// newIPDatapath starts mode=ip (the tc-eBPF manager plus the userspace fallback) in the
// calling thread's namespace.
func newIPDatapath() (offload.Datapath, error) {
	return nil, fmt.Errorf("mode=ip: the tc-eBPF manager is not in this tree yet: %w", errNotAvailable)
}
