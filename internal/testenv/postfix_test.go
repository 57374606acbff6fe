package testenv

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// These tests run Debian's Postfix against a real memcached (through a
// recording pass-through proxy, to see exactly what Postfix sends).

func TestPostfixPostscreen(t *testing.T) {
	mc := Memcached(t)
	rec := newMemcacheRecorder(t, mc)
	pf := StartPostfix(t, PostfixOptions{
		MainCF:     []string{"postscreen_cache_map = memcache:${dir}/postscreen.cf"},
		TableFiles: map[string]string{"postscreen.cf": "memcache = inet:" + rec.Addr + "\nkey_format = postscreen:%s\n"},
	})
	// The after-220 tests must be off, so one session passes.
	if got := pf.Postconf(t, "-h", "postscreen_pipelining_enable", "postscreen_non_smtp_command_enable", "postscreen_bare_newline_enable", "postscreen_dnsbl_sites"); got != "no\nno\nno\n\n" {
		t.Fatalf("postscreen after-220 tests / DNSBL: %q", got)
	}

	start := time.Now()
	first := pf.SMTP(t, SMTPSession{})
	t.Logf("first session (%v, greeting after %v): %v", first.Elapsed, first.BannerWait, first.Replies)
	if first.Banner.Code != 220 || first.EHLO.Code != 250 || first.Quit.Code != 221 {
		t.Fatalf("first session: %v\n%s", first.Replies, pf.Maillog())
	}
	// postscreen's pregreet test: "220-" first, the final 220 after
	// postscreen_greet_wait (1s).
	if !strings.HasPrefix(first.Banner.Lines[0], "220-") || first.BannerWait < 900*time.Millisecond {
		t.Errorf("first greeting %q after %v: want a 220- line first and the wait of postscreen_greet_wait", first.Banner.Lines, first.BannerWait)
	}
	passNew := pf.WaitLog(t, regexp.MustCompile(`/postscreen\[\d+\]: PASS NEW \[127\.0\.0\.1\]:`+strconv.Itoa(first.ClientPort)+`$`), 10*time.Second)
	t.Logf("maillog: %s", logLine(pf, passNew[0]))

	val, ok := memcacheGet(t, mc, "postscreen:127.0.0.1")
	if !ok {
		t.Fatalf("memcached has no postscreen:127.0.0.1\nsent to memcache:\n%s\n%s", rec.Sent(), pf.Maillog())
	}
	t.Logf("memcached: postscreen:127.0.0.1 = %q", val)
	m := regexp.MustCompile(`^(\d{10});1;1;1;1$`).FindStringSubmatch(val)
	if m == nil {
		t.Fatalf("postscreen record %q, want PREGREET;1;1;1;1", val)
	}
	// The pregreet pass lasts postscreen_greet_ttl (1d).
	stamp, _ := strconv.ParseInt(m[1], 10, 64)
	if want := start.Unix() + 86400; stamp < want-5 || stamp > want+60 {
		t.Errorf("pregreet stamp %d, want about now+1d = %d", stamp, want)
	}

	second := pf.SMTP(t, SMTPSession{})
	t.Logf("second session (%v, greeting after %v): %v", second.Elapsed, second.BannerWait, second.Replies)
	passOld := pf.WaitLog(t, regexp.MustCompile(`/postscreen\[\d+\]: PASS OLD \[127\.0\.0\.1\]:`+strconv.Itoa(second.ClientPort)+`$`), 10*time.Second)
	t.Logf("maillog: %s", logLine(pf, passOld[0]))
	if second.Banner.Code != 220 || len(second.Banner.Lines) != 1 || second.BannerWait > 500*time.Millisecond {
		t.Errorf("PASS OLD greeting %q after %v: want smtpd's single 220 at once", second.Banner.Lines, second.BannerWait)
	}

	// Exactly what postscreen sent: one get per session and a single set
	// (a PASS OLD session does not rewrite its record).
	sent := rec.Sent()
	t.Logf("sent to memcache:\n%s", sent)
	if want := "set postscreen:127.0.0.1 0 3600 18\r\n" + val + "\r\n"; strings.Count(sent, "set ") != 1 || !strings.Contains(sent, want) {
		t.Errorf("memcache traffic: want exactly one %q", want)
	}
	if n := strings.Count(sent, "get postscreen:127.0.0.1\r\n"); n != 2 {
		t.Errorf("%d gets of postscreen:127.0.0.1, want 2", n)
	}

	// Nothing but the two sessions reached postscreen.
	if n := len(pf.LogMatches(regexp.MustCompile(`/postscreen\[\d+\]: CONNECT from `))); n != 2 {
		t.Errorf("postscreen logged %d CONNECTs, want 2\n%s", n, pf.Maillog())
	}

	// postmap reads the same record through Postfix's memcache client.
	out, err := pf.Postmap(t, "-q", "127.0.0.1", "memcache:${dir}/postscreen.cf")
	if err != nil || out != val+"\n" {
		t.Errorf("postmap -q 127.0.0.1: %q, %v; want %q", out, err, val)
	}
	out, err = pf.PostmapInput(t, "127.0.0.1\n192.0.2.1\n", "-q", "-", "memcache:${dir}/postscreen.cf")
	if err != nil || out != "127.0.0.1\t"+val+"\n" {
		t.Errorf("postmap -q -: %q, %v", out, err)
	}
	if out, err := pf.Postmap(t, "-q", "192.0.2.1", "memcache:${dir}/postscreen.cf"); err == nil || out != "" {
		t.Errorf("postmap -q of a missing key: %q, %v; want exit status 1", out, err)
	}
}

