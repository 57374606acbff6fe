package postfixconf

import (
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/config"
)

func settings(text string) []string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

func TestDefaults(t *testing.T) {
	main, tables, err := Build(config.Default(), Options{TableDir: "/etc/postfix"})
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"postscreen_cache_map = memcache:/etc/postfix/repcache-postscreen.cf",
		"postscreen_cache_cleanup_interval = 0",
		"postscreen_cache_retention_time = 1w",
		"address_verify_map = memcache:/etc/postfix/repcache-verify.cf",
		"address_verify_cache_cleanup_interval = 0",
		"address_verify_positive_expire_time = 31d",
		"address_verify_negative_expire_time = 3d",
	}
	if got := settings(main); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("main.cf settings:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	// Every setting carries a comment saying why.
	lines := strings.Split(strings.TrimSpace(main), "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "#") && (i == 0 || !strings.HasPrefix(lines[i-1], "#")) {
			t.Errorf("setting without a comment: %q", l)
		}
	}
	if len(tables) != 2 {
		t.Fatalf("%d tables", len(tables))
	}
	if got := settings(tables[0].Content); strings.Join(got, "|") != "memcache = inet:127.0.0.1:11211|key_format = postscreen:%s" {
		t.Errorf("postscreen table: %q", got)
	}
	if got := settings(tables[1].Content); strings.Join(got, "|") != "memcache = inet:127.0.0.1:11211|key_format = verify:%s" {
		t.Errorf("verify table: %q", got)
	}
}

func TestListenerChoice(t *testing.T) {
	c := config.Default()
	c.Listen = []string{"0.0.0.0:11311"}
	c.Listeners = []config.ListenerConfig{
		{Address: "unix:/run/ro.sock", ReadOnly: true},
		{Address: "unix:/run/verify.sock", Maps: []string{"verify"}},
	}
	c.Listen = nil
	_, tables, err := Build(c, Options{})
	if err == nil {
		t.Fatalf("postscreen has no read-write listener, yet Build chose one: %+v", tables)
	}
	c.Listen = []string{"0.0.0.0:11311"}
	_, tables, err = Build(c, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(tables[0].Content, "memcache = inet:127.0.0.1:11311\n") || !strings.Contains(tables[0].Content, "use the address Postfix reaches it by") {
		t.Errorf("wildcard listener not turned into a reachable address:\n%s", tables[0].Content)
	}
	c.Listen = nil
	c.Listeners = append(c.Listeners, config.ListenerConfig{Address: "unix:/run/all.sock"})
	_, tables, _ = Build(c, Options{})
	if !strings.Contains(tables[1].Content, "memcache = unix:/run/verify.sock\n") || !strings.Contains(tables[0].Content, "memcache = unix:/run/all.sock\n") {
		t.Errorf("tables:\n%s\n%s", tables[0].Content, tables[1].Content)
	}
}

func TestPostfixDuration(t *testing.T) {
	for d, want := range map[string]string{"168h": "1w", "744h": "31d", "72h": "3d", "90m": "90m", "1h": "1h", "61s": "61s"} {
		dur, _ := time.ParseDuration(d)
		if got := postfixDuration(dur); got != want {
			t.Errorf("postfixDuration(%s) = %s, want %s", d, got, want)
		}
	}
}

func TestKeyDigestTablesUseBoundListeners(t *testing.T) {
	cfg := config.Default()
	cfg.Listeners = []config.ListenerConfig{
		{Address: "127.0.0.1:11212", Map: "postscreen"},
		{Address: "unix:/run/repcache/verify.sock", Map: "verify"},
	}
	_, tables, err := Build(cfg, Options{KeyDigest: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"postscreen": "memcache = inet:127.0.0.1:11212|key_digest = sha256",
		"verify":     "memcache = unix:/run/repcache/verify.sock|key_digest = sha256",
	}
	for _, tb := range tables {
		if got := strings.Join(settings(tb.Content), "|"); got != want[tb.Map.Name] {
			t.Errorf("%s table: %q, want %q", tb.Map.Name, got, want[tb.Map.Name])
		}
	}
	// Without --key-digest the bound listeners are not used: their keys
	// would get the prefix twice.
	_, tables, _ = Build(cfg, Options{})
	if got := settings(tables[0].Content)[0]; got != "memcache = inet:127.0.0.1:11211" {
		t.Errorf("plain table points at %q", got)
	}
	cfg.Listeners = cfg.Listeners[:1]
	if _, _, err := Build(cfg, Options{KeyDigest: true}); err == nil || !strings.Contains(err.Error(), "map verify: --key-digest needs a read-write listener bound to it") {
		t.Errorf("no bound verify listener: %v", err)
	}
}
