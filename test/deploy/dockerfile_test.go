package deploy

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// instruction is one Dockerfile instruction with its continuation lines joined.
type instruction struct {
	Line int
	Cmd  string // upper case
	Args string
}

var dockerfileCmds = map[string]bool{
	"ADD": true, "ARG": true, "CMD": true, "COPY": true, "ENTRYPOINT": true, "ENV": true, "EXPOSE": true,
	"FROM": true, "HEALTHCHECK": true, "LABEL": true, "ONBUILD": true, "RUN": true, "SHELL": true,
	"STOPSIGNAL": true, "USER": true, "VOLUME": true, "WORKDIR": true,
}

// parseDockerfile splits a Dockerfile into instructions: comments and blank lines dropped,
// backslash continuations joined, unknown instructions and an unterminated continuation
// reported. (Docker is not available here, so this is the syntax check we can run.)
func parseDockerfile(data string) ([]instruction, error) {
	var (
		out  []instruction
		cur  strings.Builder
		from int
	)
	sc := bufio.NewScanner(strings.NewReader(data))
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		trim := strings.TrimSpace(line)
		if trim == "" || strings.HasPrefix(trim, "#") {
			continue // comments may sit between continuation lines too
		}
		if cur.Len() == 0 {
			from = n
		}
		cont := strings.HasSuffix(trim, "\\")
		cur.WriteString(strings.TrimSuffix(trim, "\\"))
		cur.WriteByte(' ')
		if cont {
			continue
		}
		cmd, args, _ := strings.Cut(strings.TrimSpace(cur.String()), " ")
		cur.Reset()
		if !dockerfileCmds[strings.ToUpper(cmd)] {
			return nil, fmt.Errorf("line %d: unknown instruction %q", from, cmd)
		}
		out = append(out, instruction{Line: from, Cmd: strings.ToUpper(cmd), Args: strings.Join(strings.Fields(args), " ")})
	}
	if cur.Len() != 0 {
		return nil, fmt.Errorf("line %d: continuation never ends", from)
	}
	return out, sc.Err()
}

// stage is one FROM and the instructions after it.
type stage struct {
	Base, Name string
	Ins        []instruction
}

func stagesOf(tb testing.TB, ins []instruction) []stage {
	tb.Helper()
	var st []stage
	for i, in := range ins {
		if in.Cmd == "FROM" {
			f := strings.Fields(in.Args)
			s := stage{Base: f[0]}
			if len(f) == 3 && strings.EqualFold(f[1], "AS") {
				s.Name = f[2]
			} else if len(f) != 1 {
				tb.Fatalf("line %d: FROM %s", in.Line, in.Args)
			}
			st = append(st, s)
			continue
		}
		if len(st) == 0 {
			if in.Cmd != "ARG" {
				tb.Fatalf("line %d: %s before the first FROM (only ARG may precede it)", in.Line, in.Cmd)
			}
			continue
		}
		st[len(st)-1].Ins = append(st[len(st)-1].Ins, ins[i])
	}
	return st
}

func (s stage) joined(cmd string) string {
	var b strings.Builder
	for _, in := range s.Ins {
		if in.Cmd == cmd {
			b.WriteString(in.Args + "\n")
		}
	}
	return b.String()
}

