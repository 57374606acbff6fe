package containers

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// maxImageBytes bounds the image: a static binary on distroless/static.
// A base with a shell or a package manager, or a binary built with debug
// information, goes over it.
const maxImageBytes = 40 << 20

// TestImage runs the image built from the project's Dockerfile the way the
// chart does (read-only root, --config from a mounted file) and checks what
// the Dockerfile promises.
func TestImage(t *testing.T) {
	t.Parallel() // containers wait more than they compute; every port and name is the test's own
	var img []struct {
		Size   int64
		Config struct {
			User       string
			Entrypoint []string
			Cmd        []string
			Labels     map[string]string
		}
	}
	if err := json.Unmarshal([]byte(podman(t, "image", "inspect", repcacheImage)), &img); err != nil || len(img) != 1 {
		t.Fatalf("podman image inspect %s: %v", repcacheImage, err)
	}
	t.Logf("image %s: %d bytes (%.1f MiB)", repcacheImage, img[0].Size, float64(img[0].Size)/(1<<20))
	if img[0].Size > maxImageBytes {
		t.Errorf("image is %d bytes, over the %d bound", img[0].Size, maxImageBytes)
	}
	if c := img[0].Config; c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/repcache" {
		t.Errorf("image runs %v as %q, want /repcache as 65532:65532", c.Entrypoint, c.User)
	}
	// distroless: nothing to run but repcache.
	if out, err := podmanErr("run", "--rm", "--pull=never", "--network=none", "--entrypoint=/bin/sh", repcacheImage, "-c", "true"); err == nil {
		t.Errorf("the image has a shell: /bin/sh ran (%q)", out)
	}

	// The file decides every address (and the log format): ports other than
	// the image's default CMD's, so that a container that ignored --config
	// would not answer.
	dir := t.TempDir()
	cfg := filepath.Join(dir, "repcache.yaml")
	if err := os.WriteFile(cfg, []byte(`listen: ["0.0.0.0:11311"]
admin:
  listen: "0.0.0.0:9250"
log:
  format: json
`), 0o644); err != nil {
		t.Fatal(err)
	}
	os.Chmod(dir, 0o755)
	mcPort, adminPort := freePort(t), freePort(t)
	name := fmt.Sprintf("repcache-image-test-%d", os.Getpid())
	podmanErr("rm", "-f", name)
	t.Cleanup(func() { podmanErr("rm", "-f", name) })
	podman(t, "run", "-d", "--name", name, "--pull=never", "--read-only",
		"-p", fmt.Sprintf("127.0.0.1:%d:11311", mcPort), "-p", fmt.Sprintf("127.0.0.1:%d:9250", adminPort),
		"-v", cfg+":/etc/repcache/repcache.yaml:ro",
		repcacheImage, "--config=/etc/repcache/repcache.yaml")
	mc := fmt.Sprintf("127.0.0.1:%d", mcPort)
	admin := fmt.Sprintf("http://127.0.0.1:%d", adminPort)
	waitFor(t, "GET /readyz", 30*time.Second, func() error {
		code, body, err := httpGet(admin + "/readyz")
		if err == nil && code != 200 {
			err = fmt.Errorf("status %d: %s", code, body)
		}
		return err
	})

	stamp := time.Now().Add(24 * time.Hour).Unix()
	rec := fmt.Sprintf("%d;1;1;1;1", stamp)
	got, err := memcache("tcp", mc, fmt.Sprintf("set postscreen:192.0.2.7 0 0 %d\r\n%s\r\nget postscreen:192.0.2.7\r\n", len(rec), rec))
	got2, _ := memcache("tcp", mc, "get postscreen:192.0.2.7\r\n")
	if want := fmt.Sprintf("VALUE postscreen:192.0.2.7 0 %d\r\n%s\r\nEND\r\n", len(rec), rec); err != nil || got2 != want {
		t.Errorf("memcache through the published port: set answered %q (%v), get %q, want %q", got, err, got2, want)
	}

	pid := containerPID(t, name)
	uid, gid, ro := procIdentity(t, pid)
	if uid != "65532" || gid != "65532" {
		t.Errorf("repcache runs as uid %s gid %s, want 65532 (the image's USER)", uid, gid)
	}
	if !ro {
		t.Errorf("the container's root file system is writable")
	}

	// SIGTERM (podman stop) lets it finish and exit 0; a process that
	// ignored it would be killed after the timeout (exit 137).
	podman(t, "stop", "--time", "30", name)
	var st []struct {
		State struct {
			ExitCode  int
			OOMKilled bool
		}
	}
	json.Unmarshal([]byte(podman(t, "inspect", name)), &st)
	logs := containerLogs(t, name)
	if len(st) != 1 || st[0].State.ExitCode != 0 {
		t.Errorf("after SIGTERM: state %+v, want exit code 0\n%s", st, logs)
	}
	var lines []map[string]any
	for _, l := range strings.Split(strings.TrimSpace(logs), "\n") {
		var m map[string]any
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			t.Errorf("log line is not JSON (log.format json from the mounted file): %q", l)
			continue
		}
		lines = append(lines, m)
	}
	var sawShutdown, sawStopped bool
	for _, m := range lines {
		if strings.HasPrefix(fmt.Sprint(m["msg"]), "shutting down") && m["signal"] == "terminated" {
			sawShutdown = true
		}
		if m["msg"] == "stopped" {
			sawStopped = true
		}
	}
	if !sawShutdown || !sawStopped {
		t.Errorf("no \"shutting down\" (signal terminated) and \"stopped\" log lines:\n%s", logs)
	}
	t.Logf("image %s: %s MiB, stopped cleanly on SIGTERM", repcacheImage, strconv.FormatFloat(float64(img[0].Size)/(1<<20), 'f', 1, 64))
}
