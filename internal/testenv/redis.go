package testenv

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// RedisOptions configures a private redis-server.
type RedisOptions struct {
	// AOF turns on the append-only file with appendfsync always, so every
	// acknowledged write survives a SIGKILL.
	AOF bool
	// Password sets requirepass.
	Password string
	// Args are extra redis-server arguments ("--name", "value", ...),
	// appended after the defaults so they override them.
	Args []string
}

// RedisServer is a private redis-server on a loopback port, with its data
// directory in a t.TempDir(). It is killed when the test ends.
type RedisServer struct {
	bin      string
	args     []string
	addr     string
	dir      string
	password string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{} // closed once cmd has been waited for
	out    *syncBuffer
}

// Redis starts a private redis-server on a free 127.0.0.1 port, with
// `--save "" --appendonly no` unless o says otherwise, and waits until it
// answers PING. A missing redis-server fails the test.
func Redis(t testing.TB, o RedisOptions) *RedisServer {
	t.Helper()
	bin := LookPath(t, "redis-server", "redis-server")
	port := strconv.Itoa(FreePort(t))
	r := &RedisServer{
		bin:      bin,
		addr:     net.JoinHostPort("127.0.0.1", port),
		dir:      t.TempDir(),
		password: o.Password,
	}
	r.args = []string{"--port", port, "--bind", "127.0.0.1", "--dir", r.dir, "--save", "", "--daemonize", "no"}
	if o.AOF {
		r.args = append(r.args, "--appendonly", "yes", "--appendfsync", "always")
	} else {
		r.args = append(r.args, "--appendonly", "no")
	}
	if o.Password != "" {
		r.args = append(r.args, "--requirepass", o.Password)
	}
	r.args = append(r.args, o.Args...)
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		r.killLocked()
	})
	r.start(t)
	return r
}

// Addr is the server's host:port.
func (r *RedisServer) Addr() string { return r.addr }

// Dir is the server's working directory (AOF, cluster config files).
func (r *RedisServer) Dir() string { return r.dir }

// Kill sends SIGKILL and waits until the process is gone.
func (r *RedisServer) Kill(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		t.Fatal("testenv: Kill: redis-server is not running")
	}
	r.killLocked()
}

// Restart starts redis-server again on the same port and directory (after
// Kill) and waits until it answers PING, data loaded. A running server is
// killed first.
func (r *RedisServer) Restart(t testing.TB) {
	t.Helper()
	r.mu.Lock()
	r.killLocked()
	r.mu.Unlock()
	r.start(t)
}

// Stop freezes the server with SIGSTOP: connections stay open, nothing is
// answered.
func (r *RedisServer) Stop(t testing.TB) { t.Helper(); r.signal(t, syscall.SIGSTOP) }

// Cont resumes a stopped server with SIGCONT.
func (r *RedisServer) Cont(t testing.TB) { t.Helper(); r.signal(t, syscall.SIGCONT) }

func (r *RedisServer) signal(t testing.TB, sig syscall.Signal) {
	t.Helper()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.cmd == nil {
		t.Fatalf("testenv: %v: redis-server is not running", sig)
	}
	if err := r.cmd.Process.Signal(sig); err != nil {
		t.Fatalf("testenv: %v redis-server: %v", sig, err)
	}
}

func (r *RedisServer) killLocked() {
	if r.cmd == nil {
		return
	}
	r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
	r.cmd = nil
}

func (r *RedisServer) start(t testing.TB) {
	t.Helper()
	out := &syncBuffer{}
	cmd := exec.Command(r.bin, r.args...)
	cmd.Stdout, cmd.Stderr = out, out
	// A forked child (AOF rewrite) must not keep Wait blocked on the pipe.
	cmd.WaitDelay = time.Second
	// A killed test binary must not leave servers behind.
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", r.bin, err)
	}
	exited := make(chan struct{})
	waitErr := make(chan error, 1)
	go func() {
		waitErr <- cmd.Wait()
		close(exited)
	}()
	r.mu.Lock()
	r.cmd, r.exited, r.out = cmd, exited, out
	r.mu.Unlock()
	if err := r.waitReady(10*time.Second, waitErr); err != nil {
		t.Fatalf("%s %q: %v\noutput:\n%s", r.bin, r.args, err, out.String())
	}
}

