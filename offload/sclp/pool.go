package sclp

// Buffer size classes of the reassembler: 1 KiB doubling to 32 KiB, then MaxMessageLen.
// A partial message whose first piece arrived first takes the smallest class that holds it;
// one that starts with a later piece (size unknown) takes the largest.
const (
	minClassShift = 10
	numClasses    = 7
	maxClass      = numClasses - 1
)

// classSize returns the byte size of class c.
func classSize(c int) int {
	if c >= maxClass {
		return MaxMessageLen
	}
	return 1 << (minClassShift + c)
}

// classFor returns the smallest class holding n bytes.
func classFor(n int) int {
	for c := 0; c < maxClass; c++ {
		if n <= classSize(c) {
			return c
		}
	}
	return maxClass
}

// buffer is a pooled message buffer. Pieces are placed by their distance from the message's
// end (Remaining), which a later piece knows before the message size is known; entry.end says
// where in the buffer the message ends.
type buffer struct {
	b     []byte
	class int8
	out   bool // handed out in a Message, awaiting Release
}

// bufferPool keeps released buffers per class for reuse, at most maxFree per class.
type bufferPool struct {
	free    [numClasses][]*buffer
	maxFree int
}

// get returns a buffer of class c, reusing a free one when possible.
func (p *bufferPool) get(c int) *buffer {
	if n := len(p.free[c]); n > 0 {
		b := p.free[c][n-1]
		p.free[c][n-1] = nil
		p.free[c] = p.free[c][:n-1]
		return b
	}
	return &buffer{b: make([]byte, classSize(c)), class: int8(c)}
}

// put returns b to the pool (or lets the garbage collector have it when the class is full).
func (p *bufferPool) put(b *buffer) {
	b.out = false
	c := int(b.class)
	if len(p.free[c]) < p.maxFree {
		p.free[c] = append(p.free[c], b)
	}
}
