// Package kubernetes meshes the Kubernetes nodes that run the sclp-ovs agent: it watches Node
// objects (a client-go informer filtered by a label selector) and keeps exactly one VXLAN-over-
// SCLP tunnel port per other node on one Open vSwitch bridge, with that node's address
// (InternalIP by default) as the peer and this node's address as the local underlay address.
//
// The package decides which peers should exist; it does not touch OVS itself. Ports are
// written through a PortStore, the same OVSDB model that `sclp-ovs add-port` uses, so a port
// made by discovery is an ordinary tunnel port: the agent reconciles it, `sclp-ovs show`
// lists it, and it carries an ownership mark (ManagedBy) so that discovery only ever removes
// ports it created and never a port an operator added by hand.
//
// Reconciliation is level-triggered. Every Node event only wakes the loop; the loop lists
// the selected nodes from the informer cache, computes the desired peers, lists the ports in
// the store and applies the difference. Nothing is deleted before the informer has synced,
// nor while this node itself is missing from the selected nodes (its address is the local
// end of every tunnel), so a restart or an API-server outage never tears the mesh down.
// Failures are retried with exponential backoff; a periodic resync repairs drift.
//
//	Node events ──wake──▶ reconcile: desired(nodes) ⊖ store.ListPeers(bridge)
//	                          ├── EnsurePeer(bridge, peer, opts)   new node, changed address
//	                          └── DeletePeer(bridge, peer)          node gone, label removed
package kubernetes
