package deploy

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// resolvePort returns the port number a probe or a Service's targetPort names in container
// c: a number as is, a name through c's declared ports (an error when none has that name:
// the kubelet's probe or the Service would point nowhere).
func resolvePort(c *corev1.Container, p intstr.IntOrString) (int, error) {
	if p.Type == intstr.Int {
		return p.IntValue(), nil
	}
	for _, cp := range c.Ports {
		if cp.Name == p.StrVal {
			return int(cp.ContainerPort), nil
		}
	}
	return 0, fmt.Errorf("named port %q: container %s declares no such port", p.StrVal, c.Name)
}

// minGraceSeconds is what an agent SIGTERMed while its successor starts may wait for the
// handover (cli.successorWait, 45 s) plus a few seconds to stop.
const minGraceSeconds = 50

// TestDaemonSetSurgeUpdate checks what a zero-loss surge update of the agent needs, in both
// renderings (base and prometheus-operator): maxSurge 1 with maxUnavailable 0; no declared
// ports (with hostNetwork a containerPort becomes a hostPort, which keeps a second pod of the
// set off the host); every probe and Service port reference resolves; the agent retires after
// a handover, with its marker in a pod-scoped emptyDir; a grace period that covers its wait
// for a starting successor; minReadySeconds.
func TestDaemonSetSurgeUpdate(t *testing.T) {
	for _, dir := range []string{"deploy/kubernetes", "deploy/kubernetes/prometheus-operator"} {
		t.Run(filepath.Base(dir), func(t *testing.T) {
			b := render(t, dir)
			if len(b.DaemonSets) != 1 {
				t.Fatalf("%d DaemonSets", len(b.DaemonSets))
			}
			ds := b.DaemonSets[0]
			checkSurge(t, ds)
			c := &ds.Spec.Template.Spec.Containers[0]
			for _, s := range b.Services {
				for _, p := range s.Spec.Ports {
					if _, err := resolvePort(c, p.TargetPort); err != nil {
						t.Errorf("Service %s port %s: %v", s.Name, p.Name, err)
					}
				}
			}
		})
	}
}

func checkSurge(t *testing.T, ds *appsv1.DaemonSet) {
	t.Helper()
	us := ds.Spec.UpdateStrategy
	if us.Type != appsv1.RollingUpdateDaemonSetStrategyType || us.RollingUpdate == nil {
		t.Fatalf("update strategy %+v, want RollingUpdate", us)
	}
	ru := us.RollingUpdate
	// maxUnavailable must be explicit: the API server defaults a missing one to 1.
	if ru.MaxSurge == nil || ru.MaxSurge.Type != intstr.Int || ru.MaxSurge.IntValue() != 1 ||
		ru.MaxUnavailable == nil || ru.MaxUnavailable.Type != intstr.Int || ru.MaxUnavailable.IntValue() != 0 {
		t.Errorf("rollingUpdate maxSurge %v maxUnavailable %v, want 1 and 0", ru.MaxSurge, ru.MaxUnavailable)
	}
	if ds.Spec.MinReadySeconds <= 0 {
		t.Errorf("minReadySeconds %d: a new pod ready for an instant would get the old one deleted", ds.Spec.MinReadySeconds)
	}
	pod := ds.Spec.Template.Spec
	if g := pod.TerminationGracePeriodSeconds; g == nil || *g < minGraceSeconds {
		t.Errorf("terminationGracePeriodSeconds %v, want at least %d", ptrString(g), minGraceSeconds)
	}
	for _, c := range append(append([]corev1.Container(nil), pod.InitContainers...), pod.Containers...) {
		for _, p := range c.Ports {
			t.Errorf("container %s declares port %s (%d/%s, hostPort %d): with hostNetwork it is a host port, and the scheduler keeps the surge pod off the host",
				c.Name, p.Name, p.ContainerPort, p.Protocol, p.HostPort)
		}
	}
	c := &pod.Containers[0]
	checkExecProbes(t, pod, c)

	var after, marker string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--after-handover="); ok {
			after = v
		}
		if v, ok := strings.CutPrefix(a, "--retired-marker="); ok {
			marker = v
		}
	}
	if after != "retire" {
		t.Errorf("--after-handover=%q, want retire (an exiting old agent is restarted by the kubelet)", after)
	}
	// The marker must live exactly as long as the pod: in an emptyDir mounted in the
	// container (not a hostPath, which a new pod would inherit; not the image, which a
	// restarted container would not).
	if podDir(pod, c, marker) == "" {
		t.Errorf("--retired-marker=%q is not on a writable emptyDir mount", marker)
	}
}