func TestPostfixVerify(t *testing.T) {
	mc := Memcached(t)
	rec := newMemcacheRecorder(t, mc)
	pf := StartPostfix(t, PostfixOptions{
		MainCF: []string{
			"address_verify_map = memcache:${dir}/verify.cf",
			// Keep postscreen's record out of memcache here.
			"postscreen_cache_map = btree:$data_directory/postscreen_cache",
		},
		TableFiles: map[string]string{"verify.cf": "memcache = inet:" + rec.Addr + "\nkey_format = verify:%s\n"},
	})

	const rcpt = "nosuchuser@test.example"
	final := regexp.MustCompile(`^[45]\d\d [45]\.1\.1 <` + rcpt + `>: Recipient address rejected: unverified address: unknown user: "nosuchuser"$`)
	deadline := time.Now().Add(20 * time.Second)
	var answer SMTPReply
	for attempt := 1; ; attempt++ {
		r := pf.SMTP(t, SMTPSession{RcptTo: []string{rcpt}})
		t.Logf("attempt %d (%v): %v", attempt, r.Elapsed, r.Replies)
		if r.Mail.Code != 250 || len(r.Rcpt) != 1 {
			t.Fatalf("session: %v\n%s", r.Replies, pf.Maillog())
		}
		answer = r.Rcpt[0]
		if answer.Code != 450 && answer.Code != 550 {
			t.Fatalf("RCPT TO:<%s>: %v, want 450 or 550\n%s", rcpt, answer, pf.Maillog())
		}
		if final.MatchString(answer.Lines[0]) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("no final verify answer after 20s; last %v\n%s", answer, pf.Maillog())
		}
		time.Sleep(200 * time.Millisecond) // the first answer may be "probe in progress"
	}

	for _, re := range []string{
		`/local\[\d+\]: \w+: to=<` + rcpt + `>, relay=local, .*status=undeliverable \(unknown user: "nosuchuser"\)$`,
		`/smtpd\[\d+\]: NOQUEUE: reject: RCPT from localhost\[127\.0\.0\.1\]: ` + regexp.QuoteMeta(answer.Lines[0]) + `; from=<sender@client\.example> to=<` + rcpt + `> proto=ESMTP helo=<client\.example>$`,
	} {
		m := pf.WaitLog(t, regexp.MustCompile(re), 5*time.Second)
		t.Logf("maillog: %s", logLine(pf, m[0]))
	}

	val, ok := memcacheGet(t, mc, "verify:"+rcpt)
	if !ok {
		t.Fatalf("memcached has no verify:%s\nsent to memcache:\n%s\n%s", rcpt, rec.Sent(), pf.Maillog())
	}
	t.Logf("memcached: verify:%s = %q", rcpt, val)
	// STATUS:PROBED:UPDATED:TEXT; 2 = bounce, PROBED reset to 0 by the result.
	if !regexp.MustCompile(`^2:0:\d{10}:unknown user: "nosuchuser"$`).MatchString(val) {
		t.Errorf("verify record %q, want 2:0:UPDATED:unknown user: \"nosuchuser\"", val)
	}
	sent := rec.Sent()
	t.Logf("sent to memcache:\n%s", sent)
	// verify writes a TODO record (3:PROBED:0:...) before it probes, then the result.
	todo := regexp.MustCompile(`set verify:` + rcpt + ` 0 3600 \d+\r\n3:\d{10}:0:[^\r]*\r\n`)
	result := "set verify:" + rcpt + " 0 3600 " + strconv.Itoa(len(val)) + "\r\n" + val + "\r\n"
	if !todo.MatchString(sent) || !strings.Contains(sent, result) {
		t.Errorf("memcache traffic: want a TODO record set, then %q", result)
	}
}

