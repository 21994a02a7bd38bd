package dissect

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
)

// Printer renders events as JSON lines or as a table. Call Flush at the end; the first write
// error is kept and returned by Flush.
type Printer struct {
	w      *bufio.Writer
	json   bool
	header bool
	err    error
}

// NewPrinter returns a printer writing to w: one JSON object per line when jsonLines is set,
// a readable table otherwise.
func NewPrinter(w io.Writer, jsonLines bool) *Printer {
	return &Printer{w: bufio.NewWriter(w), json: jsonLines}
}

// Emit prints one event.
func (p *Printer) Emit(ev Event) {
	if p.err != nil {
		return
	}
	if p.json {
		b, err := json.Marshal(ev)
		if err == nil {
			b = append(b, '\n')
			_, err = p.w.Write(b)
		}
		p.err = err
		return
	}
	p.table(ev)
}

// Flush writes buffered output and returns the first error.
func (p *Printer) Flush() error {
	if err := p.w.Flush(); p.err == nil {
		p.err = err
	}
	return p.err
}

// table prints one event as a table row.
func (p *Printer) table(ev Event) {
	if !p.header {
		p.header = true
		p.printf("%-7s %-8s %-33s %5s %5s %10s %1s %5s %5s %s\n", "FRAME", "EVENT", "SRC -> DST", "SPORT", "DPORT", "ID", "F", "REM", "LEN", "DETAIL")
	}
	switch e := ev.(type) {
	case *Segment:
		f, ok := "-", "checksum ok"
		if e.First {
			f = "F"
		}
		if !e.ChecksumOK {
			ok = "CHECKSUM BAD"
		}
		if e.UDPDstPort != 0 {
			ok += fmt.Sprintf(" udp %d->%d", e.UDPSrcPort, e.UDPDstPort)
		}
		p.printf("%-7d %-8s %-33s %5d %5d %10d %1s %5d %5d %s\n", e.Frame, "segment", e.Src+" -> "+e.Dst, e.SrcPort, e.DstPort, e.ID, f, e.Remaining, e.Len, ok)
	case *Message:
		vni := "-"
		if e.VNI != nil {
			vni = fmt.Sprint(*e.VNI)
		}
		p.printf("%-7d %-8s %-33s %5d %5d %10d %1s %5s %5d vni %s sha256 %s\n", e.Frame, "MESSAGE", e.Src+" -> "+e.Dst, e.SrcPort, e.DstPort, e.ID, "", "", e.Len, vni, e.SHA256[:16])
	case *Drop:
		who := "-"
		if e.Src != "" {
			who = e.Src + " -> " + e.Dst
		}
		p.printf("%-7d %-8s %-33s %5d %5d %10d %1s %5s %5s %s\n", e.Frame, "DROP", who, e.SrcPort, e.DstPort, e.ID, "", "", "", e.Reason)
	case *Summary:
		p.printf("\n%d frames: %d SCLP segments, %d messages reassembled, %d other frames skipped\n", e.Frames, e.Segments, e.Messages, e.Skipped)
		p.printf("drops: %s\n", formatDrops(e.Drops))
		if e.Truncated {
			p.printf("warning: the capture ends inside a record (truncated file)\n")
		}
	}
}

// formatDrops renders drop counters sorted by name, or "none".
func formatDrops(d map[string]uint64) string {
	if len(d) == 0 {
		return "none"
	}
	names := make([]string, 0, len(d))
	for n := range d {
		names = append(names, n)
	}
	sort.Strings(names)
	parts := make([]string, len(names))
	for i, n := range names {
		parts[i] = fmt.Sprintf("%s=%d", n, d[n])
	}
	return strings.Join(parts, " ")
}

func (p *Printer) printf(format string, args ...any) {
	if p.err == nil {
		_, p.err = fmt.Fprintf(p.w, format, args...)
	}
}
