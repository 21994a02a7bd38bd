package ovs

import (
	"errors"
	"io"
	"strings"
	"testing"

	ofovs "github.com/digitalocean/go-openvswitch/ovs"
)

// fakeOfctl records every command and stdin; out is returned for each call.
type fakeOfctl struct {
	cmds  []string
	stdin []string
	out   string
	err   error
}

func (f *fakeOfctl) exec(cmd string, args ...string) ([]byte, error) {
	f.cmds = append(f.cmds, cmd+" "+strings.Join(args, " "))
	f.stdin = append(f.stdin, "")
	return []byte(f.out), f.err
}

func (f *fakeOfctl) pipe(stdin io.Reader, cmd string, args ...string) ([]byte, error) {
	b, _ := io.ReadAll(stdin)
	f.cmds = append(f.cmds, cmd+" "+strings.Join(args, " "))
	f.stdin = append(f.stdin, string(b))
	return []byte(f.out), f.err
}

func newFakeOF(t *testing.T) (*OpenFlow, *fakeOfctl) {
	t.Helper()
	f := &fakeOfctl{}
	of, err := NewOpenFlow(OpenFlowOptions{Exec: f.exec, Pipe: f.pipe})
	if err != nil {
		t.Fatal(err)
	}
	return of, f
}

func TestReplaceFlowsCommand(t *testing.T) {
	of, f := newFakeOF(t)
	flows := []*Flow{
		{Priority: 200, InPort: 3, Table: 0, Cookie: 0x7, Actions: []Action{ofovs.Drop()}},
		{Priority: 100, InPort: 4, Actions: []Action{ofovs.Normal()}},
	}
	if err := of.ReplaceFlows("br-int", flows...); err != nil {
		t.Fatal(err)
	}
	wantCmd := "ovs-ofctl --timeout=10 --bundle add-flow --protocols=OpenFlow13,OpenFlow14 br-int -"
	wantIn := "delete cookie=0x5c1b000000000000/0xffff000000000000\n" +
		"add priority=200,in_port=3,table=0,idle_timeout=0,cookie=0x5c1b000000000007,actions=drop\n" +
		"add priority=100,in_port=4,table=0,idle_timeout=0,cookie=0x5c1b000000000000,actions=normal\n"
	if len(f.cmds) != 1 || f.cmds[0] != wantCmd || f.stdin[0] != wantIn {
		t.Fatalf("commands:\n%q\nstdin:\n%q\nwant %q\n%q", f.cmds, f.stdin, wantCmd, wantIn)
	}
	if flows[0].Cookie != 0x7 {
		t.Fatalf("ReplaceFlows modified the caller's flow: cookie %#x", flows[0].Cookie)
	}
}

func TestDeleteAndDumpCommands(t *testing.T) {
	of, f := newFakeOF(t)
	if err := of.DeleteFlows("br0"); err != nil {
		t.Fatal(err)
	}
	f.out = "OFPST_FLOW reply (OF1.3) (xid=0x2):\n cookie=0x5c1b000000000001, priority=10,in_port=1 actions=drop\n"
	raw, err := of.DumpFlowsRaw("br0")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"ovs-ofctl --timeout=10 del-flows --protocols=OpenFlow13,OpenFlow14 br0 cookie=0x5c1b000000000000/0xffff000000000000",
		"ovs-ofctl --timeout=10 --no-stats --protocols=OpenFlow13,OpenFlow14 dump-flows br0 cookie=0x5c1b000000000000/0xffff000000000000",
	}
	if strings.Join(f.cmds, "\n") != strings.Join(want, "\n") {
		t.Fatalf("commands:\n%s\nwant:\n%s", strings.Join(f.cmds, "\n"), strings.Join(want, "\n"))
	}
	if raw != "cookie=0x5c1b000000000001, priority=10,in_port=1 actions=drop" {
		t.Fatalf("raw dump %q", raw)
	}
}

func TestOpenFlowErrors(t *testing.T) {
	if _, err := NewOpenFlow(OpenFlowOptions{Cookie: 0x1_0000, CookieMask: 0xff}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("cookie outside mask: %v", err)
	}
	of, f := newFakeOF(t)
	f.err, f.out = errors.New("exit status 1"), "ovs-ofctl: br9 is not a bridge or a socket"
	err := of.DeleteFlows("br9")
	if err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Fatalf("error lacks ovs-ofctl's message: %v", err)
	}
	if err := of.ReplaceFlows("br9"); err == nil || !strings.Contains(err.Error(), "not a bridge") {
		t.Fatalf("bundle error lacks ovs-ofctl's message: %v", err)
	}
	if !of.Owned(0x5c1b_0000_0000_00ff) || of.Owned(0x1) {
		t.Fatalf("Owned")
	}
}

func TestReplaceRawFlowsCommand(t *testing.T) {
	of, f := newFakeOF(t)
	err := of.ReplaceRawFlows("br-int",
		RawFlow{Cookie: 3, Text: "table=0,priority=100,in_port=3,actions=goto_table:1"},
		RawFlow{Text: "table=1,priority=0,actions=NORMAL"})
	if err != nil {
		t.Fatal(err)
	}
	wantIn := "delete cookie=0x5c1b000000000000/0xffff000000000000\n" +
		"add cookie=0x5c1b000000000003,table=0,priority=100,in_port=3,actions=goto_table:1\n" +
		"add cookie=0x5c1b000000000000,table=1,priority=0,actions=NORMAL\n"
	if f.cmds[0] != "ovs-ofctl --timeout=10 --bundle add-flow --protocols=OpenFlow13,OpenFlow14 br-int -" || f.stdin[0] != wantIn {
		t.Fatalf("got %q\n%q", f.cmds, f.stdin)
	}
	if err := of.ReplaceRawFlows("br-int", RawFlow{Text: "cookie=0x1,actions=drop"}); !errors.Is(err, ErrInvalid) {
		t.Fatalf("raw flow with cookie: %v", err)
	}
}
