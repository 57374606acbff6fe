package main

import (
	"bufio"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

// postfixOptions turns `repcache postfix-config` output into a private
// Postfix instance's settings: the end-to-end tests configure Postfix from
// exactly what an operator would paste.
func postfixOptions(t *testing.T, cfg string) testenv.PostfixOptions {
	t.Helper()
	out, err := exec.Command(binary, "postfix-config", "--config", cfg, "--table-dir", "${dir}").CombinedOutput()
	if err != nil {
		t.Fatalf("postfix-config: %v\n%s", err, out)
	}
	o := testenv.PostfixOptions{TableFiles: map[string]string{}}
	header := regexp.MustCompile(`^# ---- (.*) ----$`)
	var file string
	for _, l := range strings.Split(string(out), "\n") {
		if m := header.FindStringSubmatch(l); m != nil {
			file = ""
			if strings.HasPrefix(m[1], "${dir}/") {
				file = path.Base(m[1])
			}
			continue
		}
		switch {
		case file != "":
			o.TableFiles[file] += l + "\n"
		case l != "" && !strings.HasPrefix(l, "#"):
			o.MainCF = append(o.MainCF, l)
		}
	}
	if len(o.MainCF) == 0 || len(o.TableFiles) == 0 {
		t.Fatalf("could not read postfix-config output:\n%s", out)
	}
	return o
}

// mc is a plain memcache text-protocol client for inspecting repcache.
type mc struct {
	t *testing.T
	c net.Conn
	r *bufio.Reader
}

func dialMC(t *testing.T, addr string) *mc {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &mc{t, c, bufio.NewReader(c)}
}

func (m *mc) line(req string) string {
	m.t.Helper()
	m.c.SetDeadline(time.Now().Add(5 * time.Second))
	io.WriteString(m.c, req)
	l, err := m.r.ReadString('\n')
	if err != nil {
		m.t.Fatalf("%q: %v", req, err)
	}
	return strings.TrimRight(l, "\r\n")
}

// record reads a key's value and remaining lifetime (mg KEY t v).
func (m *mc) record(key string) (value string, ttl int64, ok bool) {
	m.t.Helper()
	l := m.line("mg " + key + " t v\r\n")
	if l == "EN" {
		return "", 0, false
	}
	var n int
	if _, err := fmt.Sscanf(l, "VA %d t%d", &n, &ttl); err != nil {
		m.t.Fatalf("mg %s: %q", key, l)
	}
	v, _ := m.r.ReadString('\n')
	return strings.TrimRight(v, "\r\n"), ttl, true
}

func within(t *testing.T, what string, got, want int64) {
	t.Helper()
	if got < want-10 || got > want+10 {
		t.Errorf("%s: remaining lifetime %ds, want %ds (±10s)", what, got, want)
	} else {
		t.Logf("%s: remaining lifetime %ds (want %ds)", what, got, want)
	}
}

func TestPostfixEndToEnd(t *testing.T) {
	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	cfg := path.Join(t.TempDir(), "repcache.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: [%q]\nadmin:\n  listen: \"\"\n", addr)), 0o644)
	rc := start(t, nil, "--config", cfg)
	rc.waitListening(t, addr)
	pf := testenv.StartPostfix(t, postfixOptions(t, cfg))
	m := dialMC(t, addr)

	passNew := func(port int) *regexp.Regexp {
		return regexp.MustCompile(`postscreen\[\d+\]: PASS NEW \[127\.0\.0\.1\]:` + strconv.Itoa(port) + `$`)
	}
	passOld := func(port int) *regexp.Regexp {
		return regexp.MustCompile(`postscreen\[\d+\]: PASS OLD \[127\.0\.0\.1\]:` + strconv.Itoa(port) + `$`)
	}

	t.Run("postscreen", func(t *testing.T) {
		r := pf.SMTP(t, testenv.SMTPSession{})
		if r.EHLO.Code != 250 {
			t.Fatalf("first session: %v", r.Replies)
		}
		pf.WaitLog(t, passNew(r.ClientPort), 10*time.Second)
		val, ttl, ok := m.record("postscreen:127.0.0.1")
		if !ok {
			t.Fatalf("no postscreen record in repcache\n%s", pf.Maillog())
		}
		stamp, err := strconv.ParseInt(strings.SplitN(val, ";", 2)[0], 10, 64)
		if err != nil || stamp < time.Now().Unix() {
			t.Fatalf("record %q: no future pregreet stamp", val)
		}
		within(t, "postscreen record (latest pass + 7d retention)", ttl, stamp+7*86400-time.Now().Unix())
		r = pf.SMTP(t, testenv.SMTPSession{})
		pf.WaitLog(t, passOld(r.ClientPort), 10*time.Second)
	})

	t.Run("verify", func(t *testing.T) {
		const rcpt = "nosuchuser@test.example"
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := pf.SMTP(t, testenv.SMTPSession{RcptTo: []string{rcpt}})
			if len(r.Rcpt) != 1 || r.Rcpt[0].Code != 450 && r.Rcpt[0].Code != 550 {
				t.Fatalf("RCPT TO:<%s>: %v\n%s", rcpt, r.Replies, pf.Maillog())
			}
			if strings.Contains(r.Rcpt[0].Text(), `unknown user: "nosuchuser"`) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("verify never answered; last %v\n%s", r.Rcpt[0], pf.Maillog())
			}
			time.Sleep(200 * time.Millisecond) // first answers: probe in progress
		}
		val, ttl, ok := m.record("verify:" + rcpt)
		if !ok {
			t.Fatalf("no verify record in repcache\n%s", pf.Maillog())
		}
		f := strings.SplitN(val, ":", 4)
		updated, _ := strconv.ParseInt(f[2], 10, 64)
		if f[0] != "2" || updated == 0 {
			t.Fatalf("verify record %q, want a bounce (2:0:UPDATED:...)", val)
		}
		within(t, "bounced verify record (updated + 3d)", ttl, updated+3*86400-time.Now().Unix())

		// A deliverable record, written as Postfix's manual would have it
		// (ttl = 31d = 2678400, which plain memcache reads as a past date).
		now := time.Now().Unix()
		ok31 := fmt.Sprintf("0:0:%d:250 2.1.5 Ok", now)
		if l := m.line(fmt.Sprintf("set verify:user@test.example 0 2678400 %d\r\n%s\r\n", len(ok31), ok31)); l != "STORED" {
			t.Fatal(l)
		}
		_, ttl, ok = m.record("verify:user@test.example")
		if !ok {
			t.Fatal("OK verify record was born expired")
		}
		within(t, "deliverable verify record (updated + 31d)", ttl, now+31*86400-time.Now().Unix())
	})

	t.Run("garbage refused", func(t *testing.T) {
		before, _, ok := m.record("postscreen:127.0.0.1")
		if !ok {
			t.Fatal("no postscreen record: this subtest needs the postscreen subtest before it")
		}
		if l := m.line("set postscreen:127.0.0.1 0 0 12\r\nnot;a;record\r\n"); !strings.HasPrefix(l, "CLIENT_ERROR map postscreen: ") {
			t.Fatalf("garbage write answered %q", l)
		}
		if after, _, _ := m.record("postscreen:127.0.0.1"); after != before {
			t.Fatalf("record changed from %q to %q", before, after)
		}
		r := pf.SMTP(t, testenv.SMTPSession{})
		pf.WaitLog(t, passOld(r.ClientPort), 10*time.Second)
	})

	t.Run("repcache restarted", func(t *testing.T) {
		rc.cmd.Process.Signal(syscall.SIGTERM)
		if err := <-rc.exited; err != nil {
			t.Fatalf("repcache exit: %v", err)
		}
		rc2 := start(t, nil, "--config", cfg)
		rc2.waitListening(t, addr)
		// The embedded store starts empty: the next client is screened anew,
		// through a Postfix that reconnected by itself.
		deadline := time.Now().Add(30 * time.Second)
		for {
			r := pf.SMTP(t, testenv.SMTPSession{})
			if r.EHLO.Code == 250 && len(pf.LogMatches(passNew(r.ClientPort))) > 0 {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("Postfix did not recover after the restart: %v\n%s", r.Replies, pf.Maillog())
			}
			time.Sleep(500 * time.Millisecond)
		}
		if _, _, ok := dialMC(t, addr).record("postscreen:127.0.0.1"); !ok {
			t.Fatal("postscreen did not write its record after the restart")
		}
	})
}
