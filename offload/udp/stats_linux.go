//go:build linux

package udp

import "github.com/sclp-ovs/sclp-ovs/offload/fallback"

// PortStats are the counters of one tunnel port.
type PortStats struct {
	// TxFrames and TxBytes count frames read from the tunnel port and sent; TxMessages the
	// SCLP messages (one per frame, one per datagram of a UDP GSO frame) and TxSegments the
	// SCLP segments (UDP datagrams) sent.
	TxFrames, TxBytes, TxMessages, TxSegments uint64
	// TxTooLarge counts frames above sclp.MaxMessageLen; TxUnsupportedGSO frames with a GSO
	// type other than TCPv4/TCPv6/UDP-L4 (or a UDP GSO frame that is not UDP over IP); TxSendErrors failed sendmsg calls;
	// TxTruncated frames larger than the read buffer.
	TxTooLarge, TxUnsupportedGSO, TxSendErrors, TxTruncated uint64
	// TxBackpressureWaits counts the times a worker waited for room in the underlay socket
	// or queue instead of dropping.
	TxBackpressureWaits uint64
	// TxSocketDrops counts frames the kernel dropped at the tunnel-port packet socket
	// because the workers did not read fast enough (PACKET_STATISTICS).
	TxSocketDrops uint64
	// RxInjectedFrames, RxInjectedBytes and RxInjectErrors count frames delivered into the
	// tunnel port.
	RxInjectedFrames, RxInjectedBytes, RxInjectErrors uint64
	// RxFastFrames and RxFastBytes count the one-segment messages the tc-BPF fast path
	// delivered into the tunnel port (not counted in RxInjected*) and their frame bytes.
	RxFastFrames, RxFastBytes uint64
	// TxFastFrames and TxFastBytes count the frames the tc-BPF fast path sent as
	// one-segment messages (not counted in TxFrames) and their bytes.
	TxFastFrames, TxFastBytes uint64
	// TxFramesPerWorker counts the frames each transmit worker (fanout member) sent: how
	// PACKET_FANOUT_HASH spread the port's flows.
	TxFramesPerWorker []uint64
}

// Stats are the datapath's counters.
type Stats struct {
	// Ports holds per-port counters by port name.
	Ports map[string]PortStats
	// RxDatagrams counts recvmsg results (GRO batches), RxSegments the SCLP segments in them,
	// RxBytes their bytes, RxShort segments shorter than an SCLP header, RxUnknownPeer
	// batches from an address that no port has as peer (dropped before reassembly).
	RxDatagrams, RxSegments, RxBytes, RxShort, RxUnknownPeer uint64
	// RxSocketDrops counts datagrams (GRO batches: each may hold many segments) the kernel
	// dropped because a receive socket was full (SO_RXQ_OVFL).
	RxSocketDrops uint64
	// RxSegmentsPerWorker counts the segments each receive worker took, over all listening
	// addresses in worker order: how SO_REUSEPORT spread the flows.
	RxSegmentsPerWorker []uint64
	// FastPath holds the tc-BPF fast path's counters (zero when it is off or unavailable).
	FastPath FastPathStats
	// Reassembly sums the receive workers' fallback statistics (reassembly, drops by reason,
	// buffered bytes/entries, unknown ports, lost partial messages on stop).
	Reassembly fallback.Stats
}

// Stats returns a snapshot of every counter, including those of ports and receive groups
// that have stopped.
func (d *Datapath) Stats() Stats {
	d.mu.Lock()
	defer d.mu.Unlock()
	s := d.retired
	s.RxSegmentsPerWorker = append([]uint64(nil), d.retired.RxSegmentsPerWorker...)
	s.Ports = make(map[string]PortStats, len(d.byName))
	for name, p := range d.byName {
		ps := p.stats()
		if d.fast != nil {
			c := d.fast.portStats(name)
			ps.RxFastFrames, ps.RxFastBytes = c.RxFrames, c.RxBytes
			ps.TxFastFrames, ps.TxFastBytes = c.TxFrames, c.TxBytes
		}
		s.Ports[name] = ps
	}
	if d.fast != nil {
		s.FastPath.add(d.fast.stats())
	}
	for _, g := range d.rx {
		s.addRx(g)
	}
	return s
}

func (p *port) stats() PortStats {
	t := &p.tx
	ps := PortStats{TxFrames: t.frames.Load(), TxBytes: t.bytes.Load(), TxMessages: t.messages.Load(),
		TxSegments: t.segments.Load(), TxTooLarge: t.tooLarge.Load(), TxUnsupportedGSO: t.unsupported.Load(),
		TxSendErrors: t.sendErrs.Load(), TxTruncated: t.truncated.Load(),
		TxBackpressureWaits: t.backpressure.Load(), TxSocketDrops: t.socketDrops.Load()}
	if p.inj != nil {
		ps.RxInjectedFrames, ps.RxInjectedBytes, ps.RxInjectErrors = p.inj.Counters()
	}
	for _, w := range p.workers {
		ps.TxFramesPerWorker = append(ps.TxFramesPerWorker, w.frames.Load())
	}
	return ps
}

// addRx adds a receive group's counters.
func (s *Stats) addRx(g *rxGroup) {
	s.RxDatagrams += g.st.datagrams.Load()
	s.RxSegments += g.st.segments.Load()
	s.RxBytes += g.st.bytes.Load()
	s.RxShort += g.st.short.Load()
	s.RxUnknownPeer += g.st.unknownPeer.Load()
	s.RxSocketDrops += g.socketDrops()
	for i, w := range g.workers {
		if i >= len(s.RxSegmentsPerWorker) {
			s.RxSegmentsPerWorker = append(s.RxSegmentsPerWorker, 0)
		}
		s.RxSegmentsPerWorker[i] += w.segments.Load()
	}
	s.Reassembly.Add(g.pipe.Stats())
}

// addGroup folds a stopped group's counters into the retired totals (buffer usage is zero).
func (s *Stats) addGroup(g *rxGroup) {
	s.addRx(g)
	s.Reassembly.Reassembly.BufferedBytes, s.Reassembly.Reassembly.BufferedEntries = 0, 0
	s.Reassembly.Reassembly.Peers = 0
}
