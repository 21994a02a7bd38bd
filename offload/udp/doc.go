// Package udp is mode=udp, the fast mode: SCLP segments carried in UDP datagrams so that the
// kernel's UDP GSO (UDP_SEGMENT) and GRO (UDP_GRO) do the per-segment work it refuses for IP
// protocol 234.
//
// Transmit, per tunnel port and per worker: an AF_PACKET socket with PACKET_VNET_HDR on the
// datapath-side veth (PortSpec.PeerName) in a PACKET_FANOUT_HASH group reads whole frames (64
// KB GSO frames arrive unsplit); each frame becomes one message (VXLAN header + frame), cut
// into segments laid out as iovecs [SCLP header k][chunk k] and sent with one sendmsg carrying
// a UDP_SEGMENT cmsg (a second sendmsg only when the message exceeds the 65,507-byte UDP
// limit). The UDP source port carries the inner-flow hash: the datapath keeps SourcePorts
// sockets bound to ports spread over 49152-65535 and sends each flow from the socket of its
// hash bucket (sclp.SourcePort picks the bucket; the SCLP header carries the full hash). When
// the socket is full (EAGAIN, or ENOBUFS from a full qdisc) the worker waits instead of
// dropping, so it stops reading the tunnel port.
//
// Receive: Workers sockets bound to local:DstPort with SO_REUSEPORT (the kernel spreads flows
// over them by 4-tuple, so over workers), UDP_GRO and a 32 MB receive buffer; recvmsg hands
// over a GRO batch of up to ~44 segments with the segment size in a cmsg; the batch is split
// into pieces and fed to the worker's fallback.Worker, which reassembles and injects each
// message into its tunnel port as one (GSO) frame.
//
// UDP GRO on a veth underlay needs NAPI, that is `ethtool -K DEV gro on`: EnsurePort runs it
// on PortSpec.Device unless Options.SkipGRO is set.
package udp
