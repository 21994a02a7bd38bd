package pcapfile

import (
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"time"
)

// pcapng block types this reader interprets.
const (
	blockSHB = 0x0A0D0D0A
	blockIDB = 1
	blockSPB = 3
	blockEPB = 6
)

// ngIface is a pcapng interface description: link type, snaplen and timestamp resolution.
type ngIface struct {
	link    LinkType
	snaplen uint32
	// units per second of its timestamps
	tsPerSec uint64
}

// startNG reads the first section header block.
func (pr *Reader) startNG() error {
	pr.next = pr.nextNG
	pr.ifaces = []ngIface{}
	typ, body, err := pr.readBlockWithOrder(ErrNotPcap)
	if err != nil {
		return err
	}
	if typ != blockSHB {
		return fmt.Errorf("first block %#x: %w", typ, ErrNotPcap)
	}
	_ = body
	return nil
}

// readBlockWithOrder reads a section header block, learning the byte order from it. A bad
// byte-order magic is reported as errBad: ErrNotPcap for the first section, ErrCorrupt later.
func (pr *Reader) readBlockWithOrder(errBad error) (uint32, []byte, error) {
	h, err := pr.read(12)
	if err != nil {
		return 0, nil, fmt.Errorf("read section header: %w", truncated(err))
	}
	switch binary.LittleEndian.Uint32(h[8:]) {
	case ngByteOrder:
		pr.order = binary.LittleEndian
	default:
		if binary.BigEndian.Uint32(h[8:]) != ngByteOrder {
			return 0, nil, fmt.Errorf("section byte-order magic: %w", errBad)
		}
		pr.order = binary.BigEndian
	}
	total := pr.order.Uint32(h[4:])
	if total < 28 || total > maxRecord || total%4 != 0 {
		return 0, nil, fmt.Errorf("section header of %d bytes: %w", total, ErrCorrupt)
	}
	body, err := pr.read(int(total) - 12)
	if err != nil {
		return 0, nil, fmt.Errorf("read section header: %w", truncated(err))
	}
	pr.ifaces = pr.ifaces[:0] // interfaces are per section
	return blockSHB, body, nil
}

// nextNG reads blocks until a packet block.
func (pr *Reader) nextNG() (Packet, error) {
	for {
		peek, err := pr.r.Peek(8)
		if len(peek) == 0 && err == io.EOF {
			return Packet{}, io.EOF
		} else if err != nil {
			return Packet{}, fmt.Errorf("read block header: %w", truncated(err))
		}
		if binary.LittleEndian.Uint32(peek) == blockSHB {
			if _, _, err := pr.readBlockWithOrder(ErrCorrupt); err != nil {
				return Packet{}, err
			}
			continue
		}
		typ, total := pr.order.Uint32(peek[0:]), pr.order.Uint32(peek[4:])
		if total < 12 || total > maxRecord || total%4 != 0 {
			return Packet{}, fmt.Errorf("block %#x of %d bytes: %w", typ, total, ErrCorrupt)
		}
		blk, err := pr.read(int(total))
		if err != nil {
			return Packet{}, fmt.Errorf("read block: %w", truncated(err))
		}
		body := blk[8 : total-4]
		switch typ {
		case blockIDB:
			if err := pr.addIface(body); err != nil {
				return Packet{}, err
			}
		case blockEPB:
			return pr.enhanced(body)
		case blockSPB:
			return pr.simple(body)
		}
	}
}

// addIface records an interface description block.
func (pr *Reader) addIface(body []byte) error {
	if len(body) < 8 {
		return fmt.Errorf("interface block of %d bytes: %w", len(body), ErrCorrupt)
	}
	ifc := ngIface{link: LinkType(pr.order.Uint16(body[0:])), snaplen: pr.order.Uint32(body[4:]), tsPerSec: 1_000_000}
	for opts := body[8:]; len(opts) >= 4; {
		code, n := pr.order.Uint16(opts[0:]), int(pr.order.Uint16(opts[2:]))
		if code == 0 || 4+n > len(opts) {
			break
		}
		if code == 9 && n >= 1 { // if_tsresol
			v := opts[4]
			exp := uint64(v & 0x7F)
			if v&0x80 != 0 && exp < 64 {
				ifc.tsPerSec = 1 << exp
			} else if exp <= 19 {
				ifc.tsPerSec = uint64(math.Pow10(int(exp)))
			}
		}
		opts = opts[4+(n+3)&^3:]
	}
	pr.ifaces = append(pr.ifaces, ifc)
	return nil
}

// enhanced decodes an enhanced packet block.
func (pr *Reader) enhanced(body []byte) (Packet, error) {
	if len(body) < 20 {
		return Packet{}, fmt.Errorf("packet block of %d bytes: %w", len(body), ErrCorrupt)
	}
	id := pr.order.Uint32(body[0:])
	ts := uint64(pr.order.Uint32(body[4:]))<<32 | uint64(pr.order.Uint32(body[8:]))
	incl, orig := pr.order.Uint32(body[12:]), pr.order.Uint32(body[16:])
	if int(id) >= len(pr.ifaces) || uint64(incl) > uint64(len(body)-20) {
		return Packet{}, fmt.Errorf("packet block interface %d length %d: %w", id, incl, ErrCorrupt)
	}
	ifc := pr.ifaces[id]
	sec, frac := ts/ifc.tsPerSec, ts%ifc.tsPerSec
	ns := frac * 1_000_000_000 / ifc.tsPerSec
	if ifc.tsPerSec > 1_000_000_000 {
		ns = frac / (ifc.tsPerSec / 1_000_000_000)
	}
	return Packet{Time: time.Unix(int64(sec), int64(ns)).UTC(), LinkType: ifc.link, Data: body[20 : 20+incl], OrigLen: int(orig)}, nil
}

// simple decodes a simple packet block (interface 0, no timestamp).
func (pr *Reader) simple(body []byte) (Packet, error) {
	if len(body) < 4 || len(pr.ifaces) == 0 {
		return Packet{}, fmt.Errorf("simple packet block: %w", ErrCorrupt)
	}
	orig := int(pr.order.Uint32(body[0:]))
	data := body[4:]
	if orig < len(data) {
		data = data[:orig]
	}
	if s := int(pr.ifaces[0].snaplen); s > 0 && len(data) > s {
		data = data[:s]
	}
	return Packet{LinkType: pr.ifaces[0].link, Data: data, OrigLen: orig}, nil
}
