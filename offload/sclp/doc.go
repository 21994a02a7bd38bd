// Package sclp implements SCLP, the segment-oriented L4 protocol of Kawashima and Matsuo
// (IP protocol 234), and VXLAN over SCLP, as specified in docs/wire-format.md.
//
// The package is pure and uses the standard library only: it never reads a clock (callers
// pass the time in), never touches a socket and allocates nothing on its hot paths.
//
//   - Header is the 12-byte SCLP header, with a bit diagram, marshal and unmarshal.
//   - Sum, CopyAndSum, Fold, Checksum and SegmentChecksum implement the RFC 1071 checksum with
//     64-bit accumulation and a fused copy-and-checksum for building segments.
//   - Segmenter cuts a message (VXLAN header + inner frame, 0 to MaxMessageLen bytes) into
//     segments, either as headers plus sub-slices of the message (for iovec senders) or
//     written into a caller's buffer with the fused copy and checksum.
//   - PutVXLAN, ParseVXLAN, SourcePort and IDGenerator complete VXLAN over SCLP.
//   - AppendPacket and ParsePacket (and ParseIPv4) build and parse the outer Ethernet, IPv4
//     (protocol 234, DF) and SCLP headers, or SCLP inside UDP, with typed errors.
//   - Coalescer (stage 1) merges consecutive pieces of one message into runs; Reassembler
//     (stage 2) restores whole messages with bounded out-of-order buffering, duplicate and
//     overlap detection, timeouts, global and per-peer caps and a counter per drop reason.
//
// Neither Coalescer nor Reassembler is safe for concurrent use: run one per worker.
package sclp
