package main

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bradfitz/gomemcache/memcache"

	"github.com/repcache/repcache/internal/config"
	"github.com/repcache/repcache/internal/testenv"
)

// binary is the repcache executable built once for the acceptance tests.
var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "repcache-test")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	binary = filepath.Join(dir, "repcache")
	args := []string{"build", "-o", binary}
	if raceEnabled {
		args = append(args, "-race")
	}
	if out, err := exec.Command("go", append(args, ".")...).CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build repcache: %v\n%s", err, out)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type proc struct {
	cmd    *exec.Cmd
	out    *testenv.SyncBuffer
	exited chan error
}

// start runs the built binary with a clean environment plus env.
func start(t *testing.T, env []string, args ...string) *proc {
	t.Helper()
	p := &proc{cmd: exec.Command(binary, args...), out: &testenv.SyncBuffer{}, exited: make(chan error, 1)}
	p.cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
	p.cmd.Stdout, p.cmd.Stderr = p.out, p.out
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { p.exited <- p.cmd.Wait() }()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		select {
		case <-p.exited:
		case <-time.After(5 * time.Second):
		}
		if t.Failed() {
			t.Logf("repcache output:\n%s", p.out.String())
		}
	})
	return p
}

// waitLog waits until the log holds what at least n times: the process
// writes a line after the event a test sees, so the line can trail it.
func (p *proc) waitLog(t *testing.T, what string, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.Count(p.out.String(), what) < n {
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d %q lines in the log:\n%s", strings.Count(p.out.String(), what), n, what, p.out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *proc) waitListening(t *testing.T, addr string) {
	t.Helper()
	if err := testenv.WaitListening(addr, 20*time.Second, p.exited); err != nil {
		t.Fatalf("%v\n%s", err, p.out.String())
	}
}

func TestServesTCPAndUnixSocket(t *testing.T) {
	port := testenv.FreePort(t)
	admin := testenv.FreePort(t)
	sock := filepath.Join(t.TempDir(), "repcache.sock")
	cfg := filepath.Join(t.TempDir(), "repcache.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: ["127.0.0.1:%d", "unix:%s"]
unix_socket_mode: "0600"
admin:
  listen: 127.0.0.1:%d
cache:
  memory:
    max_bytes: 16MiB
`, port, sock, admin)), 0o644)
	p := start(t, nil, "--config", cfg)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p.waitListening(t, addr)
	p.waitListening(t, "unix:"+sock)

	mc := memcache.New(addr)
	if err := mc.Set(&memcache.Item{Key: "postscreen:10.0.0.1", Value: []byte("1795673021;1;1;1;1")}); err != nil {
		t.Fatal(err)
	}
	c, err := net.Dial("unix", sock)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	io.WriteString(c, "get postscreen:10.0.0.1\r\n")
	r := bufio.NewReader(c)
	var got strings.Builder
	for range 3 {
		l, _ := r.ReadString('\n')
		got.WriteString(l)
	}
	if got.String() != "VALUE postscreen:10.0.0.1 0 18\r\n1795673021;1;1;1;1\r\nEND\r\n" {
		t.Fatalf("record written over TCP, read over the unix socket: %q", got.String())
	}
	if fi, err := os.Stat(sock); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("socket mode %v, %v", fi.Mode().Perm(), err)
	}
	for _, path := range []string{"/livez", "/readyz", "/metrics"} {
		resp, err := http.Get(fmt.Sprintf("http://127.0.0.1:%d%s", admin, path))
		if err != nil || resp.StatusCode != 200 {
			t.Fatalf("GET %s: %v %v", path, err, resp)
		}
		resp.Body.Close()
	}

	// SIGTERM: exits 0, promptly, and removes nothing it should not.
	p.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case err := <-p.exited:
		if err != nil {
			t.Fatalf("exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Fatal("did not exit within 15s of SIGTERM")
	}
	if !strings.Contains(p.out.String(), "shutting down") {
		t.Fatalf("no shutdown log line:\n%s", p.out.String())
	}
}

func TestDefaultsNeedNoConfig(t *testing.T) {
	// The defaults listen on 127.0.0.1:11211; move only the port so the test
	// cannot collide with a real memcached, through the environment.
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := start(t, []string{"REPCACHE_LISTEN=" + addr, "REPCACHE_ADMIN__LISTEN="})
	p.waitListening(t, addr)
	if err := memcache.New(addr).Ping(); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(p.out.String(), `backend=memory`) {
		t.Fatalf("startup log does not name the backend:\n%s", p.out.String())
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	bad := filepath.Join(dir, "bad.yaml")
	os.WriteFile(good, []byte("limits:\n  max_connections: 10\n"), 0o644)
	os.WriteFile(bad, []byte("limits:\n  max_conections: 10\n"), 0o644)
	for _, tc := range []struct {
		args     []string
		env      []string
		code     int
		contains string
	}{
		{[]string{"check-config", "--config", good}, nil, 0, "configuration OK"},
		{[]string{"check-config", "--config", bad}, nil, 1, `unknown field "limits.max_conections"`},
		{[]string{"check-config", "--config", filepath.Join(dir, "missing.yaml")}, nil, 1, "no such file"},
		{[]string{"check-config"}, []string{"REPCACHE_LIMITS__MAX_CONNECTIONS=lots"}, 1, "limits.max_connections"},
		{[]string{"check-config", "--limits.max_key_length", "0"}, nil, 1, "limits.max_key_length"},
		{[]string{"--no-such-flag"}, nil, 2, "unknown flag"},
		{[]string{"version"}, nil, 0, "repcache"},
	} {
		cmd := exec.Command(binary, tc.args...)
		cmd.Env = append([]string{"PATH=" + os.Getenv("PATH")}, tc.env...)
		out, _ := cmd.CombinedOutput()
		if code := cmd.ProcessState.ExitCode(); code != tc.code || !strings.Contains(string(out), tc.contains) {
			t.Errorf("repcache %v: exit %d, output %q; want exit %d containing %q", tc.args, code, out, tc.code, tc.contains)
		}
	}
}

func TestListenFailureIsReported(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	cmd := exec.Command(binary, "--listen", ln.Addr().String(), "--admin.listen", "")
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "cannot listen on "+ln.Addr().String()) {
		t.Fatalf("port in use: exit %d, %s", cmd.ProcessState.ExitCode(), out)
	}
}

// TestMapRulesOverTheWire checks the default maps end to end through the
// binary: derived lifetimes, refusal of garbage, passthrough for the rest.
func TestMapRulesOverTheWire(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := start(t, nil, "--listen", addr, "--admin.listen", "")
	p.waitListening(t, addr)
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	r := bufio.NewReader(c)
	ask := func(req string) string {
		t.Helper()
		io.WriteString(c, req)
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		return strings.TrimRight(l, "\r\n")
	}
	ttlOf := func(key string) int64 {
		t.Helper()
		var ttl int64
		if l := ask("mg " + key + " t\r\n"); !strings.HasPrefix(l, "HD t") {
			t.Fatalf("mg %s: %q", key, l)
		} else {
			fmt.Sscanf(l, "HD t%d", &ttl)
		}
		return ttl
	}
	near := func(what string, got, want int64) {
		t.Helper()
		if got < want-5 || got > want+5 {
			t.Errorf("%s: remaining lifetime %d, want %d ±5", what, got, want)
		}
	}
	now := time.Now().Unix()
	stamp := now + 86400
	rec := fmt.Sprintf("%d;1;1;1;1", stamp)
	if l := ask(fmt.Sprintf("set postscreen:192.0.2.1 0 3600 %d\r\n%s\r\n", len(rec), rec)); l != "STORED" {
		t.Fatal(l)
	}
	near("postscreen (stamp + 7d)", ttlOf("postscreen:192.0.2.1"), stamp+7*86400-now)

	ok := fmt.Sprintf("0:0:%d:250 2.1.5 Ok", now)
	if l := ask(fmt.Sprintf("set verify:user@test.example 0 2678400 %d\r\n%s\r\n", len(ok), ok)); l != "STORED" {
		t.Fatal(l)
	}
	near("verify OK with the manual's ttl=2678400 (not born expired)", ttlOf("verify:user@test.example"), 31*86400)

	if l := ask("set postscreen:192.0.2.1 0 0 7\r\ngarbage\r\n"); !strings.HasPrefix(l, "CLIENT_ERROR map postscreen:") {
		t.Fatalf("garbage on the postscreen map: %q", l)
	}
	near("postscreen record after a refused write", ttlOf("postscreen:192.0.2.1"), stamp+7*86400-now)

	if l := ask("set other:key 0 100 1\r\nx\r\n"); l != "STORED" {
		t.Fatal(l)
	}
	near("passthrough", ttlOf("other:key"), 100)
}

// TestCheckConfigAgreesWithServing runs every testdata/startup case through
// check-config and through serving: the first line of each file's "want:"
// is check-config's verdict and serving's refusal, word for word.
func TestCheckConfigAgreesWithServing(t *testing.T) {
	files, err := filepath.Glob("testdata/startup/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no startup cases: %v", err)
	}
	for _, file := range files {
		t.Run(strings.TrimSuffix(filepath.Base(file), ".yaml"), func(t *testing.T) {
			b, err := os.ReadFile(file)
			if err != nil {
				t.Fatal(err)
			}
			var env []string
			want := ""
			for _, l := range strings.Split(string(b), "\n") {
				if v, ok := strings.CutPrefix(l, "# env: "); ok {
					env = append(env, v)
				}
				if v, ok := strings.CutPrefix(l, "# want: "); ok {
					want = v
				}
			}
			if want == "" {
				t.Fatal("no \"# want: \" line")
			}
			addr := fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t))
			args := []string{"--config", file, "--listen", addr, "--admin.listen", ""}

			check := exec.Command(binary, append([]string{"check-config"}, args...)...)
			check.Env = append([]string{"PATH=" + os.Getenv("PATH")}, env...)
			out, _ := check.CombinedOutput()
			code := check.ProcessState.ExitCode()

			p := start(t, env, args...)
			if want == "configuration OK" {
				if code != 0 || string(out) != "configuration OK\n" {
					t.Errorf("check-config: exit %d, %q; want exit 0, %q", code, out, want)
				}
				p.waitListening(t, addr)
				return
			}
			if line := "repcache: " + want + "\n"; code != 1 || string(out) != line {
				t.Errorf("check-config: exit %d, %q\nwant exit 1, %q", code, out, line)
			}
			select {
			case err := <-p.exited:
				p.exited <- err // for the cleanup
			case <-time.After(60 * time.Second): // a hang guard, not a timing assertion
				t.Fatalf("serving started with a configuration check-config refuses:\n%s", p.out.String())
			}
			if code, got := p.cmd.ProcessState.ExitCode(), p.out.String(); code != 1 || got != "repcache: "+want+"\n" {
				t.Errorf("serving: exit %d, %q\nwant exit 1, %q", code, got, "repcache: "+want+"\n")
			}
		})
	}
}

func TestLoggerFollowsFormatAndLevel(t *testing.T) {
	var buf bytes.Buffer
	cfg := config.Default()
	cfg.Log.Format = "json"
	level := new(slog.LevelVar)
	level.Set(slog.LevelWarn)
	log := newLogger(cfg, &buf, level)
	log.Info("hidden")
	log.Warn("shown", "k", 1)
	var rec map[string]any
	if err := json.Unmarshal(buf.Bytes(), &rec); err != nil || rec["msg"] != "shown" {
		t.Errorf("json logger wrote %q (%v)", buf.String(), err)
	}
	buf.Reset()
	level.Set(slog.LevelInfo) // a reload
	newLogger(config.Default(), &buf, level).Info("hello", "k", 1)
	if !strings.Contains(buf.String(), "level=INFO msg=hello k=1") {
		t.Errorf("text logger wrote %q", buf.String())
	}
}
