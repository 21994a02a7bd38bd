package bpf

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// RecordHeaderLen is the length of the header in front of each exception record's packet.
const RecordHeaderLen = 16

// Reason says why the rx program handed a packet to userspace.
type Reason uint32

// Exception reasons (the shared contract with offload/fallback).
const (
	// ReasonMultiSegment: a segment of a message of more than one segment.
	ReasonMultiSegment Reason = 1
	// ReasonOutOfOrder: a segment that arrived out of order for an in-BPF merge.
	ReasonOutOfOrder Reason = 2
	// ReasonTooLarge: a message BPF cannot rebuild or deliver as one frame (larger than the
	// tunnel port MTU, so it needs GSO injection, or too small for bpf_skb_adjust_room).
	ReasonTooLarge Reason = 3
	// ReasonBuffersFull: BPF merge buffers were full.
	ReasonBuffersFull Reason = 4
	// ReasonMergedRun: a run of consecutive segments merged in BPF (synthetic SCLP header,
	// no valid checksum).
	ReasonMergedRun Reason = 5
)

// String returns a snake_case name of r.
func (r Reason) String() string {
	switch r {
	case ReasonMultiSegment:
		return "multi_segment"
	case ReasonOutOfOrder:
		return "out_of_order"
	case ReasonTooLarge:
		return "too_large"
	case ReasonBuffersFull:
		return "buffers_full"
	case ReasonMergedRun:
		return "merged_run"
	}
	return fmt.Sprintf("reason_%d", uint32(r))
}

// Record flags.
const (
	// FlagChecksumVerified: BPF verified the SCLP checksum of the packet.
	FlagChecksumVerified uint32 = 1 << 0
)

// ErrBadRecord reports a ring-buffer record whose header is inconsistent with its length.
var ErrBadRecord = errors.New("bpf: malformed exception record")

// Record is one exception record of the rx program, in host byte order:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+---------------------------------------------------------------+
//	|                            reason                             |
//	+---------------------------------------------------------------+
//	|                 length (bytes of the IPv4 packet)             |
//	+---------------------------------------------------------------+
//	|                 ifindex (underlay it arrived on)              |
//	+---------------------------------------------------------------+
//	|             flags (bit 0: SCLP checksum verified)             |
//	+---------------------------------------------------------------+
//	|  IPv4 header | SCLP header | payload ...                      |
type Record struct {
	Reason  Reason
	Ifindex uint32
	Flags   uint32
	// Packet is the IPv4 packet: a sub-slice of the parsed buffer (no copy).
	Packet []byte
}

// ChecksumVerified reports whether BPF verified the packet's SCLP checksum.
func (r Record) ChecksumVerified() bool { return r.Flags&FlagChecksumVerified != 0 }

// ParseRecord decodes a ring-buffer record. The ring pads records to 8 bytes, so b may be
// longer than the header and packet; the length field decides. It returns
// io.ErrUnexpectedEOF for a buffer shorter than the header and ErrBadRecord when the
// length field exceeds the buffer. It does not allocate.
func ParseRecord(b []byte) (Record, error) {
	if len(b) < RecordHeaderLen {
		return Record{}, io.ErrUnexpectedEOF
	}
	n := binary.NativeEndian.Uint32(b[4:])
	if uint64(n) > uint64(len(b)-RecordHeaderLen) {
		return Record{}, fmt.Errorf("parse record: length %d, %d bytes follow: %w", n, len(b)-RecordHeaderLen, ErrBadRecord)
	}
	return Record{
		Reason:  Reason(binary.NativeEndian.Uint32(b[0:])),
		Ifindex: binary.NativeEndian.Uint32(b[8:]),
		Flags:   binary.NativeEndian.Uint32(b[12:]),
		Packet:  b[RecordHeaderLen : RecordHeaderLen+int(n)],
	}, nil
}

// AppendRecord appends r in the wire layout to b (for tests and fakes of the reader).
func AppendRecord(b []byte, r Record) []byte {
	var h [RecordHeaderLen]byte
	binary.NativeEndian.PutUint32(h[0:], uint32(r.Reason))
	binary.NativeEndian.PutUint32(h[4:], uint32(len(r.Packet)))
	binary.NativeEndian.PutUint32(h[8:], r.Ifindex)
	binary.NativeEndian.PutUint32(h[12:], r.Flags)
	return append(append(b, h[:]...), r.Packet...)
}
