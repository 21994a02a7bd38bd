package dissect

import "github.com/sclp-ovs/sclp-ovs/offload/sclp"

// splitGRO finds the segment length of a UDP payload that holds several SCLP segments back to
// back: what a capture shows after the receiver's UDP GRO merged datagrams (or before the
// sender's UDP GSO split them). All segments but the last have the same length L (header
// included). It returns 0 when b is a single segment.
//
// A candidate L is accepted only if every header at a multiple of L carries the first
// header's ports and fits the messages seen so far in b: a segment of a message already seen
// in b continues it (same identification, no F, and its remaining count a whole number of
// L-byte segments below that message's previous remaining minus this segment's payload: the
// sender may keep some of a message's segments for its next send); any other segment must be
// a first segment (F) of a new message, except at offset 0, which may continue a message
// begun in an earlier datagram. A sender that packs the segments of consecutive messages into
// one UDP GSO send (offload/udp: the held end of one message, then the next message's
// segments, then the first one's short last segment) gives exactly such batches. A single
// segment whose payload happens to satisfy that for the whole payload is, for practical
// purposes, impossible.
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

// maxBatchMessages bounds the messages of one batch (a UDP GSO send or GRO batch holds at
// most 64 segments).
const maxBatchMessages = 64

// chainOK checks that b is segments of length l (the last may be shorter), each continuing a
// message seen before it in b or starting one; the first may continue one from an earlier
// datagram.
func chainOK(b []byte, l int) bool {
	var msgs [maxBatchMessages]struct {
		id  uint32
		rem int
	}
	n := 0
	var h0 sclp.Header
	_ = h0.UnmarshalBinary(b)
	msgs[0].id, msgs[0].rem = h0.ID, int(h0.Remaining)
	n = 1
	for off := l; off < len(b); off += l {
		var h sclp.Header
		if h.UnmarshalBinary(b[off:]) != nil || h.SrcPort != h0.SrcPort || h.DstPort != h0.DstPort {
			return false
		}
		chunk := min(l, len(b)-off) - sclp.HeaderLen // this segment's payload
		seen := -1
		for i := range n {
			if msgs[i].id == h.ID {
				seen = i
			}
		}
		switch {
		case seen >= 0:
			// A later segment of the message: its offset is a whole number of segments
			// after the previous one's (the sender may hold some back for its next send).
			gap := msgs[seen].rem - chunk - int(h.Remaining)
			if h.First || gap < 0 || gap%(l-sclp.HeaderLen) != 0 {
				return false
			}
			msgs[seen].rem = int(h.Remaining)
		case !h.First || n == len(msgs):
			// Only the segment at offset 0 may continue a message begun in an earlier
			// datagram (the sender's held segments lead its send); any later new message
			// starts with its first segment.
			return false
		case !vxlanAt(b[off+sclp.HeaderLen : off+sclp.HeaderLen+chunk]):
			return false // a first segment carries the VXLAN header
		default:
			msgs[n].id, msgs[n].rem = h.ID, int(h.Remaining)
			n++
		}
	}
	return true
}

// vxlanAt reports whether b starts with a valid VXLAN header.
func vxlanAt(b []byte) bool {
	_, _, err := sclp.ParseVXLAN(b)
	return err == nil
}