func TestPostfixTwoInstances(t *testing.T) {
	mc := Memcached(t)
	start := func(prefix string) *Postfix {
		return StartPostfix(t, PostfixOptions{
			MainCF:     []string{"postscreen_cache_map = memcache:${dir}/postscreen.cf"},
			TableFiles: map[string]string{"postscreen.cf": "memcache = inet:" + mc + "\nkey_format = " + prefix + ":%s\n"},
		})
	}
	a, b := start("a"), start("b")
	pidA, errA := a.masterPID()
	pidB, errB := b.masterPID()
	if errA != nil || errB != nil || pidA == pidB || a.Dir == b.Dir || a.SMTPAddr == b.SMTPAddr || a.SyslogName == b.SyslogName {
		t.Fatalf("instances collide: a=%+v (master %d, %v) b=%+v (master %d, %v)", a, pidA, errA, b, pidB, errB)
	}
	t.Logf("a: %s on %s, master %d; b: %s on %s, master %d", a.Dir, a.SMTPAddr, pidA, b.Dir, b.SMTPAddr, pidB)

	// Both at once.
	t.Run("sessions", func(t *testing.T) {
		for name, pf := range map[string]*Postfix{"a": a, "b": b} {
			t.Run(name, func(t *testing.T) {
				t.Parallel()
				r := pf.SMTP(t, SMTPSession{})
				pf.WaitLog(t, regexp.MustCompile(`^\S+ +\d+ [\d:]+ \S+ `+regexp.QuoteMeta(pf.SyslogName)+`/postscreen\[\d+\]: PASS NEW \[127\.0\.0\.1\]:`+strconv.Itoa(r.ClientPort)+`$`), 10*time.Second)
			})
		}
	})
	for prefix, pf := range map[string]*Postfix{"a": a, "b": b} {
		if v, ok := memcacheGet(t, mc, prefix+":127.0.0.1"); !ok {
			t.Errorf("memcached has no %s:127.0.0.1", prefix)
		} else {
			t.Logf("memcached: %s:127.0.0.1 = %q", prefix, v)
		}
		if n := len(pf.LogMatches(regexp.MustCompile(`PASS NEW`))); n != 1 {
			t.Errorf("instance %s logged %d PASS NEW, want 1 (its own)", prefix, n)
		}
	}

	// Reloading or stopping one leaves the other alone.
	a.Reload(t)
	b.Stop(t)
	if err := WaitListening(b.SMTPAddr, 100*time.Millisecond, nil); err == nil {
		t.Errorf("b still listens on %s after stop", b.SMTPAddr)
	}
	r := a.SMTP(t, SMTPSession{})
	a.WaitLog(t, regexp.MustCompile(`/postscreen\[\d+\]: PASS OLD \[127\.0\.0\.1\]:`+strconv.Itoa(r.ClientPort)+`$`), 10*time.Second)
}

// A port taken between FreePort and master's bind makes StartPostfix retry
// on another port. Not parallel: it swaps postfixFreePort. (A failed start
// costs ~2s: Postfix sleeps 1s after each fatal error.)
func TestPostfixPortTakenRetries(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	taken := ln.Addr().(*net.TCPAddr).Port
	calls := 0
	postfixFreePort = func(t testing.TB) int {
		if calls++; calls == 1 {
			return taken
		}
		return FreePort(t)
	}
	defer func() { postfixFreePort = FreePort }()
	pf := StartPostfix(t, PostfixOptions{})
	if calls != 2 || pf.SMTPAddr == ln.Addr().String() {
		t.Fatalf("%d port picks, SMTPAddr %s (taken: %d)", calls, pf.SMTPAddr, taken)
	}
	t.Logf("maillog:\n%s", pf.Maillog())
	if r := pf.SMTP(t, SMTPSession{}); r.Banner.Code != 220 {
		t.Fatalf("after retry: %v", r.Replies)
	}
}

// A failed start fails the test (never skips) and shows the maillog and
// postfix's output.
func TestPostfixStartFailureReports(t *testing.T) {
	for _, c := range []struct {
		name string
		o    PostfixOptions
		want []string
	}{
		{"bad master.cf", PostfixOptions{MasterCF: []string{"bogus unix"}},
			[]string{"postfix -c ", " start: exit status 1", "output:\n", "master.cf: line ", "bad field count", "maillog /", "fatal: "}},
		// Postfix itself would fail silently (its fatal goes to syslog only).
		{"maillog outside prefixes", PostfixOptions{MainCF: []string{"maillog_file_prefixes = /nonexistent"}},
			[]string{"maillog_file and maillog_file_prefixes disagree"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := runFake(t, func(tb testing.TB) { StartPostfix(tb, c.o) })
			t.Logf("reported: %s", f.msg)
			if !f.fatal || f.skipped {
				t.Fatalf("fatal=%v skipped=%v, want a fatal failure", f.fatal, f.skipped)
			}
			for _, want := range c.want {
				if !strings.Contains(f.msg, want) {
					t.Errorf("failure message lacks %q", want)
				}
			}
		})
	}
}

