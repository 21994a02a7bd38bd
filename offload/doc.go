// Package offload is the datapath manager of sclp-ovs.
//
// It defines the contract between the controller and the datapaths (PortSpec, Datapath) and
// implements the native mode (mode=ip, SCLP as IP protocol 234) as Manager: it loads the
// tc-eBPF programs of package offload/bpf, attaches them with TCX (a clsact filter where the
// kernel has no TCX), pins links and maps under /sys/fs/bpf/sclp-ovs/, keeps the port and
// peer maps in step with the desired tunnel ports, reads statistics (Stats), exposes the
// exceptions ring buffer for offload/fallback (ExceptionRing), and detaches cleanly
// (Uninstall). Close leaves the pinned state running; a new Manager on the same pin root
// adopts it and replaces the programs in place. docs/datapath.md describes the design.
package offload
