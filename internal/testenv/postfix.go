package testenv

// A private, throwaway Postfix instance for end-to-end tests.
//
// The instance runs beside (never instead of) any system Postfix: its own
// config, queue and data directories (so its master.lock and master.pid are
// its own), its own maillog, postscreen on a free 127.0.0.1 port and no other
// inet listener. Postfix's master must start as root, so these tests need
// root; a missing or unusable Postfix fails the test, never skips it.

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// PostfixOptions configures StartPostfix.
type PostfixOptions struct {
	// MainCF lines are appended to main.cf after the harness's base
	// settings (a later definition of a parameter wins), e.g.
	// "postscreen_cache_map = memcache:${dir}/postscreen.cf".
	MainCF []string
	// TableFiles maps a file name relative to the config directory to its
	// content, e.g. "postscreen.cf" -> "memcache = inet:127.0.0.1:PORT\n
	// key_format = postscreen:%s\n".
	TableFiles map[string]string
	// MasterCF lines are appended to master.cf after the harness's
	// services (optional).
	MasterCF []string
}

// In MainCF, TableFiles contents, MasterCF and Postmap arguments, the literal
// ${dir} is replaced by the instance's config directory.
const dirVar = "${dir}"

// Postfix is a running private Postfix instance.
type Postfix struct {
	Dir         string // instance root, removed when the test ends
	ConfigDir   string // Dir/etc: main.cf, master.cf and the TableFiles
	QueueDir    string // Dir/queue (pid/master.pid lives here)
	DataDir     string // Dir/data (master.lock lives here)
	MaillogFile string // Dir/maillog, written by postlogd
	SMTPAddr    string // 127.0.0.1:PORT where postscreen listens
	SyslogName  string // syslog_name: log lines read "SyslogName/postscreen[PID]: ..."

	postfix, postmap, postconf string
	stopped                    bool // stop ran since the last start: the cleanup has nothing to do
}

// postfixBaseMainCF is written first into main.cf. %[1]s is the instance
// root, %[2]s the syslog_name.
const postfixBaseMainCF = `# Written by testenv.StartPostfix: a throwaway test instance.
compatibility_level = 3.6
queue_directory = %[1]s/queue
data_directory = %[1]s/data
mail_owner = postfix
# Log to a file through the postlog service: without this (or syslog) every
# error is silent. maillog_file must lie under maillog_file_prefixes.
maillog_file = %[1]s/maillog
maillog_file_prefixes = %[1]s
syslog_name = %[2]s
inet_interfaces = loopback-only
inet_protocols = ipv4
myhostname = test.example
mydomain = test.example
myorigin = $myhostname
mydestination = test.example
mynetworks = 127.0.0.0/8
relayhost =
# Never send mail out; verify probes to other domains bounce at once.
default_transport = error:5.7.1 outbound mail is disabled in this test instance
# Keep local delivery inside the instance and away from the host's files.
alias_maps =
alias_database =
local_recipient_maps = proxy:unix:passwd.byname $alias_maps
forward_path =
mail_spool_directory = %[1]s/mail
biff = no
in_flow_delay = 0s
# postscreen: screen 127.0.0.1 too, and keep the pregreet wait (the one
# test that runs, before the 220) as short as Postfix allows (min 1s). The
# after-220 tests and DNSBLs are off (Postfix defaults, stated here).
postscreen_access_list =
postscreen_greet_wait = 1s
postscreen_dnsbl_sites =
postscreen_pipelining_enable = no
postscreen_non_smtp_command_enable = no
postscreen_bare_newline_enable = no
postscreen_cache_cleanup_interval = 0
# verify: smtpd polls verify every second (default 3s), up to 3 times.
address_verify_poll_delay = 1s
address_verify_poll_count = 3
address_verify_cache_cleanup_interval = 0
smtpd_recipient_restrictions = reject_unverified_recipient, permit_mynetworks, reject
`

// postfixMasterCF is master.cf: written in full (not derived from the
// host's /etc/postfix/master.cf), chroot n everywhere. %[1]s is SMTPAddr.
const postfixMasterCF = `# Written by testenv.StartPostfix: a throwaway test instance.
# service type  private unpriv  chroot  wakeup  maxproc command + args
%[1]s inet n - n - 1 postscreen
smtpd     pass  -       -       n       -       -       smtpd
dnsblog   unix  -       -       n       -       0       dnsblog
tlsproxy  unix  -       -       n       -       0       tlsproxy
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
lmtp      unix  -       -       n       -       -       lmtp
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
`

