package inspect

import (
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/ttl"
)

var now = time.Unix(1795586621, 0)

func TestPostscreen(t *testing.T) {
	got, err := Describe(Record{Map: "postscreen", Rule: ttl.Defaults(ttl.Postscreen), Key: "postscreen:192.0.2.1",
		Value: []byte("1795673021;0;1795500000;1"), Remaining: 691200, Known: true}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"postscreen record postscreen:192.0.2.1 (map postscreen)",
		"pregreet      passed, valid until 2026-11-26 06:03:41 UTC (1d from now)",
		"dnsbl         never passed",
		"pipelining    passed, expired 2026-11-24 06:00:00 UTC (1d ago): postscreen runs it again",
		"non_smtp      disabled when the record was written",
		"bare_newline  not in the record",
		"repcache keeps it for 8d more",
		// dnsbl is enabled and never passed: Postfix's own cleanup code drops it.
		"Postfix's cleanup would drop it at its next run",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
}

func TestVerify(t *testing.T) {
	got, err := Describe(Record{Map: "verify", Rule: ttl.Defaults(ttl.Verify), Key: "verify:nosuchuser@test.example",
		Value: []byte(`2:0:1795586621:unknown user: "nosuchuser"`)}, now)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{
		"status   BOUNCE (2): the address was rejected",
		"probed   never",
		`text     unknown user: "nosuchuser"`,
		"Postfix trusts it: valid until 2026-11-28 06:03:41 UTC (update + 3d)",
		"repcache would keep it until 2026-11-28 06:03:41 UTC (3d from now)",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in:\n%s", want, got)
		}
	}
	if _, err := Describe(Record{Rule: ttl.Defaults(ttl.Verify), Value: []byte("garbage")}, now); err == nil {
		t.Fatal("garbage decoded")
	}
}

func TestPostscreenPostfixCleanup(t *testing.T) {
	for value, want := range map[string]string{
		// greet 1d, dnsbl 1h: Postfix's code drops it at the dnsbl stamp + 7d.
		"1795673021;1795590221;1;1;1": "Postfix's cleanup would drop it at 2026-12-02 07:03:41 UTC (its first enabled test's stamp + 7d retention)",
		"1;1;1;1;1":                   "Postfix's cleanup keeps it: no test was enabled when it was written",
	} {
		got, err := Describe(Record{Rule: ttl.Defaults(ttl.Postscreen), Key: "k", Value: []byte(value)}, now)
		if err != nil || !strings.Contains(got, want) {
			t.Errorf("%s: missing %q in:\n%s (%v)", value, want, got, err)
		}
	}
}
