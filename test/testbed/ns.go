package testbed

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/vishvananda/netns"
)

// NS is a named network namespace created by NewNS (ip netns add).
type NS struct {
	// Name is the namespace name, usable with `ip netns exec` and `ip -n`.
	Name string
}

// maxPrefix keeps "prefix-xxxxxx" within 15 characters, short enough to be used as a link or
// bridge name too.
const maxPrefix = 8

// UniqueName returns prefix (cut to 8 characters) followed by "-" and 6 random hex digits.
func UniqueName(prefix string) string {
	if len(prefix) > maxPrefix {
		prefix = prefix[:maxPrefix]
	}
	var b [3]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic(err) // crypto/rand never fails on Linux
	}
	return prefix + "-" + hex.EncodeToString(b[:])
}

// NewNS creates a network namespace with a unique name built from prefix, brings its loopback
// up, and registers its deletion with tb.Cleanup.
func NewNS(tb TB, prefix string) *NS {
	tb.Helper()
	name := UniqueName(prefix)
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		tb.Fatalf("ip netns add %s: %v: %s", name, err, out)
	}
	ns := &NS{Name: name}
	tb.Cleanup(func() { ns.delete(tb) })
	ns.MustRun(tb, "ip", "link", "set", "lo", "up")
	return ns
}

func (n *NS) delete(tb TB) {
	if out, _ := exec.Command("ip", "netns", "pids", n.Name).Output(); len(bytes.TrimSpace(out)) > 0 {
		tb.Logf("testbed: namespace %s still has processes at deletion: %s", n.Name,
			strings.Join(strings.Fields(string(out)), " "))
	}
	if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
		tb.Logf("testbed: ip netns del %s: %v: %s", n.Name, err, out)
	}
}

// Command returns an unstarted command that runs args inside the namespace
// (ip netns exec NAME args...). `ip netns exec` execs the program, so the PID is the program's.
func (n *NS) Command(args ...string) *exec.Cmd {
	return exec.Command("ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// CommandContext is Command bound to ctx.
func (n *NS) CommandContext(ctx context.Context, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name}, args...)...)
}

// Run runs args inside the namespace and returns its combined output. The error names the
// command and includes the output.
func (n *NS) Run(args ...string) (string, error) {
	out, err := n.Command(args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s in %s: %w: %s", strings.Join(args, " "), n.Name, err,
			strings.TrimSpace(string(out)))
	}
	return string(out), nil
}

// MustRun is Run that calls tb.Fatalf on failure.
func (n *NS) MustRun(tb TB, args ...string) string {
	tb.Helper()
	out, err := n.Run(args...)
	if err != nil {
		tb.Fatalf("%v", err)
	}
	return out
}

// ErrNSRestore is returned by Do when the thread could not be moved back to its original
// namespace. The thread is then left locked, so the runtime discards it.
var ErrNSRestore = errors.New("restore original network namespace")

// Do runs fn on a dedicated, locked OS thread switched into the namespace, then switches the
// thread back. Goroutines started by fn do not inherit the namespace (they may run on any
// thread); sockets opened by fn stay in the namespace after Do returns.
func (n *NS) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() { errc <- n.do(fn) }()
	return <-errc
}

func (n *NS) do(fn func() error) error {
	runtime.LockOSThread()
	orig, err := netns.Get()
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("get current netns: %w", err)
	}
	defer orig.Close()
	target, err := netns.GetFromName(n.Name)
	if err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("open netns %s: %w", n.Name, err)
	}
	defer target.Close()
	if err := netns.Set(target); err != nil {
		// setns failed, so the thread is still where it was.
		runtime.UnlockOSThread()
		return fmt.Errorf("enter netns %s: %w", n.Name, err)
	}
	fnErr := fn()
	if err := netns.Set(orig); err != nil {
		// Leave the thread locked: the goroutine exits and the runtime kills the thread.
		return fmt.Errorf("%w after %s: %v (fn: %v)", ErrNSRestore, n.Name, err, fnErr)
	}
	runtime.UnlockOSThread()
	return fnErr
}

// Proc is a background process started in a namespace. Its output is kept (the last 64 KB).
type Proc struct {
	// Cmd is the started command. Do not call Cmd.Wait: Proc waits for it.
	Cmd  *exec.Cmd
	done chan struct{}
	err  error
	out  *tailBuffer
}

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err is the result of Wait; valid after Done is closed.
func (p *Proc) Err() error { <-p.done; return p.err }

// Output returns the last 64 KB of combined stdout and stderr so far.
func (p *Proc) Output() string { return p.out.String() }

// Pid returns the process id.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Stop sends SIGTERM, waits up to grace, then SIGKILL, and waits for the exit. It is safe to
// call more than once and after the process has exited.
func (p *Proc) Stop(grace time.Duration) {
	select {
	case <-p.done:
		return
	default:
	}
	_ = p.Cmd.Process.Signal(sigterm)
	select {
	case <-p.done:
		return
	case <-time.After(grace):
	}
	_ = p.Cmd.Process.Kill()
	<-p.done
}

// StartProc starts args in the namespace in the background. tb.Cleanup stops it (SIGTERM,
// then SIGKILL after 3 s) by its PID and waits for it.
func (n *NS) StartProc(tb TB, args ...string) *Proc {
	tb.Helper()
	return StartCmd(tb, n.Command(args...))
}

// StartCmd starts cmd (for example from NS.Command with Env set) and registers its stop with
// tb.Cleanup. Stdout and Stderr, if unset, go to the Proc's output buffer.
func StartCmd(tb TB, cmd *exec.Cmd) *Proc {
	tb.Helper()
	p := &Proc{Cmd: cmd, done: make(chan struct{}), out: &tailBuffer{max: 64 << 10}}
	if cmd.SysProcAttr == nil {
		// If this process dies without running cleanups (a test timeout panic, a kill), the
		// kernel kills the child too instead of leaving it running.
		cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	}
	if cmd.Stdout == nil {
		cmd.Stdout = p.out
	}
	if cmd.Stderr == nil {
		cmd.Stderr = p.out
	}
	if err := cmd.Start(); err != nil {
		tb.Fatalf("start %s: %v", strings.Join(cmd.Args, " "), err)
	}
	go func() { p.err = cmd.Wait(); close(p.done) }()
	tb.Cleanup(func() { p.Stop(3 * time.Second) })
	return p
}

// Start starts args in the namespace in the background and returns the started command.
// tb.Cleanup kills it by PID and waits for it; do not call Wait on it (use StartProc to wait).
func (n *NS) Start(tb TB, args ...string) *exec.Cmd {
	tb.Helper()
	return n.StartProc(tb, args...).Cmd
}
