package dissect

import "github.com/sclp-ovs/sclp-ovs/offload/sclp"

// splitGRO finds the segment length of a UDP payload that holds several SCLP segments back to
// back: what a capture shows after the receiver's UDP GRO merged datagrams (or before the
// sender's UDP GSO split them). All segments but the last have the same length L (header
// included). It returns 0 when b is a single segment.
//
// A candidate L is accepted only if every header at a multiple of L carries the first
// header's ports and continues the chain: the same identification without F and
// remaining = previous remaining - this segment's payload length, or, right after a segment
// with remaining 0, a first segment (F) of another message. A single segment whose payload happens to satisfy
// that for the whole payload is, for practical purposes, impossible.
func splitGRO(b []byte) int {
	var h0 sclp.Header
	if h0.UnmarshalBinary(b) != nil {
		return 0
	}
	for l := sclp.HeaderLen + 1; l+sclp.HeaderLen <= len(b); l++ {
		// Quick filter on the ports before the full chain check.
		if b[l] != b[0] || b[l+1] != b[1] || b[l+2] != b[2] || b[l+3] != b[3] {
			continue
		}
		if chainOK(b, l) {
			return l
		}
	}
	return 0
}

// chainOK checks that b is segments of length l (the last may be shorter) forming a chain.
func chainOK(b []byte, l int) bool {
	var prev sclp.Header
	_ = prev.UnmarshalBinary(b)
	for off := l; off < len(b); off += l {
		var h sclp.Header
		if h.UnmarshalBinary(b[off:]) != nil || h.SrcPort != prev.SrcPort || h.DstPort != prev.DstPort {
			return false
		}
		chunk := min(l, len(b)-off) - sclp.HeaderLen // this segment's payload
		sameMessage := !h.First && h.ID == prev.ID && int(prev.Remaining)-chunk == int(h.Remaining)
		nextMessage := h.First && prev.Remaining == 0 && h.ID != prev.ID
		if !sameMessage && !nextMessage {
			return false
		}
		prev = h
	}
	return true
}
