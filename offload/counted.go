package offload

import (
	"sync/atomic"

	"github.com/sclp-ovs/sclp-ovs/offload/fallback"
)

// InjectCounts are the frames and bytes a tunnel port's userspace injection delivered.
type InjectCounts struct {
	Frames, Bytes uint64
}

// CountedPort is a fallback.ChunkPort (a tunnel port's injector) that counts the frames it
// delivered, so that mode=ip can report its userspace deliveries per port (the fallback
// pipeline counts per host). Counting costs two atomic adds per frame and allocates nothing.
type CountedPort struct {
	// Port is the injector, e.g. a *fallback.Injector.
	Port fallback.ChunkPort

	frames, bytes atomic.Uint64
}

var _ fallback.ChunkPort = (*CountedPort)(nil)

// Inject delivers frame through Port and counts it if that succeeded.
func (p *CountedPort) Inject(frame []byte) error {
	n := len(frame) // Inject may rewrite the frame, never its length
	if err := p.Port.Inject(frame); err != nil {
		return err
	}
	p.frames.Add(1)
	p.bytes.Add(uint64(n))
	return nil
}

// InjectChunks delivers the frame in chunks through Port and counts it if that succeeded.
func (p *CountedPort) InjectChunks(chunks [][]byte) error {
	n := 0
	for _, c := range chunks {
		n += len(c)
	}
	if err := p.Port.InjectChunks(chunks); err != nil {
		return err
	}
	p.frames.Add(1)
	p.bytes.Add(uint64(n))
	return nil
}

// Counts returns the frames and bytes delivered so far.
func (p *CountedPort) Counts() InjectCounts {
	return InjectCounts{Frames: p.frames.Load(), Bytes: p.bytes.Load()}
}
