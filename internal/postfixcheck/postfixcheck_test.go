package postfixcheck

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func write(t *testing.T, dir, name, content string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestFindsEveryPitfall(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "ps.cf", "memcache = inet:127.0.0.1:11211\n")
	write(t, dir, "vf.cf", "memcache = inet:127.0.0.1:11211\nttl = 2678400\n")
	main := write(t, dir, "main.cf", `# a comment
postscreen_cache_map = memcache:`+dir+`/ps.cf
address_verify_map =
    memcache:`+dir+`/vf.cf
address_verify_cache_cleanup_interval = 12h
`)
	got, err := Check(main, nil, []string{"postscreen:", "verify:"})
	if err != nil {
		t.Fatal(err)
	}
	var text []string
	for _, f := range got {
		text = append(text, f.String())
	}
	all := strings.Join(text, "\n")
	for _, want := range []string{
		"main.cf: postscreen_cache_cleanup_interval is 12h (the default) but postscreen_cache_map is a memcache table",
		"main.cf:5: address_verify_cache_cleanup_interval is 12h but address_verify_map is a memcache table",
		"vf.cf:2: ttl = 2678400 is over memcache's 30-day limit",
		`ps.cf: key_format = %s: the prefix "" matches no repcache map`,
		`shares server inet:127.0.0.1:11211 and key_format "%s" with`,
	} {
		if !strings.Contains(all, want) {
			t.Errorf("missing finding %q in:\n%s", want, all)
		}
	}
}

func TestCleanConfiguration(t *testing.T) {
	dir := t.TempDir()
	write(t, dir, "ps.cf", "memcache = inet:127.0.0.1:11211\nkey_format = postscreen:%s\n")
	write(t, dir, "vf.cf", "memcache = inet:127.0.0.1:11211\nkey_format = verify:%s\nttl = 3600\n")
	main := write(t, dir, "main.cf", "postscreen_cache_map = memcache:ps.cf\npostscreen_cache_cleanup_interval = 0\naddress_verify_map = memcache:vf.cf\naddress_verify_cache_cleanup_interval = 0s\n")
	got, err := Check(main, nil, []string{"postscreen:", "verify:"})
	if err != nil || len(got) != 0 {
		t.Fatalf("findings on a clean configuration: %v, %v", got, err)
	}
}

func TestUnreadable(t *testing.T) {
	dir := t.TempDir()
	main := write(t, dir, "main.cf", "postscreen_cache_map = memcache:/nonexistent/ps.cf\n")
	if _, err := Check(main, nil, nil); err == nil || !strings.Contains(err.Error(), "/nonexistent/ps.cf") {
		t.Fatalf("missing table: %v", err)
	}
	bad := write(t, dir, "bad.cf", "no equals sign here\n")
	if _, err := Check(bad, nil, nil); err == nil || !strings.Contains(err.Error(), "line 1") {
		t.Fatalf("malformed main.cf: %v", err)
	}
}
