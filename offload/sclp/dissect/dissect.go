package dissect

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp/pcapfile"
)

// DefaultUDPPort is the UDP port of SCLP in UDP that Run dissects by default.
const DefaultUDPPort = 4795

// Options configures Run.
type Options struct {
	// UDPPort is the destination port of SCLP in UDP; 0 dissects native SCLP only.
	UDPPort uint16
	// Config holds the reassembly timeout and caps; its OnDrop is replaced by Run.
	Config sclp.Config
	// IgnoreChecksum reassembles segments whose checksum fails (still reported as
	// checksum_ok false), for captures taken on a sender with checksum offload.
	IgnoreChecksum bool
}

// ErrOpen reports a capture that cannot be read at all (not a pcap file, empty, or an I/O
// error before the first record).
var ErrOpen = errors.New("dissect: cannot read capture")

// run is the state of one dissection.
type run struct {
	o       Options
	emit    func(Event)
	r       *sclp.Reassembler
	last    map[sclp.Key]int // last frame that contributed to each partial message
	sum     Summary
	frame   int
	nowTime time.Time
}

// Run dissects the capture in src, calling emit for every event in order, the summary last,
// and returns the summary. It returns an error wrapping ErrOpen if src is not a readable
// capture; a file that ends inside a record is reported in Summary.Truncated, not as an error.
func Run(src io.Reader, o Options, emit func(Event)) (Summary, error) {
	pr, err := pcapfile.NewReader(src)
	if err != nil {
		return Summary{}, fmt.Errorf("%w: %w", ErrOpen, err)
	}
	st := &run{o: o, emit: emit, last: map[sclp.Key]int{}}
	cfg := o.Config
	cfg.OnDrop = st.onDrop
	if st.r, err = sclp.NewReassembler(cfg); err != nil {
		return Summary{}, err
	}
	for {
		p, err := pr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			if !errors.Is(err, pcapfile.ErrTruncated) && !errors.Is(err, pcapfile.ErrCorrupt) {
				return st.sum, fmt.Errorf("read frame %d: %w", st.frame+1, err)
			}
			st.sum.Truncated = true
			break
		}
		st.frame++
		st.packet(p)
	}
	st.r.Expire(st.nowTime.Add(st.r.Config().Timeout))
	return st.finish(), nil
}

// finish fills in and emits the summary.
func (st *run) finish() Summary {
	s := st.r.Stats()
	st.sum.Event, st.sum.Frames = "summary", st.frame
	st.sum.Drops = map[string]uint64{}
	for reason, n := range s.Drops {
		if n != 0 {
			st.sum.Drops[sclp.DropReason(reason).String()] = n
		}
	}
	out := st.sum
	st.emit(&out)
	return out
}

// onDrop reports a partial message the reassembler discarded.
func (st *run) onDrop(k sclp.Key, why sclp.DropReason, _ int) {
	frame := st.last[k]
	delete(st.last, k)
	st.drop(frame, why, &k)
}

// drop emits a drop event.
func (st *run) drop(frame int, why sclp.DropReason, k *sclp.Key) {
	d := &Drop{Event: "drop", Frame: frame, Reason: why.String()}
	if k != nil {
		d.Src, d.Dst, d.SrcPort, d.DstPort, d.ID = k.Src.String(), k.Dst.String(), k.SrcPort, k.DstPort, k.ID
	}
	st.emit(d)
}

// packet dissects one captured frame.
func (st *run) packet(p pcapfile.Packet) {
	if !p.Time.IsZero() && p.Time.After(st.nowTime) {
		st.nowTime = p.Time
	}
	ip, ok := network(p.LinkType, p.Data)
	if !ok || !st.isSCLP(ip) {
		st.sum.Skipped++
		return
	}
	st.r.Expire(st.nowTime)
	pkt, err := sclp.ParsePacket(ip, sclp.ParseOptions{UDPPort: st.o.UDPPort, Verify: true, AcceptPartial: true})
	csumOK := err == nil
	if errors.Is(err, sclp.ErrChecksum) && !pkt.Src.IsValid() { // IPv4 header checksum
		pkt, err = sclp.ParsePacket(ip, sclp.ParseOptions{UDPPort: st.o.UDPPort})
		if err == nil {
			err = sclp.ErrChecksum
		}
	}
	if err != nil && !errors.Is(err, sclp.ErrChecksum) {
		st.r.Count(sclp.DropShort)
		st.drop(st.frame, sclp.DropShort, nil)
		return
	}
	if pkt.OuterDstPort != 0 {
		st.udpSegments(pkt, ip, csumOK)
		return
	}
	st.one(pkt, csumOK)
}

// one reports and reassembles one segment.
func (st *run) one(pkt sclp.Packet, csumOK bool) {
	st.sum.Segments++
	st.segment(pkt, csumOK)
	if !csumOK && !st.o.IgnoreChecksum {
		st.r.Count(sclp.DropBadChecksum)
		k := pkt.Key()
		st.drop(st.frame, sclp.DropBadChecksum, &k)
		return
	}
	st.reassemble(pkt)
}

