// Package testenv starts the real peers repcache's tests talk to (memcached
// today; Redis, Prometheus and Postfix later) as private processes on free
// loopback ports. A missing program fails the test: nothing skips silently.
package testenv

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"
)

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// LookPath finds a program the tests need, or fails the test saying how to
// install it.
func LookPath(t testing.TB, name, debianPackage string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		t.Fatalf("%s not found: install Debian package %q (the README's test command does)", name, debianPackage)
	}
	return p
}

// Memcached starts a private memcached and returns its address. It is
// stopped when the test ends.
func Memcached(t testing.TB, extraArgs ...string) string {
	t.Helper()
	bin := LookPath(t, "memcached", "memcached")
	port := FreePort(t)
	args := []string{"-l", "127.0.0.1", "-p", strconv.Itoa(port), "-U", "0", "-t", "2"}
	if os.Geteuid() == 0 {
		args = append(args, "-u", "root")
	}
	args = append(args, extraArgs...)
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	Start(t, bin, args, addr)
	return addr
}

// Start runs a server process and waits until addr accepts connections.
func Start(t testing.TB, bin string, args []string, addr string) *exec.Cmd {
	t.Helper()
	var out bytes.Buffer
	cmd := exec.Command(bin, args...)
	cmd.Stdout, cmd.Stderr = &out, &out
	exited := run(t, cmd)
	if err := WaitListening(addr, 10*time.Second, exited); err != nil {
		t.Fatalf("%s %v: %v\noutput:\n%s", bin, args, err, out.String())
	}
	return cmd
}

// run starts cmd, kills it when the test ends, and reports its exit. A
// killed test binary takes the process with it (Pdeathsig).
func run(t testing.TB, cmd *exec.Cmd) <-chan error {
	t.Helper()
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", cmd.Path, err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
	})
	return exited
}

// WaitListening polls addr until it accepts a connection, the process
// exits, or the timeout passes.
func WaitListening(addr string, timeout time.Duration, exited <-chan error) error {
	network := "tcp"
	if p, ok := bytes.CutPrefix([]byte(addr), []byte("unix:")); ok {
		network, addr = "unix", string(p)
	}
	deadline := time.Now().Add(timeout)
	for {
		c, err := net.DialTimeout(network, addr, time.Second)
		if err == nil {
			c.Close()
			return nil
		}
		select {
		case err := <-exited:
			return fmt.Errorf("exited before listening: %v", err)
		default:
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("not listening on %s after %v: %v", addr, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SyncBuffer collects a child process's output while a test reads it.
type SyncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *SyncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *SyncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