// podDir returns the mount path of the writable emptyDir of c that holds path: a directory
// of this pod alone ("" when path is elsewhere).
func podDir(pod corev1.PodSpec, c *corev1.Container, path string) string {
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	dir := ""
	for _, m := range c.VolumeMounts {
		if path != "" && strings.HasPrefix(path, strings.TrimSuffix(m.MountPath, "/")+"/") {
			if v := vols[m.Name]; v.EmptyDir != nil && !m.ReadOnly {
				dir = strings.TrimSuffix(m.MountPath, "/")
			} else {
				dir = ""
			}
		}
	}
	return dir
}

// checkExecProbes checks that the startup, liveness and readiness probes ask the pod's own
// agent (finding 8 of the surge review): exec probes running the container's own binary
// (`sclp-ovs probe healthz|readyz`) on the socket the agent serves with --probe-socket, in
// the pod's emptyDir, with a client timeout under the probe's. An httpGet or tcpSocket
// probe on the host network reaches whichever agent holds the port: during a surge update,
// the old one, which would make a stuck new pod count as ready.
func checkExecProbes(t *testing.T, pod corev1.PodSpec, c *corev1.Container) {
	t.Helper()
	var sock string
	for _, a := range c.Args {
		if v, ok := strings.CutPrefix(a, "--probe-socket="); ok {
			sock = v
		}
	}
	if podDir(pod, c, sock) == "" {
		t.Errorf("--probe-socket=%q is not on a writable emptyDir mount (the probes must reach this pod's agent alone)", sock)
	}
	for name, pr := range map[string]*corev1.Probe{"startup": c.StartupProbe, "liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
		want := "healthz"
		if name == "readiness" {
			want = "readyz"
		}
		if pr == nil || pr.Exec == nil || pr.HTTPGet != nil || pr.TCPSocket != nil || pr.GRPC != nil {
			t.Errorf("%s probe %+v: want an exec probe asking the pod's own agent", name, pr)
			continue
		}
		cmd := pr.Exec.Command
		if len(cmd) < 3 || len(c.Command) == 0 || cmd[0] != c.Command[0] || cmd[1] != "probe" || cmd[len(cmd)-1] != want {
			t.Errorf("%s probe %q, want [%s probe ... %s]", name, cmd, strings.Join(c.Command, " "), want)
			continue
		}
		var gotSock string
		timeout := time.Duration(-1)
		for _, a := range cmd[2 : len(cmd)-1] {
			if v, ok := strings.CutPrefix(a, "--socket="); ok {
				gotSock = v
			} else if v, ok := strings.CutPrefix(a, "--timeout="); ok {
				d, err := time.ParseDuration(v)
				if err != nil {
					t.Errorf("%s probe %s: %v", name, a, err)
				}
				timeout = d
			} else {
				t.Errorf("%s probe: unexpected argument %q", name, a)
			}
		}
		if gotSock != sock {
			t.Errorf("%s probe asks socket %q, the agent serves --probe-socket=%q", name, gotSock, sock)
		}
		if limit := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second; timeout <= 0 || timeout >= limit {
			t.Errorf("%s probe --timeout %v, want set and under timeoutSeconds (%v): the probe should say why, not be killed", name, timeout, limit)
		}
	}
}

func ptrString[T any](p *T) string {
	if p == nil {
		return "unset"
	}
	return fmt.Sprint(*p)
}
