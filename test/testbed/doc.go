// Package testbed builds throw-away network topologies out of Linux network namespaces for
// privileged tests, the demo and the benchmarks.
//
// Everything a testbed function creates (namespaces, veth pairs, processes, private Open
// vSwitch instances, directories) is registered with TB.Cleanup and removed again, also when
// the test fails. Namespace names are unique (a short prefix plus a random suffix), so tests
// and helpers running at the same time never collide, and no address or route is ever added to
// the root namespace: all test traffic stays inside namespaces the caller created.
//
// The building blocks:
//
//	NewNS       a named namespace (ip netns add); Run, MustRun, Start and Do work inside it
//	Link        a veth pair between two namespaces (created inside them, never in the root ns)
//	NewHosts    N "hosts" on one underlay: a veth pair for 2, a bridge in a "switch" ns for 3+
//	NewVM       a "VM" namespace attached to a host by a veth pair whose host end is left free
//	NewImpairedHosts  two hosts joined through a relay namespace that deterministically drops,
//	            duplicates or reorders chosen tunnel packets (SCLP in IP or in UDP)
//	StartOVS    a private ovsdb-server + ovs-vswitchd (userspace datapath) inside a namespace
//	NewRunner   a TB for programs that are not tests (demo, bench harness)
//
// Tests call RequireRoot first: it skips when not root or in -short mode.
package testbed
