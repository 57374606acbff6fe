package containers

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// imageValues are the chart's image values for REPCACHE_IMAGE
// (REGISTRY/REPOSITORY:TAG), never pulled.
func imageValues(t testing.TB) map[string]any {
	t.Helper()
	ref, tag, ok := strings.Cut(repcacheImage, ":")
	registry, repo, ok2 := strings.Cut(ref, "/")
	if !ok || !ok2 {
		t.Fatalf("REPCACHE_IMAGE %q is not REGISTRY/REPOSITORY:TAG", repcacheImage)
	}
	return map[string]any{"registry": registry, "repository": repo, "tag": tag, "pullPolicy": "Never"}
}

// parentChart copies testdata/NAME (a user's chart that depends on
// helm/repcache) to a temporary directory and builds its dependency.
func parentChart(t testing.TB, name string) string {
	t.Helper()
	dir := filepath.Join(t.TempDir(), name)
	src := filepath.Join("testdata", name)
	err := filepath.Walk(src, func(p string, fi os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(src, p)
		if fi.IsDir() {
			return os.MkdirAll(filepath.Join(dir, rel), 0o755)
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		b = []byte(strings.ReplaceAll(string(b), "REPCACHE_CHART", chartDir))
		return os.WriteFile(filepath.Join(dir, rel), b, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	cmd := []string{"dependency", "build", "--skip-refresh", dir}
	if out, err := runCmdEnv([]string{"HELM_CACHE_HOME=" + t.TempDir(), "HELM_CONFIG_HOME=" + t.TempDir()}, helmBin, cmd...); err != nil {
		t.Fatalf("helm %v: %v\n%s", cmd, err, out)
	}
	return dir
}

func runCmdEnv(env []string, name string, args ...string) (string, error) {
	return runCombinedEnv(env, name, args...)
}

// nativeSidecarsToContainers is the one change podman needs in a pod spec
// with a native sidecar: podman 4.3 does not know restartPolicy: Always on
// an init container (it would run it to completion before Postfix, which
// never comes) and refuses probes on init containers, so the sidecar moves
// to the front of "containers" without restartPolicy. What is lost is the
// ordering Kubernetes gives (repcache ready before Postfix starts, stopped
// after it); Postfix copes, as it does with any cache that comes later: a
// lookup that fails is retried, and postscreen treats it as a miss.
func nativeSidecarsToContainers(t testing.TB, o map[string]any) {
	t.Helper()
	spec := o["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
	var keep, moved []any
	for _, c := range asList(spec["initContainers"]) {
		m := c.(map[string]any)
		if m["restartPolicy"] == "Always" {
			delete(m, "restartPolicy")
			moved = append(moved, m)
		} else {
			keep = append(keep, m)
		}
	}
	if len(moved) == 0 {
		t.Fatalf("no native sidecar (initContainer with restartPolicy: Always) in %v", o["metadata"])
	}
	spec["initContainers"] = keep
	if len(keep) == 0 {
		delete(spec, "initContainers")
	}
	spec["containers"] = append(moved, asList(spec["containers"])...)
}

func asList(v any) []any {
	l, _ := v.([]any)
	return l
}

// volumeSource is the host directory podman mounted at dest in a container.
func volumeSource(t testing.TB, container, dest string) string {
	t.Helper()
	out := podman(t, "inspect", "--format", "{{range .Mounts}}{{.Destination}}={{.Source}}\n{{end}}", container)
	for _, l := range strings.Split(out, "\n") {
		if d, s, ok := strings.Cut(l, "="); ok && d == dest {
			return s
		}
	}
	t.Fatalf("container %s mounts nothing at %s:\n%s", container, dest, out)
	return ""
}

var (
	passNew       = regexp.MustCompile(`postscreen\[\d+\]: PASS NEW \[([0-9.]+)\]`)
	passOld       = regexp.MustCompile(`postscreen\[\d+\]: PASS OLD \[([0-9.]+)\]`)
	probeBounced  = regexp.MustCompile(`local\[\d+\]: .* to=<nosuchuser@test\.example>.*status=(undeliverable|bounced)`)
	rejectUnknown = regexp.MustCompile(`^550 5\.1\.1 <nosuchuser@test\.example>: Recipient address rejected: undeliverable address: unknown user`)
)

func countMatches(re *regexp.Regexp, s string) int { return len(re.FindAllString(s, -1)) }

// waitLog waits until container's log matches re more than before times.
func waitLog(t testing.TB, container string, re *regexp.Regexp, before int) string {
	t.Helper()
	var logs string
	waitFor(t, fmt.Sprintf("%s logs %q", container, re), 30*time.Second, func() error {
		logs = containerLogs(t, container)
		if n := countMatches(re, logs); n <= before {
			return fmt.Errorf("%d lines match, want more than %d\n%s", n, before, logs)
		}
		return nil
	})
	return logs
}

// TestSidecarPod: Postfix and repcache in one pod, as a user's chart that
// depends on this one renders it in sidecar mode (the chart's default: a
// unix socket in a volume both containers mount).
func TestSidecarPod(t *testing.T) {
	t.Parallel() // containers wait more than they compute; every port and name is the test's own
	smtpPort, adminPort := freePort(t), freePort(t)
	dir := parentChart(t, "mail")
	objs := helmTemplate(t, dir, "mail", map[string]any{
		"image":    postfixImage,
		"smtpPort": smtpPort,
		"repcache": map[string]any{
			"mode":           "sidecar",
			"image":          imageValues(t),
			"containerPorts": map[string]any{"admin": adminPort},
		},
	})
	for _, o := range objs {
		if o["kind"] == "Deployment" {
			nativeSidecarsToContainers(t, o)
		}
	}
	pods := kubePlay(t, objs)
	pod := pods[0]
	postfix, repcache := pod+"-postfix", pod+"-repcache"
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	smtp := fmt.Sprintf("127.0.0.1:%d", smtpPort)
	waitFor(t, "repcache /readyz", 60*time.Second, func() error {
		code, body, err := httpGet(admin + "/readyz")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})

	// The socket: 0660, group 65532, in the shared volume; repcache runs
	// as 65532 on a read-only root.
	sockDir := volumeSource(t, repcache, "/run/repcache")
	if d := volumeSource(t, postfix, "/run/repcache"); d != sockDir {
		t.Fatalf("postfix mounts %s at /run/repcache, repcache %s: not one volume", d, sockDir)
	}
	sock := filepath.Join(sockDir, "repcache.sock")
	fi, err := os.Stat(sock)
	if err != nil {
		t.Fatalf("no socket in the shared volume: %v\n%s", err, containerLogs(t, repcache))
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode()&os.ModeSocket == 0 || fi.Mode().Perm() != 0o660 || st.Gid != 65532 {
		t.Errorf("socket %s: mode %v gid %d, want a 0660 socket of group 65532", sock, fi.Mode(), st.Gid)
	}
	uid, gid, ro := procIdentity(t, containerPID(t, repcache))
	if uid != "65532" || gid != "65532" || !ro {
		t.Errorf("repcache container: uid %s gid %s read-only root %v, want 65532, 65532, true", uid, gid, ro)
	}

	// postscreen: the first session passes the pregreet test (PASS NEW)
	// and writes the record to repcache; the second finds it (PASS OLD).
	waitFor(t, "SMTP session through postscreen", 60*time.Second, func() error {
		_, err := smtpSession(smtp, "")
		return err
	})
	logs := waitLog(t, postfix, passNew, 0)
	client := passNew.FindStringSubmatch(logs)[1]
	oldBefore := countMatches(passOld, logs)
	if _, err := smtpSession(smtp, ""); err != nil {
		t.Fatal(err)
	}
	logs = waitLog(t, postfix, passOld, oldBefore)
	if got, err := memcache("unix", sock, "get postscreen:"+client+"\r\n"); err != nil || !strings.HasPrefix(got, "VALUE postscreen:"+client+" ") {
		t.Errorf("repcache holds no postscreen record for %s: %q %v", client, got, err)
	}

	// verify: the first RCPT probes local delivery, which bounces; the
	// record lands in repcache. The last RCPT is refused from that record:
	// no new probe.
	var lines []string
	for i := 0; i < 5; i++ {
		lines, err = smtpSession(smtp, "", "nosuchuser@test.example")
		if err != nil {
			t.Fatal(err)
		}
		if rejectUnknown.MatchString(lines[len(lines)-2]) {
			break
		}
		time.Sleep(time.Second)
	}
	rec, err := memcache("unix", sock, "get verify:nosuchuser@test.example\r\n")
	if err != nil || !regexp.MustCompile(`^VALUE verify:nosuchuser@test\.example 0 \d+\r\n2:`).MatchString(rec) {
		t.Fatalf("repcache holds no bounce record (status 2) for nosuchuser@test.example: %q %v\nSMTP %q\n%s", rec, err, lines, containerLogs(t, postfix))
	}
	logs = containerLogs(t, postfix)
	probes := countMatches(probeBounced, logs)
	if probes == 0 {
		t.Fatalf("no bounced verify probe in the log:\n%s", logs)
	}
	lines, err = smtpSession(smtp, "", "nosuchuser@test.example")
	if err != nil || !rejectUnknown.MatchString(lines[len(lines)-2]) {
		t.Errorf("RCPT TO:<nosuchuser@test.example> with a cached bounce: %q %v, want 550", lines, err)
	}
	time.Sleep(2 * time.Second) // a probe, if one were sent, would be logged by now
	if n := countMatches(probeBounced, containerLogs(t, postfix)); n != probes {
		t.Errorf("the cached record did not answer: %d probes before, %d after", probes, n)
	}

	// /metrics shows the hits.
	_, body, err := httpGet(admin + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range []string{"postscreen", "verify"} {
		if n := metric(body, "repcache_commands_total", map[string]string{"map": m, "command": "get", "status": "hit"}); n < 1 {
			t.Errorf("/metrics: repcache_commands_total{map=%q,command=\"get\",status=\"hit\"} is %v, want >= 1", m, n)
		}
	}
}
