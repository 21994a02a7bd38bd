// Package e2e holds the end-to-end tests of sclp-ovs on real Open vSwitch: private
// ovsdb-server and ovs-vswitchd instances (userspace datapath) inside simulated hosts (network
// namespaces from test/testbed), the sclp-ovs binary built once in TestMain, the agent and the
// CLI run inside the host namespaces exactly as an operator runs them, and VMs (namespaces on
// br-int) exchanging traffic through OVS and SCLP.
//
// The tests need root and skip in -short mode.
package e2e