// waitReady waits until the server accepts connections and answers PING
// with PONG (not LOADING while it replays its AOF).
func (r *RedisServer) waitReady(timeout time.Duration, exited <-chan error) error {
	if err := WaitListening(r.addr, timeout, exited); err != nil {
		return err
	}
	deadline := time.Now().Add(timeout)
	for {
		reply, err := redisDo(r.addr, r.password, time.Second, "PING")
		if err == nil && reply == "PONG" {
			return nil
		}
		if err == nil {
			err = fmt.Errorf("PING answered %q", reply)
		}
		select {
		case werr := <-exited:
			return fmt.Errorf("exited: %v", werr)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not ready after %v: %v", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Do runs one command on a fresh connection (authenticating first when the
// server has a password) and returns its reply: simple strings, integers
// and bulk strings as text, arrays as their elements joined by "\n", a nil
// reply as "(nil)". An error reply is returned as an error.
func (r *RedisServer) Do(t testing.TB, args ...string) string {
	t.Helper()
	reply, err := redisDo(r.addr, r.password, 5*time.Second, args...)
	if err != nil {
		t.Fatalf("redis %q: %v", args, err)
	}
	return reply
}

// redisDo is a minimal RESP2 client: enough to probe readiness and set up
// a test server without depending on a Redis library.
func redisDo(addr, password string, timeout time.Duration, args ...string) (string, error) {
	c, err := net.DialTimeout("tcp", addr, timeout)
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(timeout))
	rd := bufio.NewReader(c)
	if password != "" {
		if _, err := roundTrip(c, rd, "AUTH", password); err != nil {
			return "", fmt.Errorf("AUTH: %w", err)
		}
	}
	return roundTrip(c, rd, args...)
}

func roundTrip(c net.Conn, rd *bufio.Reader, args ...string) (string, error) {
	var b bytes.Buffer
	fmt.Fprintf(&b, "*%d\r\n", len(args))
	for _, a := range args {
		fmt.Fprintf(&b, "$%d\r\n%s\r\n", len(a), a)
	}
	if _, err := c.Write(b.Bytes()); err != nil {
		return "", err
	}
	return readReply(rd)
}

func readReply(rd *bufio.Reader) (string, error) {
	line, err := rd.ReadString('\n')
	if err != nil {
		return "", err
	}
	line = strings.TrimSuffix(line, "\r\n")
	if line == "" {
		return "", fmt.Errorf("empty reply line")
	}
	switch line[0] {
	case '+', ':':
		return line[1:], nil
	case '-':
		return "", fmt.Errorf("redis: %s", line[1:])
	case '$':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad bulk length %q", line)
		}
		if n < 0 {
			return "(nil)", nil
		}
		buf := make([]byte, n+2)
		if _, err := io.ReadFull(rd, buf); err != nil {
			return "", err
		}
		return string(buf[:n]), nil
	case '*':
		n, err := strconv.Atoi(line[1:])
		if err != nil {
			return "", fmt.Errorf("bad array length %q", line)
		}
		if n < 0 {
			return "(nil)", nil
		}
		elems := make([]string, 0, n)
		for i := 0; i < n; i++ {
			e, err := readReply(rd)
			if err != nil {
				return "", err
			}
			elems = append(elems, e)
		}
		return strings.Join(elems, "\n"), nil
	}
	return "", fmt.Errorf("unexpected reply %q", line)
}

// syncBuffer collects a server's output from its stdout and stderr.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.b.Len() > 1<<20 { // keep memory bounded; the start is what matters
		return len(p), nil
	}
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
