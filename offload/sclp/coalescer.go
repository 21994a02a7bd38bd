package sclp

import "fmt"

// Coalescer is stage 1 of SCLP receive: it merges consecutive pieces of one message into a
// run, like GRO, so the Reassembler sees fewer, larger pieces. A piece continues the held run
// when it has the same key, is not a first piece, and new.Remaining + len(new.Payload) equals
// the run's Remaining. A merged run is again a valid Piece.
//
// The held piece aliases the caller's payload until a second piece merges into it; then both
// are copied into the coalescer's own run buffer. So a piece's payload must stay valid until
// the next call to Add or Flush, and a returned piece is valid only until then. A Coalescer
// is not safe for concurrent use. It allocates only its run buffer, once.
type Coalescer struct {
	max    int
	buf    []byte
	run    Piece
	held   bool
	merged bool
}

// NewCoalescer returns a coalescer whose runs hold at most maxRun payload bytes (0 means
// MaxMessageLen). It returns an error wrapping ErrBadConfig if maxRun is negative or larger
// than MaxMessageLen.
func NewCoalescer(maxRun int) (*Coalescer, error) {
	if maxRun == 0 {
		maxRun = MaxMessageLen
	}
	if maxRun < 0 || maxRun > MaxMessageLen {
		return nil, fmt.Errorf("coalescer: run limit %d: %w", maxRun, ErrBadConfig)
	}
	return &Coalescer{max: maxRun}, nil
}

// Add offers p. If p continues the held run it is merged and Add returns ok false, unless the
// run is now complete up to the end of its message (Remaining 0), in which case the run is
// returned at once. Otherwise the held run, if any, is returned (ok true) and p is held.
func (c *Coalescer) Add(p Piece) (out Piece, ok bool) {
	if c.held && c.continues(p) {
		c.merge(p)
		if c.run.Remaining == 0 {
			return c.Flush()
		}
		return Piece{}, false
	}
	out, ok = c.Flush()
	c.run, c.held, c.merged = p, true, false
	return out, ok
}

// continues reports whether p extends the held run.
func (c *Coalescer) continues(p Piece) bool {
	return !p.First && len(p.Payload) > 0 && p.Key == c.run.Key &&
		p.Remaining+len(p.Payload) == c.run.Remaining &&
		len(c.run.Payload)+len(p.Payload) <= c.max
}

// merge appends p to the held run, moving the run into the run buffer first.
func (c *Coalescer) merge(p Piece) {
	if c.buf == nil {
		c.buf = make([]byte, 0, c.max)
	}
	if !c.merged {
		c.buf = append(c.buf[:0], c.run.Payload...)
		c.merged = true
	}
	c.buf = append(c.buf, p.Payload...)
	c.run.Payload = c.buf
	c.run.Remaining = p.Remaining
}

// Flush returns the held run, if any, and holds nothing afterwards. Call it at the end of a
// batch of pieces.
func (c *Coalescer) Flush() (Piece, bool) {
	if !c.held {
		return Piece{}, false
	}
	out := c.run
	c.run, c.held = Piece{}, false
	return out, true
}
