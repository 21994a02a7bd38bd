package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
)

// IperfResult is what the harness takes from iperf3's JSON output (-J).
type IperfResult struct {
	// Gbps is the receiver's goodput: sum_received for TCP; for UDP the sender's rate minus
	// the lost share (iperf3 3.12 reports UDP in "sum").
	Gbps float64
	// LossPct is the UDP loss: the share of bytes sent that the server did not receive
	// (iperf3's lost_percent when the byte counts are missing; 0 for TCP).
	LossPct float64
	// LocalCPU and RemoteCPU are the client's and the server's total CPU in percent of one
	// core (iperf3's getrusage).
	LocalCPU, RemoteCPU float64
	// SentBytes is what the client sent (sum_sent), 0 when iperf3 did not say.
	SentBytes float64
}

// ServerResult is what the iperf3 server (-s -1 -J) says it received: the authority on
// goodput. (Seen here: after a UDP run with heavy loss, a client's sum_received claimed more
// bytes than the receiving VM's device had seen.)
type ServerResult struct {
	Bytes, Seconds float64
	// CPU is the server's total CPU in percent of one core.
	CPU float64
}

// Gbps is the server's goodput.
func (s ServerResult) Gbps() float64 {
	if s.Seconds <= 0 {
		return 0
	}
	return s.Bytes * 8 / s.Seconds / 1e9
}

// ParseIperfServer decodes the JSON an iperf3 server prints with -1 -J.
func ParseIperfServer(out []byte) (ServerResult, error) {
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var j struct {
		Error string `json:"error"`
		End   struct {
			SumReceived *struct {
				Bytes   float64 `json:"bytes"`
				Seconds float64 `json:"seconds"`
			} `json:"sum_received"`
			CPU struct {
				HostTotal float64 `json:"host_total"`
			} `json:"cpu_utilization_percent"`
		} `json:"end"`
	}
	if err := json.Unmarshal(out, &j); err != nil {
		return ServerResult{}, fmt.Errorf("parse iperf3 server json: %w: %.200q", err, out)
	}
	if j.Error != "" {
		return ServerResult{}, fmt.Errorf("%w: server: %s", ErrIperf, j.Error)
	}
	if j.End.SumReceived == nil {
		return ServerResult{}, fmt.Errorf("%w: server: no sum_received", ErrIperf)
	}
	return ServerResult{Bytes: j.End.SumReceived.Bytes, Seconds: j.End.SumReceived.Seconds, CPU: j.End.CPU.HostTotal}, nil
}

// ErrIperf is returned (wrapped) when iperf3's JSON reports an error or no result.
var ErrIperf = errors.New("iperf3 failed")

type iperfJSON struct {
	Error string `json:"error"`
	End   struct {
		SumSent *struct {
			Bytes float64 `json:"bytes"`
		} `json:"sum_sent"`
		SumReceived *struct {
			Bytes         float64 `json:"bytes"`
			BitsPerSecond float64 `json:"bits_per_second"`
		} `json:"sum_received"`
		Sum *struct {
			BitsPerSecond float64 `json:"bits_per_second"`
			LostPercent   float64 `json:"lost_percent"`
			Packets       int64   `json:"packets"`
			LostPackets   int64   `json:"lost_packets"`
		} `json:"sum"`
		CPU struct {
			HostTotal   float64 `json:"host_total"`
			RemoteTotal float64 `json:"remote_total"`
		} `json:"cpu_utilization_percent"`
	} `json:"end"`
}

// ParseIperf decodes iperf3 -J output. Text before the first '{' (warnings on stderr when
// combined) is skipped.
func ParseIperf(out []byte, proto Proto) (IperfResult, error) {
	if i := bytes.IndexByte(out, '{'); i > 0 {
		out = out[i:]
	}
	var j iperfJSON
	if err := json.Unmarshal(out, &j); err != nil {
		return IperfResult{}, fmt.Errorf("parse iperf3 json: %w: %.200q", err, out)
	}
	if j.Error != "" {
		return IperfResult{}, fmt.Errorf("%w: %s", ErrIperf, j.Error)
	}
	r := IperfResult{LocalCPU: j.End.CPU.HostTotal, RemoteCPU: j.End.CPU.RemoteTotal}
	if j.End.SumSent != nil {
		r.SentBytes = j.End.SumSent.Bytes
	}
	switch {
	case proto == TCP && j.End.SumReceived != nil:
		r.Gbps = j.End.SumReceived.BitsPerSecond / 1e9
	case proto == UDP && j.End.Sum != nil:
		r.LossPct = j.End.Sum.LostPercent
		if j.End.SumReceived != nil && j.End.SumReceived.BitsPerSecond > 0 {
			r.Gbps = j.End.SumReceived.BitsPerSecond / 1e9
			// Bytes lost between the sending and the receiving socket. iperf3's own figure
			// counts datagrams by sequence number and under-reports when almost nothing
			// arrives (a 60 KB datagram dies with any one of its IP fragments).
			if j.End.SumSent != nil && j.End.SumSent.Bytes > 0 {
				r.LossPct = max(0, 100*(1-j.End.SumReceived.Bytes/j.End.SumSent.Bytes))
			}
		} else {
			r.Gbps = j.End.Sum.BitsPerSecond / 1e9 * (1 - r.LossPct/100)
		}
	default:
		return r, fmt.Errorf("%w: no end summary in the output", ErrIperf)
	}
	return r, nil
}

// IperfArgs returns the iperf3 client command for point p toward server for secs seconds
// (iperf3 takes whole seconds; at least 1).
// UDP runs unthrottled (-b 0: the highest rate) with 4 MB socket buffers; TCP writes p.WriteBytes
// per call.
func IperfArgs(server string, p Point, secs float64) []string {
	return IperfArgsAt(server, p, secs, 0)
}

// IperfArgsAt is IperfArgs with UDP offered at mbps Mbit/s (iperf3 -b) instead of unthrottled
// when mbps > 0: a run of a sustained-rate search (RateSearch).
func IperfArgsAt(server string, p Point, secs, mbps float64) []string {
	args := []string{"iperf3", "-c", server, "-J", "-i", "0", "-t", strconv.Itoa(max(int(secs+0.5), 1)),
		"-l", strconv.Itoa(p.WriteBytes), "-P", strconv.Itoa(p.Flows), "--connect-timeout", "3000"}
	if p.Proto == UDP {
		rate := "0"
		if mbps > 0 {
			rate = strconv.FormatFloat(mbps, 'f', 0, 64) + "M"
		}
		args = append(args, "-u", "-b", rate, "-w", "4M")
	}
	return args
}
