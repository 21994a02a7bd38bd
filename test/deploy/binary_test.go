package deploy

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sync"
	"testing"
)

// versionVar is the variable the image build sets to the version; testVersion is what the
// test build sets it to.
const (
	versionVar  = "github.com/sclp-ovs/sclp-ovs/cli.Version"
	testVersion = "deploy-test"
)

var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

// TestMain removes the binary built for the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// agentBinary builds the sclp-ovs binary from this tree once (CGO_ENABLED=0, as the image
// does). SCLP_OVS_TEST_BINARY names a prebuilt binary instead.
func agentBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		if p := os.Getenv("SCLP_OVS_TEST_BINARY"); p != "" {
			binPath = p
			return
		}
		binDir, binErr = os.MkdirTemp("", "sclp-deploy-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "sclp-ovs")
		// The link flags of the image build (deploy/docker/Dockerfile), with a known version;
		// -trimpath is left out, since it would recompile every dependency.
		cmd := exec.Command("go", "build", "-ldflags", "-s -w -X "+versionVar+"="+testVersion,
			"-o", binPath, "github.com/sclp-ovs/sclp-ovs/cli/sclp-ovs")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("build sclp-ovs: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}
