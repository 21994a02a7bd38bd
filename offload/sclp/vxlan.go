package sclp

import (
	"encoding/binary"
	"fmt"
)

// VXLANFlags is the only flags word a VXLAN header may carry: the I bit (VNI valid).
const VXLANFlags = 0x08000000

// MaxVNI is the largest VXLAN network identifier (24 bits).
const MaxVNI = 1<<24 - 1

// PutVXLAN writes the 8-byte VXLAN header for vni into b:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|R|R|R|R|I|R|R|R|            Reserved                           |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                VXLAN Network Identifier (VNI) |   Reserved    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Only the low 24 bits of vni are used. It panics if b is shorter than VXLANHeaderLen.
func PutVXLAN(b []byte, vni uint32) {
	_ = b[VXLANHeaderLen-1]
	binary.BigEndian.PutUint32(b[0:], VXLANFlags)
	binary.BigEndian.PutUint32(b[4:], (vni&MaxVNI)<<8)
}

// ParseVXLAN decodes the VXLAN header at the start of a message and returns the VNI and the
// inner Ethernet frame that follows it. It returns ErrShort if b is shorter than
// VXLANHeaderLen and ErrBadVXLAN unless the flags word is exactly 0x08000000 and the reserved
// low byte of the second word is zero.
func ParseVXLAN(b []byte) (vni uint32, inner []byte, err error) {
	if len(b) < VXLANHeaderLen {
		return 0, nil, fmt.Errorf("parse vxlan: %d bytes: %w", len(b), ErrShort)
	}
	flags := binary.BigEndian.Uint32(b[0:])
	w := binary.BigEndian.Uint32(b[4:])
	if flags != VXLANFlags || w&0xFF != 0 {
		return 0, nil, fmt.Errorf("parse vxlan: flags %#08x word %#08x: %w", flags, w, ErrBadVXLAN)
	}
	return w >> 8, b[VXLANHeaderLen:], nil
}
