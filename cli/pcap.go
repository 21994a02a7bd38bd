package cli

import (
	"fmt"
	"os"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/offload/sclp"
	"github.com/sclp-ovs/sclp-ovs/offload/sclp/dissect"
)

func init() { extraCommandFuncs = append(extraCommandFuncs, pcapCommand) }

// pcapCommand is `sclp-ovs pcap FILE`: dissect and reassemble the SCLP traffic of a capture.
func pcapCommand() *ucli.Command {
	def := sclp.DefaultConfig()
	return &ucli.Command{
		Name:      "pcap",
		Usage:     "dissect the SCLP segments of a capture and reassemble its messages",
		ArgsUsage: "FILE",
		Description: "Reads a classic pcap or pcapng capture of underlay traffic (Ethernet, Linux cooked or raw IP),\n" +
			"dissects every SCLP packet (IP protocol 234, or SCLP in UDP to --udp-port), reassembles messages\n" +
			"with the capture's timestamps as the clock, and prints one event per segment, message and drop,\n" +
			"then a summary. Exit status: 0 when the file was read to the end, 2 when it cannot be read.",
		Flags: []ucli.Flag{
			&ucli.BoolFlag{Name: "json", Usage: "print one JSON object per line"},
			&ucli.DurationFlag{Name: "timeout", Value: def.Timeout, Usage: "reassembly timeout of a partial message"},
			&ucli.IntFlag{Name: "max-bytes", Value: def.MaxBytes, Usage: "cap on buffered bytes of partial messages"},
			&ucli.IntFlag{Name: "max-entries", Value: def.MaxEntries, Usage: "cap on partial messages"},
			&ucli.IntFlag{Name: "max-peer-bytes", Value: def.MaxPeerBytes, Usage: "cap on buffered bytes per peer"},
			&ucli.IntFlag{Name: "max-peer-entries", Value: def.MaxPeerEntries, Usage: "cap on partial messages per peer"},
			&ucli.IntFlag{Name: "max-pieces", Value: def.MaxPieces, Usage: "cap on separate byte ranges of one partial message"},
			&ucli.UintFlag{Name: "udp-port", Value: dissect.DefaultUDPPort, Usage: "UDP destination port of SCLP in UDP (0: native SCLP only)"},
			&ucli.BoolFlag{Name: "ignore-checksum", Usage: "reassemble segments whose checksum fails (captures taken on a sender with checksum offload)"},
		},
		Action: runPcap,
	}
}

// runPcap is the action of the pcap command.
func runPcap(c *ucli.Context) error {
	if c.NArg() != 1 {
		return usagef("pcap takes exactly one FILE argument")
	}
	if c.Uint("udp-port") > 0xFFFF {
		return usagef("--udp-port %d is not a port", c.Uint("udp-port"))
	}
	opts := dissect.Options{
		UDPPort: uint16(c.Uint("udp-port")),
		Config: sclp.Config{
			Timeout: c.Duration("timeout"), MaxBytes: c.Int("max-bytes"), MaxEntries: c.Int("max-entries"),
			MaxPeerBytes: c.Int("max-peer-bytes"), MaxPeerEntries: c.Int("max-peer-entries"), MaxPieces: c.Int("max-pieces"),
		},
		IgnoreChecksum: c.Bool("ignore-checksum"),
	}
	if _, err := sclp.NewReassembler(opts.Config); err != nil {
		return usagef("pcap: %v", err)
	}
	f, err := os.Open(c.Args().First())
	if err != nil {
		return &UsageError{Err: ucli.Exit(fmt.Sprintf("pcap: %v", err), ExitUsage)}
	}
	defer f.Close()
	p := dissect.NewPrinter(c.App.Writer, c.Bool("json"))
	if _, err := dissect.Run(f, opts, p.Emit); err != nil {
		_ = p.Flush()
		return &UsageError{Err: ucli.Exit(fmt.Sprintf("pcap %s: %v", c.Args().First(), err), ExitUsage)}
	}
	if err := p.Flush(); err != nil {
		return fmt.Errorf("pcap: write output: %w", err)
	}
	return nil
}