func TestDockerfile(t *testing.T) {
	root := repoRoot(t)
	data, err := os.ReadFile(filepath.Join(root, "deploy", "docker", "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	ins, err := parseDockerfile(string(data))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	st := stagesOf(t, ins)
	if len(st) != 2 {
		t.Fatalf("%d stages, want a build stage and a runtime stage", len(st))
	}
	build, final := st[0], st[1]

	// The build stage's Go matches go.mod, and builds the static binary.
	gomod, err := os.ReadFile(filepath.Join(root, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	goLine := regexp.MustCompile(`(?m)^go (\d+\.\d+)`).FindSubmatch(gomod)
	argGo := regexp.MustCompile(`ARG GO_VERSION=(\S+)`).FindStringSubmatch(string(data))
	if goLine == nil || argGo == nil || argGo[1] != string(goLine[1]) {
		t.Errorf("GO_VERSION %v, go.mod says go %s", argGo, goLine)
	}
	if !strings.HasPrefix(build.Base, "golang:") || build.Name == "" {
		t.Errorf("build stage FROM %s AS %q", build.Base, build.Name)
	}
	env := build.joined("ENV")
	if !strings.Contains(env, "CGO_ENABLED=0") {
		t.Errorf("build stage does not set CGO_ENABLED=0 (ENV %q)", env)
	}
	if run := build.joined("RUN"); !strings.Contains(run, "go build") || !strings.Contains(run, "./cli/sclp-ovs") ||
		!strings.Contains(run, "-X "+versionVar+"=${VERSION}") || !strings.Contains(run, "/out/sclp-ovs version") {
		t.Errorf("build stage RUN does not build ./cli/sclp-ovs with the version and run it: %q", run)
	}
	if !testing.Short() {
		// The -X target exists: a binary linked the same way reports the version it was given.
		out, err := exec.Command(agentBinary(t), "version").CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "sclp-ovs "+testVersion {
			t.Errorf("sclp-ovs version: %q, %v; want %q (does %s still exist?)", out, err, "sclp-ovs "+testVersion, versionVar)
		}
	}

	// The runtime stage: Debian 12 slim with the tools the code executes, and the binary
	// where the DaemonSet runs it.
	if !strings.Contains(string(data), "DEBIAN_IMAGE=debian:12-slim") || final.Base != "${DEBIAN_IMAGE}" {
		t.Errorf("runtime stage FROM %s", final.Base)
	}
	run := final.joined("RUN")
	for tool, pkg := range toolsExecuted(t, root) {
		if !regexp.MustCompile(`apt-get install[^&]*\b` + regexp.QuoteMeta(pkg) + `\b`).MatchString(run) {
			t.Errorf("the code runs %s, but the image does not install %s", tool, pkg)
		}
	}
	if !strings.Contains(run, "--no-install-recommends") || !strings.Contains(run, "rm -rf /var/lib/apt/lists/*") {
		t.Errorf("runtime stage apt-get is not slim: %q", run)
	}
	checkAptPackages(t, run)
	copyIns := final.joined("COPY")
	if copyIns != fmt.Sprintf("--from=%s /out/sclp-ovs /usr/local/bin/sclp-ovs\n", build.Name) {
		t.Errorf("runtime COPY %q", copyIns)
	}
	_, c, _, _ := agentOf(t)
	if len(c.Command) != 1 || c.Command[0] != "/usr/local/bin/sclp-ovs" ||
		final.joined("ENTRYPOINT") != `["/usr/local/bin/sclp-ovs"]`+"\n" {
		t.Errorf("DaemonSet command %v, image ENTRYPOINT %q", c.Command, final.joined("ENTRYPOINT"))
	}
}

func TestParseDockerfileRejects(t *testing.T) {
	for _, bad := range []string{"FROM x\nRUNN true\n", "FROM x\nRUN a \\\n"} {
		if _, err := parseDockerfile(bad); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}

// toolsExecuted scans the non-test Go sources that make up the binary for the external
// programs they run, and maps each to the Debian package that ships it.
func toolsExecuted(tb testing.TB, root string) map[string]string {
	tb.Helper()
	pkgs := map[string]string{"ovs-ofctl": "openvswitch-common", "ovs-vsctl": "openvswitch-common",
		"ethtool": "ethtool", "ip": "iproute2", "tc": "iproute2"}
	found := map[string]string{}
	for _, dir := range []string{"cli", "controller", "ovs", "offload"} {
		err := filepath.WalkDir(filepath.Join(root, dir), func(p string, d os.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			src, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			for tool, pkg := range pkgs {
				if regexp.MustCompile(`(exec\.Command(Context)?\((ctx, )?|[Ee]xec\(|pipe\(&?\w+, )"` + regexp.QuoteMeta(tool) + `"`).Match(src) {
					found[tool] = pkg
				}
			}
			return nil
		})
		if err != nil {
			tb.Fatal(err)
		}
	}
	tb.Logf("external programs the agent runs: %v", found)
	if found["ovs-ofctl"] == "" {
		tb.Fatalf("found no ovs-ofctl call in the sources: the scan is broken")
	}
	return found
}

// checkAptPackages checks that every package the image installs is known to this machine's
// apt (the development machines run Debian 12, the image's base); without apt data it says so
// and checks nothing.
func checkAptPackages(t *testing.T, run string) {
	t.Helper()
	m := regexp.MustCompile(`apt-get install -y --no-install-recommends ([a-z0-9. +-]+?)(?: &&|$)`).FindStringSubmatch(run)
	if m == nil {
		t.Errorf("no apt-get install -y --no-install-recommends PACKAGES in %q", run)
		return
	}
	candidate := func(pkg string) string {
		out, _ := exec.Command("apt-cache", "policy", pkg).CombinedOutput()
		if m := regexp.MustCompile(`Candidate: (\S+)`).FindSubmatch(out); m != nil {
			return string(m[1])
		}
		return ""
	}
	if _, err := exec.LookPath("apt-cache"); err != nil || candidate("base-files") == "" {
		t.Logf("no apt package data here: package names not checked")
		return
	}
	for _, pkg := range strings.Fields(m[1]) {
		if c := candidate(pkg); c == "" || c == "(none)" {
			t.Errorf("apt knows no installable package %q (candidate %q)", pkg, c)
		}
	}
}
