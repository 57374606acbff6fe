package main

import (
	"bufio"
	"crypto/sha256"
	"encoding/hex"
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

// digestClient sends keys as Postfix 3.11+ does with key_digest = sha256
// in its memcache table (dict_memcache.c): key_format is applied first,
// then the whole key, prefix included, is hashed and sent as lowercase
// hex. Debian's Postfix 3.7 cannot do this, so the test speaks for it,
// with the commands Postfix's client sends (set with the table's ttl, get).
type digestClient struct {
	*mc
	format string // the table's key_format
}

func (d digestClient) key(lookup string) string {
	sum := sha256.Sum256([]byte(strings.Replace(d.format, "%s", lookup, 1)))
	return hex.EncodeToString(sum[:])
}

func (d digestClient) set(lookup, value string) {
	d.t.Helper()
	if l := d.line(fmt.Sprintf("set %s 0 3600 %d\r\n%s\r\n", d.key(lookup), len(value), value)); l != "STORED" {
		d.t.Fatalf("set %s (%s): %s", lookup, d.key(lookup), l)
	}
}

func TestKeyDigestClientsGetTheirMapsLifetimes(t *testing.T) {
	dir := t.TempDir()
	ports := [3]int{testenv.FreePort(t), testenv.FreePort(t), testenv.FreePort(t)}
	addr := func(i int) string { return fmt.Sprintf("127.0.0.1:%d", ports[i]) }
	cfg := path.Join(dir, "repcache.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf(`listen: [%q]
admin: {listen: ""}
listeners:
  - {address: %q, map: postscreen}
  - {address: %q, map: verify}
`, addr(0), addr(1), addr(2))), 0o644)

	// postfix-config --key-digest points each table at its map's listener.
	out, err := exec.Command(binary, "postfix-config", "--key-digest", "--config", cfg, "--table-dir", dir).CombinedOutput()
	if err != nil {
		t.Fatalf("postfix-config --key-digest: %v\n%s", err, out)
	}
	for _, want := range []string{
		"repcache-postscreen.cf ----\n# repcache's listener bound to map postscreen: every key sent here is a record of that map.\nmemcache = inet:" + addr(1) + "\n",
		"repcache-verify.cf ----\n# repcache's listener bound to map verify: every key sent here is a record of that map.\nmemcache = inet:" + addr(2) + "\n",
		"\nkey_digest = sha256\n",
	} {
		if !strings.Contains(string(out), want) {
			t.Errorf("postfix-config --key-digest lacks %q:\n%s", want, out)
		}
	}

	p := start(t, nil, "--config", cfg)
	for i := range ports {
		p.waitListening(t, addr(i))
	}
	now := time.Now().Unix()
	ps := digestClient{dialMC(t, addr(1)), "postscreen:%s"}
	pass := now + 86400
	ps.set("192.0.2.1", fmt.Sprintf("%d;1;1;1;1", pass))
	vf := digestClient{dialMC(t, addr(2)), "verify:%s"}
	vf.set("nosuchuser@test.example", fmt.Sprintf("2:0:%d:unknown user", now))

	// Each record got its map's lifetime, not the table's ttl of 3600.
	_, ttl, ok := ps.record(ps.key("192.0.2.1"))
	if !ok {
		t.Fatal("postscreen record not found through its listener")
	}
	within(t, "postscreen (latest pass + 7d)", ttl, pass+7*86400-time.Now().Unix())
	_, ttl, ok = vf.record(vf.key("nosuchuser@test.example"))
	if !ok {
		t.Fatal("verify record not found through its listener")
	}
	within(t, "verify bounce (updated + 3d)", ttl, now+3*86400-time.Now().Unix())

	// A verify listener refuses a postscreen record: the map is the
	// listener's, whatever the key looks like.
	if l := vf.line(fmt.Sprintf("set %s 0 3600 18\r\n%d;1;1;1;1\r\n", vf.key("192.0.2.9"), pass)); !strings.HasPrefix(l, "CLIENT_ERROR map verify") {
		t.Errorf("a postscreen record on the verify listener: %q", l)
	}
	// On the unbound listener the same hex key is outside every map and
	// keeps memcached semantics (the table's ttl): what happened before.
	plain := dialMC(t, addr(0))
	hexKey := ps.key("192.0.2.1")
	if _, _, ok := plain.record(hexKey); ok {
		t.Error("the bound record is visible under its bare digest on the unbound listener")
	}
	rec := fmt.Sprintf("%d;1;1;1;1", pass)
	plain.line(fmt.Sprintf("set %s 0 3600 %d\r\n%s\r\n", hexKey, len(rec), rec))
	_, ttl, _ = plain.record(hexKey)
	within(t, "unbound digest key (unknown_keys)", ttl, 3600)
}
