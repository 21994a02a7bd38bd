package cli

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/sclp-ovs/sclp-ovs/controller"
)

// ofctl implements controller.Flows with `ovs-ofctl -O OpenFlow13` against the bridge's
// management socket in the run directory. Replace is one --bundle, so the bridge never runs a
// half-changed flow set.
type ofctl struct {
	runDir string
	// Exec runs ovs-ofctl with stdin and returns its stdout (tests inject it).
	Exec func(ctx context.Context, stdin string, args ...string) (string, error)
}

func newOfctl(runDir string) *ofctl {
	return &ofctl{runDir: runDir, Exec: func(ctx context.Context, stdin string, args ...string) (string, error) {
		cmd := exec.CommandContext(ctx, "ovs-ofctl", args...)
		cmd.Stdin = strings.NewReader(stdin)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			return "", fmt.Errorf("ovs-ofctl %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(errb.String()))
		}
		return out.String(), nil
	}}
}

func (o *ofctl) target(bridge string) string {
	return "unix:" + filepath.Join(o.runDir, bridge+".mgmt")
}

func cookieMatch(cookie, mask uint64) string { return fmt.Sprintf("cookie=%#x/%#x", cookie, mask) }

func (o *ofctl) Cookies(ctx context.Context, bridge string, cookie, mask uint64) ([]uint64, error) {
	out, err := o.Exec(ctx, "", "-O", "OpenFlow13", "dump-flows", o.target(bridge), cookieMatch(cookie, mask))
	if err != nil {
		return nil, err
	}
	return parseCookies(out)
}

func parseCookies(out string) ([]uint64, error) {
	var cookies []uint64
	for _, line := range strings.Split(out, "\n") {
		line = strings.TrimSpace(line)
		v, ok := strings.CutPrefix(line, "cookie=")
		if !ok {
			continue
		}
		v, _, _ = strings.Cut(v, ",")
		c, err := strconv.ParseUint(v, 0, 64)
		if err != nil {
			return nil, fmt.Errorf("parse flow dump line %q: %w", line, err)
		}
		cookies = append(cookies, c)
	}
	return cookies, nil
}

func (o *ofctl) Replace(ctx context.Context, bridge string, cookie, mask uint64, flows []controller.Flow) error {
	var b strings.Builder
	b.WriteString("delete " + cookieMatch(cookie, mask) + "\n")
	for _, f := range flows {
		b.WriteString("add " + f.String() + "\n")
	}
	_, err := o.Exec(ctx, b.String(), "-O", "OpenFlow13", "--bundle", "add-flows", o.target(bridge), "-")
	return err
}
