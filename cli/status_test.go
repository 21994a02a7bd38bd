package cli

import (
	"context"
	"os"
	"testing"
	"time"
)

// TestStatusSocketSuccession: the retiring agent's late cleanup must not remove the socket
// its successor created on the same path (the takeover race that killed the new agent with
// "chmod ...: no such file or directory"), and every socket is created restricted.
func TestStatusSocketSuccession(t *testing.T) {
	path := t.TempDir() + "/agent.sock"
	if err := os.WriteFile(path, nil, 0o644); err != nil { // a stale leftover
		t.Fatal(err)
	}
	handed := make(chan struct{})
	stopOld, err := serveStatus(path, func() AgentStatus { return AgentStatus{PID: 1} }, func() { close(handed) })
	if err != nil {
		t.Fatalf("replace a stale socket file: %v", err)
	}
	if fi, err := os.Stat(path); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode: %v, %v (want 0600)", fi.Mode(), err)
	}
	go func() { <-handed; stopOld() }()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := requestHandover(ctx, path); err != nil {
		t.Fatalf("handover: %v", err)
	}
	stopNew, err := serveStatus(path, func() AgentStatus { return AgentStatus{PID: 2} }, func() {})
	if err != nil {
		t.Fatalf("successor: %v", err)
	}
	defer stopNew()
	stopOld() // the old agent's cleanup, late: must leave the successor's socket alone
	st, err := fetchStatus(ctx, path)
	if err != nil || st.PID != 2 {
		t.Fatalf("successor's status after the old agent's cleanup: %+v, %v", st, err)
	}
	stopNew()
	if _, err := os.Lstat(path); !os.IsNotExist(err) {
		t.Errorf("the last agent left its socket behind: %v", err)
	}
}
