package sclp_test

import (
	"bytes"
	"fmt"
	"net/netip"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// A sender cuts a VXLAN message into segments; a receiver reassembles them in any order.
func Example() {
	msg := make([]byte, sclp.VXLANHeaderLen+2992) // the paper's 3000-byte example
	sclp.PutVXLAN(msg, 42)
	ids := sclp.NewIDGenerator(0x1234)
	base := sclp.Header{SrcPort: sclp.SourcePort(msg[sclp.VXLANHeaderLen:]), DstPort: sclp.VXLANPort, ID: ids.Next()}

	var seg sclp.Segmenter
	if err := seg.Reset(msg, 1500-sclp.IPv4Overhead, base); err != nil {
		panic(err)
	}
	var wire [][]byte
	buf := make([]byte, 1500)
	for {
		n, err := seg.NextInto(buf)
		if err != nil {
			break
		}
		wire = append(wire, bytes.Clone(buf[:n]))
	}

	r, _ := sclp.NewReassembler(sclp.DefaultConfig())
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	for _, i := range []int{2, 0, 1} { // out of order
		var h sclp.Header
		_ = h.UnmarshalBinary(wire[i])
		fmt.Printf("segment first=%v remaining=%d len=%d checksum ok=%v\n",
			h.First, h.Remaining, len(wire[i])-sclp.HeaderLen, sclp.VerifySegment(h, wire[i][sclp.HeaderLen:]))
		p := sclp.Piece{
			Key:   sclp.Key{Src: src, Dst: dst, SrcPort: h.SrcPort, DstPort: h.DstPort, ID: h.ID},
			First: h.First, Remaining: int(h.Remaining), Payload: wire[i][sclp.HeaderLen:],
		}
		if m, res := r.Add(time.Now(), p); res.Status == sclp.Completed {
			vni, inner, _ := sclp.ParseVXLAN(m.Payload)
			fmt.Printf("message vni=%d inner=%d bytes identical=%v\n", vni, len(inner), bytes.Equal(m.Payload, msg))
			r.Release(m)
		}
	}
	// Output:
	// segment first=false remaining=0 len=64 checksum ok=true
	// segment first=true remaining=1532 len=1468 checksum ok=true
	// segment first=false remaining=64 len=1468 checksum ok=true
	// message vni=42 inner=2992 bytes identical=true
}
