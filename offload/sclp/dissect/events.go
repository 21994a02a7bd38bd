package dissect

// Event is one line of output: *Segment, *Message, *Drop or *Summary.
type Event interface {
	// Kind returns the value of the "event" field.
	Kind() string
}

// Segment reports one SCLP segment as it was captured.
type Segment struct {
	Event      string `json:"event"` // "segment"
	Frame      int    `json:"frame"` // 1-based frame number in the file
	Src        string `json:"src"`
	Dst        string `json:"dst"`
	SrcPort    uint16 `json:"sport"` // SCLP source port
	DstPort    uint16 `json:"dport"` // SCLP destination port
	ID         uint32 `json:"id"`    // identification word with bit 0 cleared
	First      bool   `json:"first"`
	Remaining  int    `json:"remaining"`
	Len        int    `json:"len"` // SCLP payload bytes
	ChecksumOK bool   `json:"checksum_ok"`
	// UDPSrcPort and UDPDstPort are the outer UDP ports of SCLP in UDP (absent natively).
	UDPSrcPort uint16 `json:"udp_sport,omitempty"`
	UDPDstPort uint16 `json:"udp_dport,omitempty"`
	// ChecksumPartial is set for a UDP-mode segment whose UDP checksum was left to offload
	// (the capture shows only the pseudo-header sum): its bytes could not be verified.
	ChecksumPartial bool `json:"checksum_partial,omitempty"`
}

// Message reports one completely reassembled message.
type Message struct {
	Event   string `json:"event"` // "message"
	Src     string `json:"src"`
	Dst     string `json:"dst"`
	SrcPort uint16 `json:"sport"`
	DstPort uint16 `json:"dport"`
	ID      uint32 `json:"id"`
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
	Event   string `json:"event"` // "drop"
	Frame   int    `json:"frame"`
	Reason  string `json:"reason"`
	Src     string `json:"src,omitempty"`
	Dst     string `json:"dst,omitempty"`
	SrcPort uint16 `json:"sport,omitempty"`
	DstPort uint16 `json:"dport,omitempty"`
	ID      uint32 `json:"id,omitempty"`
}

// Summary closes the output.
type Summary struct {
	Event    string            `json:"event"` // "summary"
	Frames   int               `json:"frames"`
	Segments int               `json:"segments"`
	Messages int               `json:"messages"`
	Drops    map[string]uint64 `json:"drops"`
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
