package cli

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"syscall"
	"time"

	ucli "github.com/urfave/cli/v2"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// Version is the sclp-ovs version, set at link time.
var Version = "dev"

// Exit codes.
const (
	ExitOK      = 0 // success
	ExitFailure = 1 // runtime failure: OVSDB unreachable, missing bridge, duplicate peer, no agent, timeout
	ExitUsage   = 2 // usage error: wrong arguments, unknown flag or option, malformed value
)

// UsageError is an error in how the command was called (exit code 2).
type UsageError struct{ Err error }

// Error returns the message of the wrapped error.
func (e *UsageError) Error() string { return e.Err.Error() }

// Unwrap returns the wrapped error.
func (e *UsageError) Unwrap() error { return e.Err }

func usagef(format string, args ...any) error {
	return &UsageError{Err: fmt.Errorf(format, args...)}
}

// ExitCode maps an error returned by a command to the process exit code.
func ExitCode(err error) int {
	switch {
	case err == nil:
		return ExitOK
	case errors.As(err, new(*UsageError)), errors.Is(err, controller.ErrBadOption):
		return ExitUsage
	}
	return ExitFailure
}

// Main runs the sclp-ovs command line with the real implementations and returns the process
// exit code.
func Main(args []string) int {
	d := RealDeps()
	return Run(d, args)
}

// Run runs the command line with deps and returns the exit code. Errors are printed to
// deps.Stderr as one line "sclp-ovs: ...".
func Run(d Deps, args []string) int {
	d.fill()
	if n := len(args); n >= 2 && args[n-1] == "--generate-bash-completion" && strings.HasPrefix(args[n-2], "-") {
		d.completingFlag = true
	}
	var notFound error
	app := NewApp(d)
	app.CommandNotFound = func(c *ucli.Context, name string) {
		notFound = usagef("unknown command %q (see sclp-ovs --help)", name)
	}
	err := app.Run(args)
	if err == nil {
		err = notFound
	}
	if err != nil {
		fmt.Fprintln(d.Stderr, "sclp-ovs:", err)
	}
	return ExitCode(err)
}

func (d *Deps) fill() {
	if d.Stdout == nil {
		d.Stdout = os.Stdout
	}
	if d.Stderr == nil {
		d.Stderr = os.Stderr
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	if d.Counters == nil {
		d.Counters = func(string) map[string]uint64 { return nil }
	}
	if d.Log == nil {
		d.Log = slog.New(slog.NewTextHandler(d.Stderr, nil))
	}
}

func onUsageError(c *ucli.Context, err error, isSubcommand bool) error {
	return &UsageError{Err: err}
}

// NewApp builds the urfave/cli application over deps.
func NewApp(d Deps) *ucli.App {
	d.fill()
	app := &ucli.App{
		Name:                 "sclp-ovs",
		Usage:                "VXLAN over SCLP tunnel ports for Open vSwitch",
		Version:              Version,
		Writer:               d.Stdout,
		ErrWriter:            d.Stderr,
		EnableBashCompletion: true,
		HideVersion:          true,
		OnUsageError:         onUsageError,
		ExitErrHandler:       func(*ucli.Context, error) {},
		Flags: []ucli.Flag{
			&ucli.StringFlag{Name: "db", Value: defaultDB(), Usage: "OVSDB endpoint (unix:PATH or tcp:IP:PORT); the default follows OVS_RUNDIR like ovs-vsctl"},
		},
		Commands: []*ucli.Command{
			addPortCommand(d), delPortCommand(d), listPortsCommand(d), showCommand(d), statsCommand(d),
			agentCommand(d), versionCommand(), completionCommand(),
		},
	}
	app.Commands = append(app.Commands, extraCommands()...)
	for _, c := range app.Commands {
		setUsageHandler(c)
	}
	return app
}

func setUsageHandler(c *ucli.Command) {
	c.OnUsageError = onUsageError
	for _, s := range c.Subcommands {
		setUsageHandler(s)
	}
}

// extraCommands are commands defined in other files of this package when they exist
// (pcap, from the protocol library's owner).
var extraCommandFuncs []func() *ucli.Command

func extraCommands() []*ucli.Command {
	var out []*ucli.Command
	for _, f := range extraCommandFuncs {
		out = append(out, f())
	}
	return out
}

func versionCommand() *ucli.Command {
	return &ucli.Command{
		Name:  "version",
		Usage: "print the version",
		Action: func(c *ucli.Context) error {
			if c.NArg() > 0 {
				return usagef("version takes no arguments")
			}
			fmt.Fprintln(c.App.Writer, "sclp-ovs", Version)
			return nil
		},
	}
}

// stopSignals are the signals that end the agent cleanly.
var stopSignals = []os.Signal{os.Interrupt, syscall.SIGTERM}

func writeln(w io.Writer, format string, args ...any) { fmt.Fprintf(w, format+"\n", args...) }
