//go:build !linux

package sclp

import "testing"

// cpuMetric reports nothing where getrusage is not wired up.
func cpuMetric(b *testing.B) func() { return func() {} }
