package dashboards

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

// buildRepcache builds the repcache binary into a temporary directory.
func buildRepcache(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "repcache")
	cmd := exec.Command("go", "build", "-o", bin, "github.com/repcache/repcache/cmd/repcache")
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("build repcache: %v\n%s", err, out)
	}
	return bin
}

// repcache is one running repcache: its memcache listener and its admin
// listener (where /metrics is).
type repcache struct {
	addr, admin string
}

// startRepcache runs bin on free ports with extra flags, and waits until
// both its listeners accept connections. It is killed when the test ends.
func startRepcache(t *testing.T, bin string, flags ...string) repcache {
	t.Helper()
	r := repcache{
		addr:  fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
		admin: fmt.Sprintf("127.0.0.1:%d", testenv.FreePort(t)),
	}
	args := append([]string{"--listen", r.addr, "--admin.listen", r.admin}, flags...)
	out := &testenv.SyncBuffer{}
	cmd := exec.Command(bin, args...)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	cmd.Stdout, cmd.Stderr = out, out
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("repcache %q output:\n%s", args, out.String())
		}
	})
	for _, a := range []string{r.addr, r.admin} {
		if err := testenv.WaitListening(a, 20*time.Second, exited); err != nil {
			t.Fatalf("repcache %q: %v\n%s", args, err, out.String())
		}
	}
	resp, err := http.Get("http://" + r.admin + "/metrics")
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %v %v", err, resp)
	}
	resp.Body.Close()
	return r
}

// client is a minimal memcache text-protocol client: the test wants to
// send exactly the commands Postfix and an operator would, and see each
// reply.
type client struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dial(t *testing.T, addr string) *client {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &client{t: t, c: c, r: bufio.NewReader(c)}
}

// do sends one request and reads its reply: lines up to END for get and
// gets, a VA header and its data for mg with v, one line otherwise.
func (m *client) do(req string) string {
	m.t.Helper()
	m.c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := m.c.Write([]byte(req)); err != nil {
		m.t.Fatalf("%q: %v", req, err)
	}
	var reply strings.Builder
	multi := strings.HasPrefix(req, "get ") || strings.HasPrefix(req, "gets ")
	for {
		line, err := m.r.ReadString('\n')
		if err != nil {
			m.t.Fatalf("%q: reply %q: %v", req, reply.String(), err)
		}
		reply.WriteString(line)
		if !multi {
			if strings.HasPrefix(line, "VA ") { // mg ... v: the data line follows
				multi = true
				continue
			}
			return reply.String()
		}
		if line == "END\r\n" || (strings.HasPrefix(req, "mg ") && !strings.HasPrefix(line, "VA ")) {
			return reply.String()
		}
		if strings.HasPrefix(line, "CLIENT_ERROR") || strings.HasPrefix(line, "SERVER_ERROR") || line == "ERROR\r\n" {
			return reply.String()
		}
	}
}

// expect sends req and fails the test unless the reply starts with want.
func (m *client) expect(req, want string) string {
	m.t.Helper()
	got := m.do(req)
	if !strings.HasPrefix(got, want) {
		m.t.Fatalf("%q answered %q, want %q...", req, got, want)
	}
	return got
}

func (m *client) set(key, value string) string {
	m.t.Helper()
	return m.do(fmt.Sprintf("set %s 0 0 %d\r\n%s\r\n", key, len(value), value))
}

func (m *client) mustSet(key, value string) {
	m.t.Helper()
	if got := m.set(key, value); got != "STORED\r\n" {
		m.t.Fatalf("set %s %q: %q", key, value, got)
	}
}

// hit reads key with get and fails the test unless it is found.
func (m *client) hit(key string) {
	m.t.Helper()
	m.expect("get "+key+"\r\n", "VALUE "+key+" ")
}

// miss reads key with get and fails the test if it is found.
func (m *client) miss(key string) {
	m.t.Helper()
	m.expect("get "+key+"\r\n", "END\r\n")
}
