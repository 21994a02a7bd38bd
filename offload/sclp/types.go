package sclp

import (
	"fmt"
	"net/netip"
	"time"
)

// Key identifies one message being reassembled: outer addresses, outer UDP ports (0 in
// native mode), SCLP ports and identification (bit 0 clear).
type Key struct {
	// Src and Dst are the outer IP addresses. Src is the peer for per-peer limits.
	Src, Dst netip.Addr
	// OuterSrcPort and OuterDstPort are the UDP ports in UDP mode, 0 in native mode.
	OuterSrcPort, OuterDstPort uint16
	// SrcPort and DstPort are the SCLP ports.
	SrcPort, DstPort uint16
	// ID is the identification with bit 0 clear.
	ID uint32
}

// same reports k == *o, comparing the most distinguishing fields first (faster than the
// generated struct equality, which the reassembler runs on every piece).
func (k *Key) same(o *Key) bool {
	return k.ID == o.ID && k.SrcPort == o.SrcPort && k.DstPort == o.DstPort &&
		k.OuterSrcPort == o.OuterSrcPort && k.OuterDstPort == o.OuterDstPort &&
		k.Src == o.Src && k.Dst == o.Dst
}

// Piece is a segment, or a run of consecutive segments merged by a Coalescer, offered to the
// Reassembler. Its payload covers message bytes [size-Remaining-len(Payload), size-Remaining)
// of a message of size bytes; a first piece fixes size = len(Payload) + Remaining.
type Piece struct {
	// Key is the message the piece belongs to.
	Key Key
	// First is set when the piece starts the message (F bit of its first segment).
	First bool
	// Remaining is the number of message bytes that follow the piece.
	Remaining int
	// Payload is the piece's message bytes.
	Payload []byte
}

// DropReason says why a segment or a partial message was dropped.
type DropReason uint8

// Drop reasons. Each has a counter in Stats.Drops and a snake_case name.
const (
	// DropNone is not a drop.
	DropNone DropReason = iota
	// DropBadChecksum: a segment failed its checksum (counted by callers via Count).
	DropBadChecksum
	// DropShort: a truncated packet, or an empty non-first piece.
	DropShort
	// DropBadVXLAN: a message whose VXLAN header is invalid (counted by callers).
	DropBadVXLAN
	// DropUnknownPeer: a segment from an address that is not a configured peer (counted by
	// callers).
	DropUnknownPeer
	// DropOrphan: a partial message whose first segment never arrived expired.
	DropOrphan
	// DropOverlap: a piece that partly overlaps bytes already held, extends beyond the
	// message, or contradicts its size; or a partial message discarded because a new first
	// piece contradicted it.
	DropOverlap
	// DropDuplicate: a piece whose bytes are all already held.
	DropDuplicate
	// DropTimeout: a partial message (first segment seen) not completed within the timeout.
	DropTimeout
	// DropOverLimit: a piece that would start a new partial message its peer has no room for
	// under the caps (refused, see Reassembler), a message larger than MaxMessageLen, or a
	// piece that would exceed MaxPieces holes.
	DropOverLimit
	// DropEvicted: a partial message evicted to make room under the caps (see Reassembler).
	DropEvicted
	// NumDropReasons is the number of drop reasons including DropNone.
	NumDropReasons
)

var dropNames = [NumDropReasons]string{
	"none", "bad_checksum", "short", "bad_vxlan", "unknown_peer", "orphan",
	"overlap", "duplicate", "timeout", "over_limit", "evicted",
}

// String returns the snake_case name of r ("bad_checksum", "short", ...).
func (r DropReason) String() string {
	if r < NumDropReasons {
		return dropNames[r]
	}
	return fmt.Sprintf("drop_reason_%d", uint8(r))
}

