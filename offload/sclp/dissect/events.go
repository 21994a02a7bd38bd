package dissect

// Event is one line of output: *Segment, *Message, *Drop or *Summary.
type Event interface {
	// Kind returns the value of the "event" field.
	Kind() string
}

// Segment reports one SCLP segment as it was captured.
type Segment struct {
	Event      string `json:"event"`       // "segment"
	Frame      int    `json:"frame"`       // 1-based frame number in the file
	Src        string `json:"src"`         // outer source address
	Dst        string `json:"dst"`         // outer destination address
	SrcPort    uint16 `json:"sport"`       // SCLP source port
	DstPort    uint16 `json:"dport"`       // SCLP destination port
	ID         uint32 `json:"id"`          // identification word with bit 0 cleared
	First      bool   `json:"first"`       // F bit
	Remaining  int    `json:"remaining"`   // message bytes after this segment
	Len        int    `json:"len"`         // SCLP payload bytes
	ChecksumOK bool   `json:"checksum_ok"` // SCLP checksum (native) or UDP checksum (UDP mode) verified
	// UDPSrcPort and UDPDstPort are the outer UDP ports of SCLP in UDP (absent natively).
	UDPSrcPort uint16 `json:"udp_sport,omitempty"`
	UDPDstPort uint16 `json:"udp_dport,omitempty"` // see UDPSrcPort
	// ChecksumPartial is set for a UDP-mode segment whose UDP checksum was left to offload
	// (the capture shows only the pseudo-header sum): its bytes could not be verified.
	ChecksumPartial bool `json:"checksum_partial,omitempty"`
}

// Message reports one completely reassembled message.
type Message struct {
	Event   string `json:"event"`  // "message"
	Src     string `json:"src"`    // outer source address
	Dst     string `json:"dst"`    // outer destination address
	SrcPort uint16 `json:"sport"`  // SCLP source port
	DstPort uint16 `json:"dport"`  // SCLP destination port
	ID      uint32 `json:"id"`     // identification (bit 0 clear)
	Len     int    `json:"len"`    // message bytes (VXLAN header + inner frame)
	SHA256  string `json:"sha256"` // hex SHA-256 of the message bytes
	// VNI is the VXLAN network identifier; absent when the destination port is not VXLAN.
	VNI *uint32 `json:"vni,omitempty"`
	// Frame is the frame that completed the message.
	Frame int `json:"frame"`
}

// Drop reports a dropped segment (Frame is its frame) or a dropped partial message (Frame is
// the last frame that contributed to it). Reason is an sclp.DropReason name. The key fields
// are present when known.
type Drop struct {
	Event   string `json:"event"`           // "drop"
	Frame   int    `json:"frame"`           // frame of the segment, or last frame of the partial message
	Reason  string `json:"reason"`          // sclp.DropReason name
	Src     string `json:"src,omitempty"`   // outer source address
	Dst     string `json:"dst,omitempty"`   // outer destination address
	SrcPort uint16 `json:"sport,omitempty"` // SCLP source port
	DstPort uint16 `json:"dport,omitempty"` // SCLP destination port
	ID      uint32 `json:"id,omitempty"`    // identification (bit 0 clear)
}

// Summary closes the output.
type Summary struct {
	Event    string            `json:"event"`    // "summary"
	Frames   int               `json:"frames"`   // frames in the file
	Segments int               `json:"segments"` // SCLP segments dissected
	Messages int               `json:"messages"` // messages reassembled
	Drops    map[string]uint64 `json:"drops"`    // non-zero drop counters by reason name
	// Skipped counts frames that are not SCLP.
	Skipped int `json:"skipped"`
	// Truncated is set when the file ended inside a record.
	Truncated bool `json:"truncated,omitempty"`
}

// Kind implements Event.
func (*Segment) Kind() string { return "segment" }

// Kind implements Event.
func (*Message) Kind() string { return "message" }

// Kind implements Event.
func (*Drop) Kind() string { return "drop" }

// Kind implements Event.
func (*Summary) Kind() string { return "summary" }
