package main

import (
	"fmt"
	"os"
	"os/exec"
	"path"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/testenv"
)

// TestImportPostscreenBtreeCache moves a btree cache written by a real
// postscreen into repcache with one command, then reads it back in words.
func TestImportPostscreenBtreeCache(t *testing.T) {
	pf := testenv.StartPostfix(t, testenv.PostfixOptions{MainCF: []string{
		"postscreen_cache_map = btree:$data_directory/psc_cache",
	}})
	r := pf.SMTP(t, testenv.SMTPSession{})
	pf.WaitLog(t, regexp.MustCompile(`PASS NEW \[127\.0\.0\.1\]:`+strconv.Itoa(r.ClientPort)+`$`), 10*time.Second)
	// postscreen keeps the btree open; stopping Postfix writes it out, as
	// an operator's migration would.
	pf.Stop(t)
	dump, err := pf.Postmap(t, "-s", "btree:"+pf.DataDir+"/psc_cache")
	if err != nil || !strings.Contains(dump, "127.0.0.1") {
		t.Fatalf("postmap -s: %v\n%q\n%s", err, dump, pf.Maillog())
	}
	t.Logf("postmap -s output:\n%s", dump)

	port := testenv.FreePort(t)
	addr := fmt.Sprintf("127.0.0.1:%d", port)
	p := start(t, nil, "--listen", addr, "--admin.listen", "")
	p.waitListening(t, addr)
	var out []byte
	file := path.Join(t.TempDir(), "dump.txt")
	os.WriteFile(file, []byte(dump+"192.0.2.99 not-a-record\n"), 0o644)
	for run := 1; run <= 2; run++ { // twice: harmless
		cmd := exec.Command(binary, "import", "--map", "postscreen", "--addr", addr, file)
		out, _ = cmd.CombinedOutput()
		if cmd.ProcessState.ExitCode() != 1 ||
			!strings.Contains(string(out), "dump.txt:"+strconv.Itoa(strings.Count(dump, "\n")+1)+": 192.0.2.99:") ||
			!strings.Contains(string(out), "1 imported") || !strings.Contains(string(out), "1 malformed") {
			t.Fatalf("import run %d: exit %d\n%s", run, cmd.ProcessState.ExitCode(), out)
		}
		t.Logf("import run %d: %s", run, strings.TrimSpace(string(out)))
	}
	val, ttl, ok := dialMC(t, addr).record("postscreen:127.0.0.1")
	if !ok {
		t.Fatal("imported record not in repcache")
	}
	stamp, _ := strconv.ParseInt(strings.SplitN(val, ";", 2)[0], 10, 64)
	within(t, "imported postscreen record", ttl, stamp+7*86400-time.Now().Unix())

	out, err = exec.Command(binary, "inspect", "--addr", addr, "postscreen:127.0.0.1").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "pregreet      passed, valid until") || !regexp.MustCompile(`repcache keeps it for (8d|7d 23h) more`).Match(out) {
		t.Fatalf("inspect: %v\n%s", err, out)
	}
	t.Logf("inspect:\n%s", out)
	if out, err := exec.Command(binary, "import", "--map", "nosuch", "--addr", addr, file).CombinedOutput(); err == nil || !strings.Contains(string(out), `no map named "nosuch"`) {
		t.Fatalf("unknown map: %v\n%s", err, out)
	}
}

func TestPostfixCheckCommand(t *testing.T) {
	dir := t.TempDir()
	os.WriteFile(path.Join(dir, "ps.cf"), []byte("memcache = inet:127.0.0.1:11211\nkey_format = postscreen:%s\nttl = 2678400\n"), 0o644)
	os.WriteFile(path.Join(dir, "main.cf"), []byte("postscreen_cache_map = memcache:"+dir+"/ps.cf\n"), 0o644)
	cmd := exec.Command(binary, "postfix-check", path.Join(dir, "main.cf"))
	out, _ := cmd.CombinedOutput()
	if cmd.ProcessState.ExitCode() != 1 || !strings.Contains(string(out), "ttl = 2678400 is over memcache's 30-day limit") || !strings.Contains(string(out), "postscreen_cache_cleanup_interval is 12h (the default)") {
		t.Fatalf("exit %d\n%s", cmd.ProcessState.ExitCode(), out)
	}
	os.WriteFile(path.Join(dir, "ps.cf"), []byte("memcache = inet:127.0.0.1:11211\nkey_format = postscreen:%s\n"), 0o644)
	os.WriteFile(path.Join(dir, "main.cf"), []byte("postscreen_cache_map = memcache:"+dir+"/ps.cf\npostscreen_cache_cleanup_interval = 0\n"), 0o644)
	if out, err := exec.Command(binary, "postfix-check", path.Join(dir, "main.cf")).CombinedOutput(); err != nil {
		t.Fatalf("clean configuration: %v\n%s", err, out)
	}
}