// Config bounds a Reassembler. Zero fields take the DefaultConfig value.
type Config struct {
	// Timeout is how long a partial message may wait, from its first piece, for the rest.
	Timeout time.Duration
	// MaxBytes caps the buffer bytes held by partial messages (each holds a buffer of a
	// size class from 1 KiB to MaxMessageLen; that class size is what counts).
	MaxBytes int
	// MaxEntries caps the number of partial messages.
	MaxEntries int
	// MaxPeerBytes caps the buffer bytes held for one peer (Key.Src).
	MaxPeerBytes int
	// MaxPeerEntries caps the number of partial messages of one peer.
	MaxPeerEntries int
	// MaxPieces caps the number of disjoint byte ranges (runs) one partial message may hold
	// (in-order arrival keeps one).
	MaxPieces int
	// OnDrop, if set, is called for every partial message the reassembler discards on its
	// own (timeout, orphan, eviction, overlap with a new first piece), with its key, the
	// reason and the payload bytes it held. Drops of the offered piece itself are reported
	// by Add's Result instead. OnDrop must not call back into the Reassembler.
	OnDrop func(key Key, reason DropReason, heldBytes int)
}

// DefaultConfig returns the default limits: 1 s timeout, 64 MiB and 4096 partial messages in
// total, 16 MiB and 1024 per peer, 64 runs per message.
func DefaultConfig() Config {
	return Config{
		Timeout:        time.Second,
		MaxBytes:       64 << 20,
		MaxEntries:     4096,
		MaxPeerBytes:   16 << 20,
		MaxPeerEntries: 1024,
		MaxPieces:      64,
	}
}

// withDefaults fills zero fields from DefaultConfig and validates the result.
func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.Timeout == 0 {
		c.Timeout = d.Timeout
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = d.MaxBytes
	}
	if c.MaxEntries == 0 {
		c.MaxEntries = d.MaxEntries
	}
	if c.MaxPeerBytes == 0 {
		c.MaxPeerBytes = min(d.MaxPeerBytes, c.MaxBytes)
	}
	if c.MaxPeerEntries == 0 {
		c.MaxPeerEntries = min(d.MaxPeerEntries, c.MaxEntries)
	}
	if c.MaxPieces == 0 {
		c.MaxPieces = d.MaxPieces
	}
	if c.Timeout < 0 || c.MaxBytes < 0 || c.MaxEntries < 0 || c.MaxPeerBytes < 0 ||
		c.MaxPeerEntries < 0 || c.MaxPieces < 1 {
		return c, fmt.Errorf("reassembler config %+v: negative limit: %w", c, ErrBadConfig)
	}
	return c, nil
}

// Message is a completely reassembled message (VXLAN header + inner frame).
type Message struct {
	// Key is the message's key.
	Key Key
	// Payload is the message. It is valid until the message is passed to Release; a message
	// that arrived as one piece aliases that piece's payload (no copy).
	Payload []byte

	buf *buffer // pooled buffer behind Payload, nil when Payload aliases the piece
}

// Status is the outcome of Reassembler.Add.
type Status uint8

// Outcomes of Reassembler.Add.
const (
	// Buffered: the piece is held, the message is not complete yet.
	Buffered Status = iota
	// Completed: the message is complete and returned.
	Completed
	// Dropped: the piece was dropped; Result.Reason says why.
	Dropped
)

// String returns "buffered", "completed" or "dropped".
func (s Status) String() string {
	switch s {
	case Buffered:
		return "buffered"
	case Completed:
		return "completed"
	case Dropped:
		return "dropped"
	}
	return fmt.Sprintf("status_%d", uint8(s))
}

// Result is what Reassembler.Add did with a piece.
type Result struct {
	// Status is buffered, completed or dropped.
	Status Status
	// Reason is why the piece was dropped (DropNone otherwise).
	Reason DropReason
}

// Stats are the reassembler's counters and current usage.
type Stats struct {
	// Completed counts messages delivered; CompletedBytes their payload bytes.
	Completed, CompletedBytes uint64
	// Direct counts messages delivered without copy (one piece, the whole message).
	Direct uint64
	// Buffered counts pieces accepted into a partial message.
	Buffered uint64
	// BufferedBytes and BufferedEntries are the current buffer bytes (size-class bytes) and
	// partial messages held; Peers the peers holding any.
	BufferedBytes, BufferedEntries, Peers int
	// Drops counts drops per reason (index by DropReason).
	Drops [NumDropReasons]uint64
}

// TotalDrops returns the sum of all drop counters.
func (s Stats) TotalDrops() uint64 {
	var n uint64
	for _, d := range s.Drops {
		n += d
	}
	return n
}
