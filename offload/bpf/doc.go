// Package bpf holds the tc-BPF programs of the native datapath (mode=ip, SCLP as IP
// protocol 234) and their Go bindings.
//
// The C sources (datapath.c with common.h, flowhash.h, tx.h, rx.h) are compiled with
// clang-19 through bpf2go (`go generate`, see gen.go); the generated sclp_bpfel.go and
// sclp_bpfel.o are committed so a build needs no clang.
//
//   - sclp_tx runs on TCX ingress of a tunnel port's datapath-side veth: it encapsulates
//     every frame as VXLAN over SCLP, cuts it into checksummed segments at the underlay MSS
//     and sends them out of the underlay (bpf_clone_redirect per segment, bpf_redirect for
//     the last).
//   - sclp_rx runs on TCX ingress of the underlay: it validates SCLP segments, delivers
//     single-segment messages decapsulated into their tunnel port with no payload copy, and
//     hands every other segment to userspace through the exceptions ring buffer (records:
//     Record in record.go).
//
// Both count every event and drop reason in a per-CPU statistics map (Stats). The manager
// that loads, attaches and pins them lives in package offload; docs/datapath.md describes
// the design.
package bpf
