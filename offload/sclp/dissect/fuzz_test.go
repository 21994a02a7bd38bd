package dissect

import (
	"bytes"
	"testing"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// FuzzRun dissects arbitrary captures: no panic, a summary always last, and the summary's
// counts consistent with the events.
func FuzzRun(f *testing.F) {
	c := newCapture(f)
	for _, p := range segments(f, vxlanMessage(3, 3000), 8, 0) {
		c.add(time.Millisecond, p)
	}
	for _, p := range segments(f, vxlanMessage(4, 2000), 10, 4795) {
		c.add(time.Millisecond, p)
	}
	f.Add(c.buf.Bytes())
	f.Fuzz(func(t *testing.T, file []byte) {
		var events []Event
		sum, err := Run(bytes.NewReader(file), Options{UDPPort: 4795, Config: sclp.Config{MaxEntries: 8, MaxBytes: 4 * sclp.MaxMessageLen}}, func(e Event) {
			events = append(events, e)
		})
		if err != nil {
			return
		}
		if len(events) == 0 || events[len(events)-1].Kind() != "summary" {
			t.Fatal("no summary last")
		}
		segs, msgs := 0, 0
		for _, e := range events {
			switch e.(type) {
			case *Segment:
				segs++
			case *Message:
				msgs++
			}
		}
		if segs != sum.Segments || msgs != sum.Messages || sum.Segments+sum.Skipped > sum.Frames {
			t.Fatalf("summary %+v vs %d segments %d messages", sum, segs, msgs)
		}
	})
}
