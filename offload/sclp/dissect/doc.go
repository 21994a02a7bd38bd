// Package dissect is the engine of `sclp-ovs pcap`: it reads a capture of underlay traffic
// (classic pcap or pcapng; Ethernet, Linux cooked or raw IP link types), dissects every SCLP
// packet (native IP protocol 234, or SCLP inside UDP to a configured port, including UDP
// datagrams that GRO merged or GSO has not split yet, which hold several segments back to
// back), feeds the segments to an sclp.Reassembler whose clock is the capture's timestamps,
// and reports events: one per segment, per reassembled message, per drop, and a final
// summary. Printers render the events as JSON lines or as a readable table.
package dissect