// fakeTB records a failure instead of failing the real test. Cleanups go to
// the real test.
type fakeTB struct {
	testing.TB
	mu             sync.Mutex
	msg            string
	fatal, skipped bool
}

func (f *fakeTB) Helper() {}
func (f *fakeTB) fail(skip bool, s string) {
	f.mu.Lock()
	f.msg += s + "\n"
	f.fatal, f.skipped = f.fatal || !skip, f.skipped || skip
	f.mu.Unlock()
	runtime.Goexit()
}
func (f *fakeTB) Fatalf(format string, args ...any) { f.fail(false, fmt.Sprintf(format, args...)) }
func (f *fakeTB) Fatal(args ...any)                 { f.fail(false, fmt.Sprint(args...)) }
func (f *fakeTB) FailNow()                          { f.fail(false, "FailNow") }
func (f *fakeTB) Errorf(format string, args ...any) { f.Fatalf(format, args...) }
func (f *fakeTB) Error(args ...any)                 { f.Fatal(args...) }
func (f *fakeTB) Skipf(format string, args ...any)  { f.fail(true, fmt.Sprintf(format, args...)) }
func (f *fakeTB) Skip(args ...any)                  { f.fail(true, fmt.Sprint(args...)) }
func (f *fakeTB) SkipNow()                          { f.fail(true, "SkipNow") }
func (f *fakeTB) Failed() bool                      { f.mu.Lock(); defer f.mu.Unlock(); return f.fatal }

func runFake(t *testing.T, fn func(testing.TB)) *fakeTB {
	f := &fakeTB{TB: t}
	done := make(chan struct{})
	go func() {
		defer close(done)
		fn(f)
	}()
	<-done
	return f
}

// logLine returns the whole maillog line that contains s.
func logLine(pf *Postfix, s string) string {
	for _, l := range strings.Split(pf.Maillog(), "\n") {
		if strings.Contains(l, s) {
			return l
		}
	}
	return s
}

// memcacheGet reads key with a plain "get" over TCP.
func memcacheGet(t *testing.T, addr, key string) (string, bool) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := fmt.Fprintf(c, "get %s\r\n", key); err != nil {
		t.Fatal(err)
	}
	br := bufio.NewReader(c)
	line, err := br.ReadString('\n')
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if line == "END\r\n" {
		return "", false
	}
	f := strings.Fields(line)
	if len(f) != 4 || f[0] != "VALUE" || f[1] != key {
		t.Fatalf("get %s: %q", key, line)
	}
	n, err := strconv.Atoi(f[3])
	if err != nil {
		t.Fatalf("get %s: %q", key, line)
	}
	data := make([]byte, n+2)
	if _, err := io.ReadFull(br, data); err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	if end, err := br.ReadString('\n'); err != nil || end != "END\r\n" {
		t.Fatalf("get %s: trailer %q, %v", key, end, err)
	}
	return string(data[:n]), true
}

// memcacheRecorder is a pass-through TCP proxy to memcached that records
// what its clients send.
type memcacheRecorder struct {
	Addr string
	mu   sync.Mutex
	sent strings.Builder
}

func newMemcacheRecorder(t *testing.T, backend string) *memcacheRecorder {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &memcacheRecorder{Addr: ln.Addr().String()}
	var wg sync.WaitGroup
	var conns sync.Map
	t.Cleanup(func() {
		ln.Close()
		conns.Range(func(k, _ any) bool { k.(net.Conn).Close(); return true })
		wg.Wait()
	})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			b, err := net.Dial("tcp", backend)
			if err != nil {
				c.Close()
				continue
			}
			conns.Store(c, true)
			conns.Store(b, true)
			wg.Add(2)
			go func() {
				defer wg.Done()
				io.Copy(c, b)
				c.Close()
			}()
			go func() {
				defer wg.Done()
				io.Copy(b, io.TeeReader(c, r))
				b.Close()
			}()
		}
	}()
	return r
}

func (r *memcacheRecorder) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.Write(p)
}

// Sent is everything the clients sent, in arrival order.
func (r *memcacheRecorder) Sent() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sent.String()
}
