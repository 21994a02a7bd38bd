// Package fallback is the userspace finish of the SCLP datapath, shared by both encapsulation
// modes:
//
//   - Injector writes a whole inner Ethernet frame into a tunnel port with one write on an
//     AF_PACKET socket with PACKET_VNET_HDR, so that a 64 KB TCP frame reaches the receiving
//     stack as one GSO packet (gso_size derived from the port MTU, NEEDS_CSUM with the L4
//     checksum field re-seeded to the pseudo-header sum).
//   - Worker owns one sclp.Reassembler: pieces in, completed messages parsed as VXLAN, looked up
//     by (peer, VNI) in a PortTable and injected. One Worker per goroutine; its statistics are
//     atomics, readable from any goroutine. Pipeline groups the workers of one datapath.
//   - RingReader takes the BPF rx program's exception records from a ring buffer (mode=ip)
//     and feeds them to a Worker without a copy per record.
//
// mode=udp (package offload/udp) feeds the same Worker from UDP_GRO sockets.
package fallback
