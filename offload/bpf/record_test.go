package bpf

import (
	"bytes"
	"errors"
	"io"
	"testing"
)

func TestParseRecord(t *testing.T) {
	pkt := []byte{0x45, 1, 2, 3, 4, 5, 6}
	b := AppendRecord(nil, Record{Reason: ReasonMultiSegment, Ifindex: 7, Flags: FlagChecksumVerified, Packet: pkt})
	b = append(b, 0, 0, 0) // ring padding
	r, err := ParseRecord(b)
	if err != nil {
		t.Fatal(err)
	}
	if r.Reason != ReasonMultiSegment || r.Ifindex != 7 || !r.ChecksumVerified() || !bytes.Equal(r.Packet, pkt) {
		t.Fatalf("%+v", r)
	}
	if _, err := ParseRecord(b[:RecordHeaderLen-1]); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("short header: %v", err)
	}
	if _, err := ParseRecord(b[:RecordHeaderLen+len(pkt)-1]); !errors.Is(err, ErrBadRecord) {
		t.Fatalf("short packet: %v", err)
	}
	if allocs := testing.AllocsPerRun(100, func() { _, _ = ParseRecord(b) }); allocs != 0 {
		t.Fatalf("ParseRecord allocates %v times", allocs)
	}
}

func TestReasonString(t *testing.T) {
	for r, want := range map[Reason]string{ReasonMultiSegment: "multi_segment", ReasonTooLarge: "too_large",
		ReasonMergedRun: "merged_run", 9: "reason_9"} {
		if r.String() != want {
			t.Errorf("%d: %q", r, r.String())
		}
	}
}

func TestStatsNames(t *testing.T) {
	var s Stats
	f := s.fields()
	for i := range f {
		*f[i] = uint64(i + 1)
	}
	m := s.Map()
	if len(m) != NumCounters {
		t.Fatalf("%d names for %d counters", len(m), NumCounters)
	}
	if m["tx_messages"] != 1 || m["rx_drop_error"] != 31 || m["rx_exc_merged_run"] != 37 || m["rx_duplicate"] != 38 || s.RxDropUnknownVNI != m["rx_drop_unknown_vni"] {
		t.Fatalf("names out of order: %v", m)
	}
	if d := s.Sub(s); d != (Stats{}) {
		t.Fatalf("sub: %+v", d)
	}
}

func FuzzParseRecord(f *testing.F) {
	f.Add(AppendRecord(nil, Record{Reason: ReasonMultiSegment, Ifindex: 3, Flags: 1, Packet: []byte{0x45, 0, 0, 33}}))
	f.Add([]byte{1, 0, 0, 0, 255, 255, 255, 255})
	f.Fuzz(func(t *testing.T, b []byte) {
		r, err := ParseRecord(b)
		if err != nil {
			return
		}
		again := AppendRecord(nil, r)
		if !bytes.Equal(again, b[:RecordHeaderLen+len(r.Packet)]) {
			t.Fatalf("round trip differs")
		}
	})
}