const postfixDirPrefix = "repcache-postfix-"

// postfixFreePort picks postscreen's port (a variable for a test).
var postfixFreePort = FreePort

// StartPostfix builds and starts a private Postfix instance and stops it
// (and removes its directory) when the test ends. Any failure fails the test
// with postfix's output and the maillog.
func StartPostfix(t testing.TB, o PostfixOptions) *Postfix {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Fatalf("StartPostfix: Postfix's master must start as root; run the end-to-end tests as root (euid is %d)", os.Geteuid())
	}
	p := &Postfix{}
	p.postfix = postfixCommand(t, "postfix")
	p.postmap = postfixCommand(t, "postmap")
	p.postconf = postfixCommand(t, "postconf")
	if _, err := user.Lookup("postfix"); err != nil {
		t.Fatalf("StartPostfix: no user postfix (%v): install Debian package \"postfix\"", err)
	}
	for _, l := range o.MainCF {
		if strings.Contains(l, "memcache:") {
			if out, err := p.runSplit("", p.postconf, "-m"); err != nil || !regexp.MustCompile(`(?m)^memcache$`).MatchString(out) {
				t.Fatalf("this Postfix has no memcache table type (postconf -m: %q, %v): install Debian package \"postfix\"", out, err)
			}
			break
		}
	}
	reapStalePostfixOnce.Do(func() { reapStalePostfix(p.postfix) })

	dir, err := os.MkdirTemp(postfixBaseDir(), postfixDirPrefix)
	if err != nil {
		t.Fatal(err)
	}
	// MkdirTemp makes 0700; postfix's unprivileged daemons must traverse it.
	if err := os.Chmod(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	p.Dir = dir
	p.ConfigDir = filepath.Join(dir, "etc")
	p.QueueDir = filepath.Join(dir, "queue")
	p.DataDir = filepath.Join(dir, "data")
	p.MaillogFile = filepath.Join(dir, "maillog")
	p.SyslogName = "postfix-" + strings.TrimPrefix(filepath.Base(dir), postfixDirPrefix)
	if err := os.WriteFile(filepath.Join(dir, "owner"), []byte(processIdentity(os.Getpid())), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if os.Getenv("REPCACHE_TESTENV_KEEP") != "" && t.Failed() {
			t.Logf("postfix instance kept in %s (REPCACHE_TESTENV_KEEP)", dir)
			return
		}
		os.RemoveAll(dir)
	})

	// The queue directory must exist before any postfix command (they chdir
	// to it), root-owned 0755. Its subdirectories and the data directory
	// are left to "postfix start" (post-install create-missing), which
	// creates them with postfix's owners and modes.
	for _, d := range []string{p.ConfigDir, p.QueueDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Mkdir(filepath.Join(dir, "mail"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(filepath.Join(dir, "mail"), 0o1777); err != nil {
		t.Fatal(err)
	}
	for name, content := range o.TableFiles {
		path := filepath.Join(p.ConfigDir, name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(p.expand(content)), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var mainCF bytes.Buffer
	fmt.Fprintf(&mainCF, postfixBaseMainCF, dir, p.SyslogName)
	if len(o.MainCF) > 0 {
		mainCF.WriteString("# PostfixOptions.MainCF\n")
	}
	for _, l := range o.MainCF {
		mainCF.WriteString(p.expand(l) + "\n")
	}
	if err := os.WriteFile(filepath.Join(p.ConfigDir, "main.cf"), mainCF.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}

	// A maillog_file outside maillog_file_prefixes makes every Postfix
	// program die with a message that goes to syslog only: check first.
	if lines := strings.Split(p.Postconf(t, "-h", "maillog_file", "maillog_file_prefixes"), "\n"); len(lines) < 2 || !maillogAllowed(lines[0], lines[1]) {
		t.Fatalf("StartPostfix: maillog_file and maillog_file_prefixes disagree (%q): Postfix would fail silently", lines)
	}

	t.Cleanup(func() {
		if !p.stopped {
			p.stop(t.Logf)
		}
	})

	// The port comes from FreePort and may be taken again before master
	// binds it: retry with another port when that is why start failed.
	const attempts = 3
	logStart := 0
	for attempt := 1; ; attempt++ {
		p.SMTPAddr = net.JoinHostPort("127.0.0.1", strconv.Itoa(postfixFreePort(t)))
		var masterCF bytes.Buffer
		fmt.Fprintf(&masterCF, postfixMasterCF, p.SMTPAddr)
		for _, l := range o.MasterCF {
			masterCF.WriteString(p.expand(l) + "\n")
		}
		if err := os.WriteFile(filepath.Join(p.ConfigDir, "master.cf"), masterCF.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		logStart = len(p.Maillog())
		out, err := p.run("", p.postfix, "-c", p.ConfigDir, "start")
		if err == nil {
			p.stopped = false
			break
		}
		if attempt < attempts && strings.Contains(p.Maillog()[logStart:], "Address already in use") {
			t.Logf("postfix start: %s was taken, retrying with another port", p.SMTPAddr)
			p.stop(t.Logf)
			continue
		}
		hint := ""
		if strings.TrimSpace(out) == "" && strings.TrimSpace(p.Maillog()[logStart:]) == "" {
			hint = "\n(no output and nothing in the maillog: Postfix logged only to syslog, e.g. a maillog_file problem)"
		}
		t.Fatalf("postfix -c %s start: %v%s\noutput:\n%s\n%s", p.ConfigDir, err, hint, out, p.logDump())
	}
	if _, err := p.masterPID(); err != nil {
		t.Fatalf("postfix started but %v\n%s", err, p.logDump())
	}
	// Not WaitListening: postscreen would take a probe connection for a
	// client (a cache lookup for 127.0.0.1, log lines). Look for the
	// listening socket in /proc/net/tcp instead. master owns it, so this
	// shows master is up, not that postscreen is healthy: postscreen starts
	// on the first connection, and SMTP/WaitLog report its failures with
	// the maillog.
	if err := waitTCPListen(p.SMTPAddr, 10*time.Second); err != nil {
		t.Fatalf("postfix: %v\n%s", err, p.logDump())
	}
	if l := fatalLogLine(p.Maillog()[logStart:]); l != "" {
		t.Fatalf("postfix logged an error while starting: %s\n%s", l, p.logDump())
	}
	return p
}

// Maillog returns the instance's maillog as it is now.
func (p *Postfix) Maillog() string {
	b, _ := os.ReadFile(p.MaillogFile)
	return string(b)
}

// LogMatches returns the submatches of every maillog line that matches re,
// in log order.
func (p *Postfix) LogMatches(re *regexp.Regexp) [][]string {
	var all [][]string
	for _, l := range strings.Split(p.Maillog(), "\n") {
		if m := re.FindStringSubmatch(l); m != nil {
			all = append(all, m)
		}
	}
	return all
}

// WaitLog polls the maillog until a line matches re and returns that
// line's submatches (m[0] is the matched text). It fails the test with the
// log if no line matches within timeout.
func (p *Postfix) WaitLog(t testing.TB, re *regexp.Regexp, timeout time.Duration) []string {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if m := p.LogMatches(re); len(m) > 0 {
			return m[0]
		}
		if time.Now().After(deadline) {
			t.Fatalf("no maillog line matches %q after %v\n%s", re, timeout, p.logDump())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// Postmap runs "postmap -c ConfigDir args..." (${dir} in args is replaced by
// ConfigDir) and returns its standard output. A non-zero exit (e.g. "-q" of
// a missing key exits 1) is returned as an error that carries its standard
// error.
func (p *Postfix) Postmap(t testing.TB, args ...string) (string, error) {
	t.Helper()
	return p.PostmapInput(t, "", args...)
}

// PostmapInput is Postmap with stdin as its standard input, for
// "postmap -q - TABLE".
func (p *Postfix) PostmapInput(t testing.TB, stdin string, args ...string) (string, error) {
	t.Helper()
	full := []string{"-c", p.ConfigDir}
	for _, a := range args {
		full = append(full, p.expand(a))
	}
	return p.runSplit(stdin, p.postmap, full...)
}

// Postconf runs "postconf -c ConfigDir args..." and returns its output; it
// fails the test if postconf fails.
func (p *Postfix) Postconf(t testing.TB, args ...string) string {
	t.Helper()
	full := append([]string{"-c", p.ConfigDir}, args...)
	out, err := p.runSplit("", p.postconf, full...)
	if err != nil {
		t.Fatalf("postconf %v: %v", full, err)
	}
	return out
}

var reloadLine = regexp.MustCompile(`/master\[\d+\]: reload -- `)

// Reload runs "postfix reload" and waits until master has logged that it
// reloaded (the signal is asynchronous).
func (p *Postfix) Reload(t testing.TB) {
	t.Helper()
	before := len(p.LogMatches(reloadLine))
	out, err := p.run("", p.postfix, "-c", p.ConfigDir, "reload")
	if err != nil {
		t.Fatalf("postfix -c %s reload: %v\noutput:\n%s\n%s", p.ConfigDir, err, out, p.logDump())
	}
	deadline := time.Now().Add(10 * time.Second)
	for len(p.LogMatches(reloadLine)) <= before {
		if time.Now().After(deadline) {
			t.Fatalf("postfix reload: master did not log a reload within 10s\n%s", p.logDump())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// SMTPSession is one SMTP conversation for Postfix.SMTP.
type SMTPSession struct {
	Helo     string        // EHLO argument; default "client.example"
	MailFrom string        // MAIL FROM:<MailFrom>, sent if set or if RcptTo is not empty (default sender@client.example)
	RcptTo   []string      // one RCPT TO:<addr> each (skipped if MAIL is refused)
	Timeout  time.Duration // for the whole conversation; default 30s
}

// SMTPReply is one (possibly multi-line) server reply.
type SMTPReply struct {
	Command string   // the command it answers; "" for the greeting
	Code    int      // 0 if the command was not sent
	Lines   []string // the raw reply lines, e.g. "250-PIPELINING", "250 CHUNKING"
}

// Text is the reply's text without the code prefixes, lines joined by "\n".
func (r SMTPReply) Text() string {
	var b strings.Builder
	for i, l := range r.Lines {
		if i > 0 {
			b.WriteByte('\n')
		}
		if len(l) > 4 {
			b.WriteString(l[4:])
		}
	}
	return b.String()
}

func (r SMTPReply) String() string { return strings.Join(r.Lines, " | ") }

// SMTPResult is what SMTP observed.
type SMTPResult struct {
	ClientPort int           // the client's local port: postscreen and smtpd log it
	BannerWait time.Duration // from connect until the final greeting line
	Banner     SMTPReply     // 220 after postscreen's greet wait (a "220-" line first when the pregreet test ran)
	EHLO       SMTPReply
	Mail       SMTPReply   // Code 0 if not sent
	Rcpt       []SMTPReply // one per RcptTo sent
	Quit       SMTPReply   // Code 0 if the server closed before answering
	Replies    []SMTPReply // all of the above, in order
	Elapsed    time.Duration
}

// SMTP holds one conversation with SMTPAddr: it waits for the full 220
// greeting (so postscreen's pregreet test passes), sends EHLO, optionally
// MAIL FROM and the RCPT TOs, then QUIT. Server refusals are returned, not
// failures; a network error or timeout fails the test with the transcript
// and the maillog.
func (p *Postfix) SMTP(t testing.TB, s SMTPSession) SMTPResult {
	t.Helper()
	if s.Helo == "" {
		s.Helo = "client.example"
	}
	if s.Timeout == 0 {
		s.Timeout = 30 * time.Second
	}
	var res SMTPResult
	start := time.Now()
	fail := func(format string, args ...any) {
		t.Helper()
		var tr strings.Builder
		for _, r := range res.Replies {
			if r.Command != "" {
				fmt.Fprintf(&tr, "> %s\n", r.Command)
			}
			for _, l := range r.Lines {
				fmt.Fprintf(&tr, "< %s\n", l)
			}
		}
		t.Fatalf("SMTP with postfix at %s: %s\ntranscript:\n%s%s", p.SMTPAddr, fmt.Sprintf(format, args...), tr.String(), p.logDump())
	}
	conn, err := net.DialTimeout("tcp", p.SMTPAddr, s.Timeout)
	if err != nil {
		fail("%v", err)
	}
	defer conn.Close()
	conn.SetDeadline(start.Add(s.Timeout))
	res.ClientPort = conn.LocalAddr().(*net.TCPAddr).Port
	br := bufio.NewReader(conn)

	read := func(cmd string) (SMTPReply, error) {
		r := SMTPReply{Command: cmd}
		for {
			line, err := br.ReadString('\n')
			if err != nil {
				if line != "" {
					r.Lines = append(r.Lines, line)
				}
				return r, err
			}
			line = strings.TrimRight(line, "\r\n")
			r.Lines = append(r.Lines, line)
			if len(line) < 3 || (len(line) > 3 && line[3] != ' ' && line[3] != '-') {
				return r, fmt.Errorf("malformed reply line %q", line)
			}
			code, err := strconv.Atoi(line[:3])
			if err != nil || code < 100 || code > 599 {
				return r, fmt.Errorf("malformed reply line %q", line)
			}
			if r.Code != 0 && code != r.Code {
				return r, fmt.Errorf("reply code changed within a multi-line reply: %q", line)
			}
			r.Code = code
			if len(line) == 3 || line[3] == ' ' {
				return r, nil
			}
		}
	}
	do := func(cmd string) SMTPReply {
		t.Helper()
		if _, err := conn.Write([]byte(cmd + "\r\n")); err != nil {
			fail("send %q: %v", cmd, err)
		}
		r, err := read(cmd)
		res.Replies = append(res.Replies, r)
		if err != nil {
			fail("reply to %q: %v", cmd, err)
		}
		return r
	}
	quit := func() {
		if _, err := conn.Write([]byte("QUIT\r\n")); err != nil {
			return
		}
		r, err := read("QUIT")
		if err != nil && r.Code == 0 {
			return // the server may close first
		}
		res.Quit = r
		res.Replies = append(res.Replies, r)
	}

	banner, err := read("")
	res.BannerWait = time.Since(start)
	res.Banner = banner
	res.Replies = append(res.Replies, banner)
	if err != nil {
		fail("greeting: %v", err)
	}
	if banner.Code != 220 {
		quit()
		res.Elapsed = time.Since(start)
		return res
	}
	res.EHLO = do("EHLO " + s.Helo)
	if s.MailFrom != "" || len(s.RcptTo) > 0 {
		from := s.MailFrom
		if from == "" {
			from = "sender@client.example"
		}
		res.Mail = do("MAIL FROM:<" + from + ">")
		if res.Mail.Code/100 == 2 {
			for _, rcpt := range s.RcptTo {
				res.Rcpt = append(res.Rcpt, do("RCPT TO:<"+rcpt+">"))
			}
		}
	}
	quit()
	res.Elapsed = time.Since(start)
	return res
}

// Stop stops the instance now (the test's cleanup would otherwise); the
// instance directory stays until the test ends.
func (p *Postfix) Stop(t testing.TB) {
	t.Helper()
	p.stop(t.Logf)
}

// stop stops the instance and kills whatever of it is left; safe to call
// when it never started or already stopped.
func (p *Postfix) stop(logf func(format string, args ...any)) {
	defer func() { p.stopped = true }()
	if pid, err := p.masterPID(); err == nil && p.ours(pid) {
		// What "postfix stop" does, minus its 1s polling: SIGTERM master
		// (which SIGTERMs its daemons) and wait for it to exit.
		syscall.Kill(pid, syscall.SIGTERM)
		if !waitGone(pid, 5*time.Second) {
			logf("postfix %s: master %d ignored SIGTERM, using postfix stop", p.Dir, pid)
			p.run("", p.postfix, "-c", p.ConfigDir, "stop") // SIGKILLs master's process group
		}
	}
	// Without a live master from the pid file (a failed start, a stale
	// pid file) "postfix stop" is no use: it fails with a fatal message,
	// and every Postfix program sleeps 1s after a fatal one. Whatever of
	// the instance still runs is signalled directly.
	if n := p.killLeftovers(); n > 0 {
		logf("postfix %s: SIGKILLed %d process(es) that outlived SIGTERM", p.Dir, n)
	}
}

// ours reports whether pid is a live process of this instance: Postfix's
// master exports MAIL_CONFIG to everything it starts.
func (p *Postfix) ours(pid int) bool {
	st, ok := procStat(pid)
	if !ok || st.state == "Z" {
		return false
	}
	env, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/environ")
	if err != nil {
		return false
	}
	want := "MAIL_CONFIG=" + p.ConfigDir
	for _, kv := range strings.Split(string(env), "\x00") {
		if kv == want {
			return true
		}
	}
	return false
}

// processes lists this instance's live processes.
func (p *Postfix) processes() []int {
	var pids []int
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		if pid, err := strconv.Atoi(e.Name()); err == nil && pid != os.Getpid() && p.ours(pid) {
			pids = append(pids, pid)
		}
	}
	return pids
}

// killLeftovers SIGTERMs this instance's remaining processes (daemons
// still exiting after master, or a failed start's), waits up to 2s for them
// to exit, then SIGKILLs the rest and returns how many it had to SIGKILL.
func (p *Postfix) killLeftovers() int {
	for _, pid := range p.processes() {
		syscall.Kill(pid, syscall.SIGTERM)
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		left := p.processes()
		if len(left) == 0 {
			return 0
		}
		if time.Now().After(deadline) {
			for _, pid := range left {
				syscall.Kill(pid, syscall.SIGKILL)
			}
			// Their sockets close only once they are gone: a caller that
			// checks the port next must not find it still open.
			for _, pid := range left {
				waitGone(pid, 5*time.Second)
			}
			return len(left)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitGone waits until pid has exited (or is a zombie).
func waitGone(pid int, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for {
		if st, ok := procStat(pid); !ok || st.state == "Z" {
			return true
		}
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (p *Postfix) masterPID() (int, error) {
	b, err := os.ReadFile(filepath.Join(p.QueueDir, "pid", "master.pid"))
	if err != nil {
		return 0, err
	}
	pid, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil || pid <= 1 {
		return 0, fmt.Errorf("bad master.pid %q", b)
	}
	return pid, nil
}

type procStatFields struct {
	state     string
	starttime string
}

// procStat parses /proc/PID/stat: the state (the first field after the
// parenthesised name) and the start time (field 22).
func procStat(pid int) (procStatFields, bool) {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return procStatFields{}, false
	}
	i := bytes.LastIndexByte(b, ')')
	if i < 0 {
		return procStatFields{}, false
	}
	f := strings.Fields(string(b[i+1:]))
	if len(f) < 20 {
		return procStatFields{}, false
	}
	return procStatFields{state: f[0], starttime: f[19]}, true
}

// processIdentity names a process across pid reuse: "PID STARTTIME".
func processIdentity(pid int) string {
	st, ok := procStat(pid)
	if !ok {
		return ""
	}
	return strconv.Itoa(pid) + " " + st.starttime
}

var reapStalePostfixOnce sync.Once

// reapStalePostfix stops and removes instances left behind by test
// processes that died without running their cleanups (e.g. killed by go
// test's timeout). It only touches directories with an owner file whose
// process is gone.
func reapStalePostfix(postfix string) {
	dirs, _ := filepath.Glob(filepath.Join(postfixBaseDir(), postfixDirPrefix+"*"))
	for _, dir := range dirs {
		owner, err := os.ReadFile(filepath.Join(dir, "owner"))
		if err != nil || len(owner) == 0 {
			continue
		}
		f := strings.Fields(string(owner))
		if len(f) != 2 {
			continue
		}
		pid, err := strconv.Atoi(f[0])
		if err != nil || processIdentity(pid) == string(owner) {
			continue // still running
		}
		p := &Postfix{Dir: dir, ConfigDir: filepath.Join(dir, "etc"), QueueDir: filepath.Join(dir, "queue"), DataDir: filepath.Join(dir, "data"), postfix: postfix}
		p.stop(func(string, ...any) {})
		os.RemoveAll(dir)
	}
}

// postfixBaseDir is where instance directories go: os.TempDir() if postfix
// can traverse it and it is short (the queue's UNIX sockets must fit in
// sun_path's 108 bytes), else /tmp.
func postfixBaseDir() string {
	base := os.TempDir()
	if len(base) > 40 || !worldTraversable(base) {
		return "/tmp"
	}
	return base
}

func worldTraversable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// postfixCommand finds a Postfix command: on PATH, else in /usr/sbin (often
// not on a non-login PATH), else fails like LookPath.
func postfixCommand(t testing.TB, name string) string {
	t.Helper()
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/usr/local/sbin"} {
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	return LookPath(t, name, "postfix")
}

// waitTCPListen waits until /proc/net/tcp shows a socket listening on addr
// (an IPv4 host:port), without connecting to it.
func waitTCPListen(addr string, timeout time.Duration) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	ip := net.ParseIP(host).To4()
	pn, err := strconv.Atoi(port)
	if ip == nil || err != nil {
		return fmt.Errorf("waitTCPListen: %q is not IPv4 host:port", addr)
	}
	// /proc/net/tcp shows the address as the in-memory (little-endian on
	// x86/arm) u32 in hex, and the port in big-endian hex; 0A is LISTEN.
	want := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[3], ip[2], ip[1], ip[0], pn)
	wantBE := fmt.Sprintf("%02X%02X%02X%02X:%04X", ip[0], ip[1], ip[2], ip[3], pn)
	deadline := time.Now().Add(timeout)
	for {
		b, err := os.ReadFile("/proc/net/tcp")
		if err != nil {
			return err
		}
		for _, l := range strings.Split(string(b), "\n")[1:] {
			f := strings.Fields(l)
			if len(f) > 3 && (f[1] == want || f[1] == wantBE) && f[3] == "0A" {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("nothing listens on %s after %v", addr, timeout)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// backdateConfig sets the mtime of recently written files in ConfigDir two
// minutes back; every Postfix command runs after it. Postfix
// (util/load_file.c) re-reads a file, 300ms at a time, until its mtime is
// more than a second older than the read began: without this every Postfix
// program started within ~2s of writing main.cf (postfix start, then each
// daemon it starts, postconf, postmap) stalls about 2s.
func (p *Postfix) backdateConfig() error {
	if p.ConfigDir == "" {
		return nil
	}
	now := time.Now()
	old := now.Add(-2 * time.Minute)
	return filepath.WalkDir(p.ConfigDir, func(path string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		fi, err := d.Info()
		if err != nil || now.Sub(fi.ModTime()) > time.Minute {
			return err
		}
		return os.Chtimes(path, old, old)
	})
}

func (p *Postfix) expand(s string) string { return strings.ReplaceAll(s, dirVar, p.ConfigDir) }

// run runs a Postfix command and returns its combined output.
func (p *Postfix) run(stdin, bin string, args ...string) (string, error) {
	var out bytes.Buffer
	err := p.exec(stdin, &out, &out, bin, args...)
	return out.String(), err
}

// runSplit returns standard output; standard error goes into the error.
func (p *Postfix) runSplit(stdin, bin string, args ...string) (string, error) {
	var out, errOut bytes.Buffer
	err := p.exec(stdin, &out, &errOut, bin, args...)
	if err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(errOut.String()))
	}
	return out.String(), nil
}

func (p *Postfix) exec(stdin string, stdout, stderr *bytes.Buffer, bin string, args ...string) error {
	if err := p.backdateConfig(); err != nil {
		return err
	}
	// Files, not pipes: under "postfix start" the daemonizing master
	// inherits the descriptors and holds them for a while, so Wait on a
	// pipe took ~1.5s longer (seen on 3.7.11) than the command itself.
	outF, err := os.CreateTemp("", "postfix-out-")
	if err != nil {
		return err
	}
	defer os.Remove(outF.Name())
	defer outF.Close()
	errF := outF
	if stderr != stdout {
		if errF, err = os.CreateTemp("", "postfix-err-"); err != nil {
			return err
		}
		defer os.Remove(errF.Name())
		defer errF.Close()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = p.Dir
	cmd.Stdin = strings.NewReader(stdin)
	cmd.Stdout, cmd.Stderr = outF, errF
	cmd.WaitDelay = time.Second
	err = cmd.Run()
	if b, rerr := os.ReadFile(outF.Name()); rerr == nil {
		stdout.Write(b)
	}
	if errF != outF {
		if b, rerr := os.ReadFile(errF.Name()); rerr == nil {
			stderr.Write(b)
		}
	}
	return err
}

func maillogAllowed(file, prefixes string) bool {
	for _, pre := range strings.FieldsFunc(prefixes, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' }) {
		if strings.HasPrefix(file, pre) {
			return true
		}
	}
	return false
}

var fatalRe = regexp.MustCompile(`: (fatal|panic): `)

func fatalLogLine(log string) string {
	for _, l := range strings.Split(log, "\n") {
		if fatalRe.MatchString(l) {
			return l
		}
	}
	return ""
}

func (p *Postfix) logDump() string {
	return fmt.Sprintf("maillog %s:\n%s", p.MaillogFile, p.Maillog())
}
