// Package offload is the datapath manager of sclp-ovs.
//
// It defines the contract between the controller and the datapaths (PortSpec, Datapath) and
// implements the native mode (mode=ip, SCLP as IP protocol 234): it loads the tc-eBPF
// programs of package offload/bpf, attaches them with TCX, pins links and maps under
// /sys/fs/bpf/sclp-ovs/, keeps the port and peer maps in step with the desired tunnel ports,
// reads statistics, and detaches cleanly.
package offload
