package e2e

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"
)

// binary is the sclp-ovs binary under test, built once by TestMain; bpffs is a bpffs mount
// for the agents' pinned mode=ip state.
var binary, bpffs string

func TestMain(m *testing.M) {
	flag.Parse()
	if os.Geteuid() != 0 || testing.Short() {
		os.Exit(m.Run()) // every test skips
	}
	dir, err := os.MkdirTemp("", "sclp-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "sclp-ovs")
	build := exec.Command("go", "build", "-o", binary, "github.com/sclp-ovs/sclp-ovs/cli/sclp-ovs")
	build.Env = append(os.Environ(), "CGO_ENABLED=0")
	if out, err := build.CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build sclp-ovs: %v\n%s", err, out)
		os.RemoveAll(dir)
		os.Exit(1)
	}
	// mode=ip pins its programs on a bpffs. `ip netns exec` gives every agent a private /sys,
	// so the tests mount one bpffs in the root mount namespace (visible inside, and outliving
	// each agent) and give every host its own directory on it.
	bpffs = filepath.Join(dir, "bpf")
	if err := os.Mkdir(bpffs, 0o700); err == nil {
		err = unix.Mount("bpf", bpffs, "bpf", 0, "mode=0700")
		if err != nil {
			fmt.Fprintf(os.Stderr, "mount bpffs: %v\n", err)
			os.RemoveAll(dir)
			os.Exit(1)
		}
	}
	code := m.Run()
	unix.Unmount(bpffs, unix.MNT_DETACH)
	os.RemoveAll(dir)
	os.Exit(code)
}
