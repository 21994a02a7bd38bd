package offload

import (
	"errors"
	"testing"
)

// fakePort is a handwritten fallback.ChunkPort that fails when told to.
type fakePort struct{ err error }

func (f *fakePort) Inject([]byte) error         { return f.err }
func (f *fakePort) InjectChunks([][]byte) error { return f.err }

func TestCountedPort(t *testing.T) {
	f := &fakePort{}
	p := &CountedPort{Port: f}
	frame := make([]byte, 1000)
	if err := p.Inject(frame); err != nil {
		t.Fatal(err)
	}
	if err := p.InjectChunks([][]byte{frame[:100], frame[:400]}); err != nil {
		t.Fatal(err)
	}
	f.err = errors.New("write: no buffer space")
	if err := p.Inject(frame); err == nil {
		t.Fatal("error swallowed")
	}
	if err := p.InjectChunks([][]byte{frame}); err == nil {
		t.Fatal("error swallowed")
	}
	if got, want := p.Counts(), (InjectCounts{Frames: 2, Bytes: 1500}); got != want {
		t.Fatalf("counts %+v, want %+v (failed injections not counted)", got, want)
	}
	f.err = nil
	if n := testing.AllocsPerRun(100, func() { _ = p.Inject(frame) }); n != 0 {
		t.Errorf("Inject allocates %v per frame", n)
	}
}

// BenchmarkCountedPort measures what counting adds per frame (a fake port that does
// nothing, so the difference is all the wrapper's; an injection itself costs microseconds).
func BenchmarkCountedPort(b *testing.B) {
	frame := make([]byte, 1514)
	for _, c := range []struct {
		name string
		port interface{ Inject([]byte) error }
	}{{"bare", &fakePort{}}, {"counted", &CountedPort{Port: &fakePort{}}}} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				_ = c.port.Inject(frame)
			}
		})
	}
}
