// Package controller reconciles the VXLAN-over-SCLP tunnel ports recorded in OVSDB against
// the host: the veth pair of each port (with the right MTU and offloads), the datapath that
// carries it (offload.Datapath, one per mode), the OpenFlow flows sclp-ovs owns (split
// horizon), and the status written back to OVSDB.
//
// OVSDB is the source of truth. A tunnel port is an ordinary OVS port whose Interface carries
// the ownership mark and the configuration in external_ids:
//
//	sclp-ovs:owner=sclp-ovs   the mark; nothing without it is ever touched
//	sclp-ovs:peer=10.0.0.2    remote underlay IPv4 address (required)
//	sclp-ovs:key=0            VXLAN network identifier (24 bits)
//	sclp-ovs:local_ip=...     local underlay address (default: source of the route to peer)
//	sclp-ovs:dev=eth0         underlay device (default: device of the route to peer)
//	sclp-ovs:mode=udp|ip      SCLP in UDP (default) or SCLP as IP protocol 234
//	sclp-ovs:dst_port=4795    UDP destination port (mode=udp)
//	sclp-ovs:mtu=1446         tunnel port MTU (default: underlay MTU - 54 (ip) / - 62 (udp))
//	sclp-ovs:tos=0 ttl=64 df=true  outer IPv4 header fields
//	sclp-ovs:status=ready     written by the agent: "ready" or "error: ..."
//
// The agent's liveness is a heartbeat in Open_vSwitch external_ids
// (sclp-ovs:agent-heartbeat, RFC 3339 time), refreshed every HeartbeatInterval and removed
// when the agent stops cleanly.
//
// Dependencies are small interfaces defined here (Store, Flows, Links, Router and
// offload.Datapath); the real implementations are wired in package cli, and
// package controllertest holds handwritten fakes.
package controller
