package testbed

import (
	"os"
	"path/filepath"
	"strings"
	"time"
)

// ovsStartTimeout bounds how long a daemon may take to become ready.
const ovsStartTimeout = 15 * time.Second

// StartDB starts ovsdb-server (in the foreground, as a child of this process) and waits until
// its socket answers. It is used by StartOVS and to restart the server after StopDB.
func (o *OVS) StartDB(tb TB) {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.db != nil {
		tb.Fatalf("testbed: ovsdb-server already running (pid %d)", o.db.Pid())
	}
	_ = os.Remove(o.DBSock)
	p := StartCmd(tb, o.Command("ovsdb-server", o.DBPath,
		"--remote=punix:"+o.DBSock, "--pidfile", "--no-chdir",
		"--log-file="+filepath.Join(o.LogDir, "ovsdb-server.log"), "-vconsole:err"))
	o.db = p
	o.waitReady(tb, p, "ovsdb-server", func() error {
		_, err := o.run("ovsdb-client", "list-dbs", o.DBEndpoint())
		return err
	})
}

// StartVswitchd starts ovs-vswitchd in the namespace and waits until it answers ovs-appctl.
func (o *OVS) StartVswitchd(tb TB) {
	tb.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.vswd != nil {
		tb.Fatalf("testbed: ovs-vswitchd already running (pid %d)", o.vswd.Pid())
	}
	p := StartCmd(tb, o.Command("ovs-vswitchd", o.DBEndpoint(), "--pidfile", "--no-chdir",
		"--log-file="+filepath.Join(o.LogDir, "ovs-vswitchd.log"), "-vconsole:err"))
	o.vswd = p
	o.waitReady(tb, p, "ovs-vswitchd", func() error {
		_, err := o.Appctl("ovs-vswitchd", "version")
		return err
	})
}

func (o *OVS) waitReady(tb TB, p *Proc, name string, probe func() error) {
	tb.Helper()
	deadline := time.Now().Add(ovsStartTimeout)
	for {
		err := probe()
		if err == nil {
			return
		}
		select {
		case <-p.Done():
			tb.Fatalf("testbed: %s exited at start: %v: %s", name, p.Err(), p.Output())
		default:
		}
		if time.Now().After(deadline) {
			tb.Fatalf("testbed: %s not ready after %v: %v: %s", name, ovsStartTimeout, err, p.Output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// StopDB stops ovsdb-server (ovs-appctl exit, then SIGTERM/SIGKILL by PID) and waits for it.
// Clients see the connection drop; StartDB brings it back with the same database.
func (o *OVS) StopDB() { o.stop(&o.db, "ovsdb-server") }

// StopVswitchd stops ovs-vswitchd like StopDB stops ovsdb-server.
func (o *OVS) StopVswitchd() { o.stop(&o.vswd, "ovs-vswitchd") }

// RestartDB stops and starts ovsdb-server.
func (o *OVS) RestartDB(tb TB) { tb.Helper(); o.StopDB(); o.StartDB(tb) }

// RestartVswitchd stops and starts ovs-vswitchd (every OpenFlow flow is lost).
func (o *OVS) RestartVswitchd(tb TB) { tb.Helper(); o.StopVswitchd(); o.StartVswitchd(tb) }

// Stop stops ovs-vswitchd, then ovsdb-server. It is registered with tb.Cleanup by StartOVS
// and safe to call more than once.
func (o *OVS) Stop() {
	o.StopVswitchd()
	o.StopDB()
}

// VswitchdPid returns ovs-vswitchd's PID (0 when stopped).
func (o *OVS) VswitchdPid() int { return o.pid(&o.vswd) }

// DBPid returns ovsdb-server's PID (0 when stopped).
func (o *OVS) DBPid() int { return o.pid(&o.db) }

func (o *OVS) pid(pp **Proc) int {
	o.mu.Lock()
	defer o.mu.Unlock()
	if *pp == nil {
		return 0
	}
	return (*pp).Pid()
}

func (o *OVS) stop(pp **Proc, name string) {
	o.mu.Lock()
	p := *pp
	*pp = nil
	o.mu.Unlock()
	if p == nil {
		return
	}
	select {
	case <-p.Done():
	default:
		_, _ = o.Appctl(name, "exit")
		select {
		case <-p.Done():
		case <-time.After(3 * time.Second):
			p.Stop(2 * time.Second)
		}
	}
	if out := interesting(p.Output()); out != "" {
		o.tb.Logf("testbed: %s (%s) output: %s", name, o.NS.Name, out)
	}
}

// interesting drops the "opened log file" line every daemon prints before its console level
// applies; what remains are warnings and errors.
func interesting(out string) string {
	var keep []string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		if l != "" && !strings.Contains(l, "opened log file") {
			keep = append(keep, l)
		}
	}
	return strings.Join(keep, "\n")
}