// udpSegments handles a UDP-mode packet, which a capture may show holding several segments
// merged by UDP GRO (or not yet split by UDP GSO): each is reported and reassembled on its
// own, with the frame's checksum status.
func (st *run) udpSegments(pkt sclp.Packet, ip []byte, csumOK bool) {
	ihl := int(ip[0]&0x0F) * 4
	ulen := int(binary.BigEndian.Uint16(ip[ihl+4:]))
	payload := ip[ihl+sclp.UDPHeaderLen : ihl+ulen]
	l := splitGRO(payload)
	if l == 0 {
		st.one(pkt, csumOK)
		return
	}
	for off := 0; off < len(payload); off += l {
		seg := payload[off:min(off+l, len(payload))]
		_ = pkt.Header.UnmarshalBinary(seg)
		pkt.Payload = seg[sclp.HeaderLen:]
		st.one(pkt, csumOK)
	}
}

// segment emits the segment event.
func (st *run) segment(p sclp.Packet, csumOK bool) {
	st.emit(&Segment{
		Event: "segment", Frame: st.frame, Src: p.Src.String(), Dst: p.Dst.String(),
		SrcPort: p.Header.SrcPort, DstPort: p.Header.DstPort, ID: p.Header.ID,
		First: p.Header.First, Remaining: int(p.Header.Remaining), Len: len(p.Payload),
		ChecksumOK: csumOK, UDPSrcPort: p.OuterSrcPort, UDPDstPort: p.OuterDstPort,
		ChecksumPartial: p.PartialChecksum,
	})
}

// reassemble feeds a segment to the reassembler and reports the outcome.
func (st *run) reassemble(p sclp.Packet) {
	piece := p.Piece()
	st.last[piece.Key] = st.frame
	m, res := st.r.Add(st.nowTime, piece)
	switch res.Status {
	case sclp.Dropped:
		if _, held := st.r.Holds(piece.Key); !held {
			delete(st.last, piece.Key)
		}
		st.drop(st.frame, res.Reason, &piece.Key)
	case sclp.Completed:
		delete(st.last, piece.Key)
		st.message(m)
		st.r.Release(m)
	}
}

// message emits a message event, or a bad_vxlan drop for a VXLAN message with a bad header.
func (st *run) message(m sclp.Message) {
	k := m.Key
	ev := &Message{Event: "message", Src: k.Src.String(), Dst: k.Dst.String(), SrcPort: k.SrcPort,
		DstPort: k.DstPort, ID: k.ID, Len: len(m.Payload), Frame: st.frame}
	if k.DstPort == sclp.VXLANPort {
		vni, _, err := sclp.ParseVXLAN(m.Payload)
		if err != nil {
			st.r.Count(sclp.DropBadVXLAN)
			st.drop(st.frame, sclp.DropBadVXLAN, &k)
			return
		}
		ev.VNI = &vni
	}
	sum := sha256.Sum256(m.Payload)
	ev.SHA256 = hex.EncodeToString(sum[:])
	st.sum.Messages++
	st.emit(ev)
}

// isSCLP reports whether an IPv4 packet is native SCLP or UDP to the SCLP port, from its
// protocol and port fields only (so truncated SCLP packets still count as SCLP).
func (st *run) isSCLP(ip []byte) bool {
	if len(ip) < sclp.IPv4HeaderLen || ip[0]>>4 != 4 {
		return false
	}
	switch ip[9] {
	case sclp.IPProtocol:
		return true
	case 17:
		ihl := int(ip[0]&0x0F) * 4
		return st.o.UDPPort != 0 && len(ip) >= ihl+4 && binary.BigEndian.Uint16(ip[ihl+2:]) == st.o.UDPPort
	}
	return false
}

// network returns the IPv4 packet inside a captured frame of the given link type.
func network(lt pcapfile.LinkType, b []byte) ([]byte, bool) {
	var et uint16
	switch lt {
	case pcapfile.LinkEthernet:
		t, payload, err := sclp.ParseEthernet(b)
		if err != nil {
			return nil, false
		}
		et, b = t, payload
	case pcapfile.LinkLinuxSLL:
		if len(b) < 16 {
			return nil, false
		}
		et, b = binary.BigEndian.Uint16(b[14:]), b[16:]
	case pcapfile.LinkLinuxSLL2:
		if len(b) < 20 {
			return nil, false
		}
		et, b = binary.BigEndian.Uint16(b[0:]), b[20:]
	case pcapfile.LinkRaw, pcapfile.LinkIPv4:
		et = sclp.EtherTypeIPv4
	default:
		return nil, false
	}
	return b, et == sclp.EtherTypeIPv4
}
