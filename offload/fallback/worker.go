package fallback

import (
	"errors"
	"sync"
	"time"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
)

// Stats are the counters of a Worker or, summed, of a Pipeline.
type Stats struct {
	// Reassembly holds the reassembler's counters: Completed, CompletedBytes, Direct,
	// Buffered, BufferedBytes, BufferedEntries, Peers and Drops indexed by sclp.DropReason
	// (bad_vxlan and unknown_peer are counted there too).
	Reassembly sclp.Stats
	// Pieces counts pieces (segments or merged runs) offered.
	Pieces uint64
	// InjectedFrames and InjectedBytes count frames delivered into tunnel ports.
	InjectedFrames, InjectedBytes uint64
	// InjectErrors counts completed messages whose injection failed (frame too large for
	// the port and not segmentable, or a write error).
	InjectErrors uint64
	// UnknownPort counts completed messages whose (peer, VNI) has no tunnel port.
	UnknownPort uint64
	// LostOnStop counts partial messages discarded when the worker stopped.
	LostOnStop uint64
	// ZeroCopy counts messages that arrived complete and in order within one receive batch
	// and were written straight from it (HandleRun), bypassing the reassembler. They are
	// included in Reassembly.Completed and CompletedBytes (and not in Direct, which counts
	// single-piece messages).
	ZeroCopy uint64
}

// TimedOut returns partial messages expired (timeout, plus orphans never started).
func (s Stats) TimedOut() uint64 {
	return s.Reassembly.Drops[sclp.DropTimeout] + s.Reassembly.Drops[sclp.DropOrphan]
}

// Evicted returns partial messages evicted under the memory caps.
func (s Stats) Evicted() uint64 { return s.Reassembly.Drops[sclp.DropEvicted] }

// Add accumulates o into s (buffer usage adds up across workers).
func (s *Stats) Add(o Stats) {
	r, q := &s.Reassembly, o.Reassembly
	r.Completed += q.Completed
	r.CompletedBytes += q.CompletedBytes
	r.Direct += q.Direct
	r.Buffered += q.Buffered
	r.BufferedBytes += q.BufferedBytes
	r.BufferedEntries += q.BufferedEntries
	r.Peers += q.Peers
	for i := range r.Drops {
		r.Drops[i] += q.Drops[i]
	}
	s.Pieces += o.Pieces
	s.InjectedFrames += o.InjectedFrames
	s.InjectedBytes += o.InjectedBytes
	s.InjectErrors += o.InjectErrors
	s.UnknownPort += o.UnknownPort
	s.LostOnStop += o.LostOnStop
	s.ZeroCopy += o.ZeroCopy
}

// Worker is one receive worker: a reassembler, the port table, and counters. Handle and
// Expire are meant for one goroutine (the worker's), Stats for any; a mutex makes mixed use
// safe.
type Worker struct {
	mu      sync.Mutex
	r       *sclp.Reassembler
	ports   *PortTable
	st      Stats
	zcBytes uint64
	stopped bool
}

// NewWorker returns a worker that reassembles with cfg and delivers through ports.
func NewWorker(cfg sclp.Config, ports *PortTable) (*Worker, error) {
	r, err := sclp.NewReassembler(cfg)
	if err != nil {
		return nil, err
	}
	return &Worker{r: r, ports: ports}, nil
}

// Handle offers one piece at time now; a message it completes is parsed as VXLAN, looked up
// by (Key.Src, VNI) and injected before Handle returns, so p.Payload only needs to stay valid
// for the call. It allocates nothing in the steady state.
func (w *Worker) Handle(now time.Time, p sclp.Piece) sclp.Result {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return sclp.Result{Status: sclp.Dropped, Reason: sclp.DropNone}
	}
	w.st.Pieces++
	m, res := w.r.Add(now, p)
	if res.Status == sclp.Completed {
		w.deliver(m)
		w.r.Release(m)
	}
	return res
}

// Count records a drop that the caller decided (for example a short or bad-checksum segment).
func (w *Worker) Count(reason sclp.DropReason) {
	w.mu.Lock()
	w.r.Count(reason)
	w.mu.Unlock()
}

// deliver injects a completed message.
func (w *Worker) deliver(m sclp.Message) {
	vni, inner, err := sclp.ParseVXLAN(m.Payload)
	if err != nil {
		w.r.Count(sclp.DropBadVXLAN)
		return
	}
	port := w.ports.Lookup(PortKey{Peer: m.Key.Src, VNI: vni})
	if port == nil {
		w.r.Count(sclp.DropUnknownPeer)
		w.st.UnknownPort++
		return
	}
	if err := port.Inject(inner); err != nil {
		w.st.InjectErrors++
		return
	}
	w.st.InjectedFrames++
	w.st.InjectedBytes += uint64(len(inner))
}

