package testbed

import (
	"fmt"
	"os"
	"sync"
	"testing"
)

// TB is the part of testing.TB the testbed needs. *testing.T, *testing.B and *Runner satisfy it.
type TB interface {
	Helper()
	Cleanup(func())
	Fatalf(format string, args ...any)
	Logf(format string, args ...any)
}

// RequireRoot skips the test when the process is not root or when -short is set. Every
// privileged test calls it first.
func RequireRoot(tb testing.TB) {
	tb.Helper()
	if testing.Short() {
		tb.Skip("privileged test: skipped in -short mode")
	}
	if os.Geteuid() != 0 {
		tb.Skip("privileged test: needs root (network namespaces)")
	}
}

// FatalError is the panic value of Runner.Fatalf. Runner.Run recovers it into an error.
type FatalError struct{ Msg string }

// Error returns the message given to Fatalf.
func (e *FatalError) Error() string { return e.Msg }

// Runner is a TB for programs that are not tests (the demo, the benchmark harness).
//
// Cleanup functions run in reverse order on Close. Fatalf logs the message and panics with a
// *FatalError; wrap testbed calls in Run to turn that panic into an error. Runner is safe for
// concurrent use.
type Runner struct {
	logf func(string, ...any)

	mu       sync.Mutex
	cleanups []func()
}

// NewRunner returns a Runner that logs through logf (nil discards log lines).
func NewRunner(logf func(format string, args ...any)) *Runner {
	if logf == nil {
		logf = func(string, ...any) {}
	}
	return &Runner{logf: logf}
}

// Helper does nothing; it exists to satisfy TB.
func (r *Runner) Helper() {}

// Logf logs through the function given to NewRunner.
func (r *Runner) Logf(format string, args ...any) { r.logf(format, args...) }

// Cleanup registers fn to run on Close (last registered runs first).
func (r *Runner) Cleanup(fn func()) {
	r.mu.Lock()
	r.cleanups = append(r.cleanups, fn)
	r.mu.Unlock()
}

// Fatalf logs the message and panics with a *FatalError.
func (r *Runner) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	r.logf("fatal: %s", msg)
	panic(&FatalError{Msg: msg})
}

// TempDir creates a directory that Close removes.
func (r *Runner) TempDir() string {
	dir, err := os.MkdirTemp("", "sclp-tb-")
	if err != nil {
		r.Fatalf("create temp dir: %v", err)
	}
	r.Cleanup(func() { os.RemoveAll(dir) })
	return dir
}

// Run calls fn and returns the *FatalError raised by Fatalf inside it, if any. Other panics
// propagate.
func (r *Runner) Run(fn func() error) (err error) {
	defer func() {
		if v := recover(); v != nil {
			fe, ok := v.(*FatalError)
			if !ok {
				panic(v)
			}
			err = fe
		}
	}()
	return fn()
}

// Close runs every registered cleanup function, last registered first. A panic in one
// cleanup is logged and the others still run. Close may be called more than once.
func (r *Runner) Close() {
	for {
		r.mu.Lock()
		n := len(r.cleanups)
		if n == 0 {
			r.mu.Unlock()
			return
		}
		fn := r.cleanups[n-1]
		r.cleanups = r.cleanups[:n-1]
		r.mu.Unlock()
		func() {
			defer func() {
				if v := recover(); v != nil {
					r.logf("cleanup panicked: %v", v)
				}
			}()
			fn()
		}()
	}
}