// HandleRun delivers a message that arrived as consecutive pieces, complete and in order, in
// one receive batch: chunks are the pieces' payloads in order (the first begins with the VXLAN
// header and must hold the inner L2-L4 headers). It writes them with one scatter write,
// without copying, and reports whether it took the message; on false (the port cannot take
// chunks, or the first chunk is too short) the caller offers the pieces to Handle instead.
// chunks[0] is re-sliced in place.
func (w *Worker) HandleRun(key sclp.Key, chunks [][]byte) bool {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped || len(chunks) == 0 || len(chunks[0]) < sclp.VXLANHeaderLen+54 {
		return false
	}
	vni, inner, err := sclp.ParseVXLAN(chunks[0])
	if err != nil {
		return false // the reassembler path counts it
	}
	port, ok := w.ports.Lookup(PortKey{Peer: key.Src, VNI: vni}).(ChunkPort)
	if !ok {
		return false
	}
	total := 0
	for _, c := range chunks {
		total += len(c)
	}
	first := chunks[0]
	chunks[0] = inner
	if err := port.InjectChunks(chunks); err != nil {
		if errors.Is(err, ErrShortFrame) {
			chunks[0] = first // headers not all in the first chunk: let the reassembler do it
			return false
		}
		w.st.InjectErrors++
	} else {
		w.st.InjectedFrames++
		w.st.InjectedBytes += uint64(total - sclp.VXLANHeaderLen)
	}
	w.st.Pieces += uint64(len(chunks))
	w.st.ZeroCopy++
	w.r.NoteCompleted(key.Src, total) // the peer's eviction credit, as if the reassembler had completed it
	w.zcBytes += uint64(total)
	return true
}

// Expire drops partial messages past their timeout and returns how many.
func (w *Worker) Expire(now time.Time) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.r.Expire(now)
}

// Stats returns a snapshot of the worker's counters.
func (w *Worker) Stats() Stats {
	w.mu.Lock()
	defer w.mu.Unlock()
	s := w.st
	s.Reassembly = w.r.Stats()
	s.Reassembly.Completed += s.ZeroCopy
	s.Reassembly.CompletedBytes += w.zcBytes
	return s
}

// Stop ends the worker: later pieces are ignored, and the partial messages still held are
// reported (and counted in LostOnStop). Stop is idempotent; it returns 0 the second time.
func (w *Worker) Stop() int {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.stopped {
		return 0
	}
	w.stopped = true
	lost := w.r.Stats().BufferedEntries
	w.st.LostOnStop += uint64(lost)
	return lost
}

// PipelineOptions configure a Pipeline.
type PipelineOptions struct {
	// Workers is the number of workers (at least 1).
	Workers int
	// Reassembly configures each worker's reassembler. Its byte and entry caps apply per
	// worker.
	Reassembly sclp.Config
	// Ports is the shared port table (a new empty one if nil).
	Ports *PortTable
}

// Pipeline is the set of receive workers of one datapath, sharing one port table.
type Pipeline struct {
	ports   *PortTable
	workers []*Worker
}

// NewPipeline creates opts.Workers workers.
func NewPipeline(opts PipelineOptions) (*Pipeline, error) {
	if opts.Ports == nil {
		opts.Ports = new(PortTable)
	}
	p := &Pipeline{ports: opts.Ports}
	for range max(opts.Workers, 1) {
		w, err := NewWorker(opts.Reassembly, opts.Ports)
		if err != nil {
			return nil, err
		}
		p.workers = append(p.workers, w)
	}
	return p, nil
}

// Ports returns the shared port table.
func (p *Pipeline) Ports() *PortTable { return p.ports }

// Workers returns the workers; give each to exactly one goroutine.
func (p *Pipeline) Workers() []*Worker { return p.workers }

// Stats returns the sum over all workers.
func (p *Pipeline) Stats() Stats {
	var s Stats
	for _, w := range p.workers {
		s.Add(w.Stats())
	}
	return s
}

// Stop stops every worker and returns the number of partial messages lost.
func (p *Pipeline) Stop() int {
	n := 0
	for _, w := range p.workers {
		n += w.Stop()
	}
	return n
}
