package ttl

import (
	"math"
	"strconv"
	"strings"
	"testing"
	"time"
)

// now is the moment Debian's postfix 3.7.11 wrote the example records in
// postfix-cache-facts.md: the verify record's UPDATED, and the postscreen
// PREGREET stamp minus postscreen_greet_ttl (1d).
const now int64 = 1795586621

const (
	H = int64(3600)
	D = 24 * H
)

// Real values seen from Postfix against memcached.
const (
	examplePostscreen = "1795673021;1;1;1;1"
	exampleVerify     = `2:0:1795586621:unknown user: "user"`
)

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// ps builds a postscreen value from stamps.
func ps(stamps ...int64) string {
	s := make([]string, len(stamps))
	for i, v := range stamps {
		s[i] = itoa(v)
	}
	return strings.Join(s, ";")
}

// vr builds a verify value.
func vr(status int, probed, updated int64, text string) string {
	return strconv.Itoa(status) + ":" + itoa(probed) + ":" + itoa(updated) + ":" + text
}

type deadlineCase struct {
	name     string
	rule     Rule
	value    string
	client   int64 // clientDeadline
	now      int64 // 0 = the package's now
	deadline int64
	keep     bool
	err      string // substring of the error; "" = no error
}

func runDeadline(t *testing.T, cases []deadlineCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := tc.now
			if n == 0 {
				n = now
			}
			if err := tc.rule.Validate(); err != nil {
				t.Fatalf("rule invalid: %v", err)
			}
			d, keep, err := tc.rule.Deadline([]byte(tc.value), tc.client, n)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("Deadline(%q) error = %v, want one containing %q", tc.value, err, tc.err)
				}
				if d != 0 || keep {
					t.Fatalf("Deadline(%q) = %d, %v with error, want 0, false", tc.value, d, keep)
				}
				return
			}
			if err != nil {
				t.Fatalf("Deadline(%q): unexpected error %v", tc.value, err)
			}
			if d != tc.deadline || keep != tc.keep {
				t.Fatalf("Deadline(%q) = %d (now%+d), %v; want %d (now%+d), %v",
					tc.value, d, d-n, keep, tc.deadline, tc.deadline-n, tc.keep)
			}
		})
	}
}

func with(r Rule, f func(*Rule)) Rule {
	f(&r)
	return r
}

func TestDeadlinePostscreen(t *testing.T) {
	r := Defaults(Postscreen) // retention 7d, clamp [1h, 90d]
	ret := 7 * D
	noMin := with(r, func(r *Rule) { r.MinTTL = 0 })
	noMax := with(r, func(r *Rule) { r.MaxTTL = 0 })
	runDeadline(t, []deadlineCase{
		// PASS NEW with pregreet only enabled: kept until the pass expires
		// (now+1d) plus the 7d retention.
		{name: "facts example", rule: r, value: examplePostscreen, deadline: 1795673021 + ret, keep: true},
		{name: "all passed latest wins", rule: r, value: ps(now+D, now+H, now+30*D, now+2*D, now+30*D-5), deadline: now + 37*D, keep: true},
		{name: "latest in the middle", rule: r, value: ps(now+D, now+30*D, 0, 1, now+H), deadline: now + 37*D, keep: true},
		{name: "one field", rule: r, value: "1795673021", deadline: 1795673021 + ret, keep: true},
		{name: "two fields", rule: r, value: "1;1795673021", deadline: 1795673021 + ret, keep: true},
		{name: "extra fields ignored", rule: r, value: examplePostscreen + ";junk;;-1", deadline: 1795673021 + ret, keep: true},
		{name: "extra field not a stamp", rule: r, value: "1;1;1;1;1;" + itoa(now+80*D), deadline: now + H, keep: true},

		// No passed test: the record only records disabled/new tests.
		{name: "all disabled", rule: r, value: "1;1;1;1;1", deadline: now + H, keep: true},
		{name: "all new", rule: r, value: "0;0;0;0;0", deadline: now + H, keep: true},
		{name: "new and disabled", rule: r, value: "0;1;0;1;0", deadline: now + H, keep: true},
		{name: "single disabled field", rule: r, value: "1", deadline: now + H, keep: true},
		{name: "no pass and min_ttl 0", rule: noMin, value: "0;1;1;1;1", keep: false},
		{name: "no pass with cap", rule: with(r, func(r *Rule) { r.ClientTTL = Cap }), value: "0;0;0;0;0", client: now + 60, deadline: now + 60, keep: true},

		// Stamps in the past: kept while within the retention.
		{name: "pass expired 1d ago", rule: r, value: ps(now-D, 1, 1, 1, 1), deadline: now + 6*D, keep: true},
		{name: "pass expired 8d ago", rule: r, value: ps(now-8*D, 1, 1, 1, 1), keep: false},
		{name: "stamp 2 is a pass in 1970", rule: r, value: "2;1;1;1;1", keep: false},
		{name: "old pass and new tests", rule: r, value: ps(now-8*D, 0, 0, 0, 0), keep: false},

		// Clock at the edges of lifetime 0, MinTTL and MaxTTL.
		{name: "lifetime exactly 0", rule: r, value: ps(now - ret), keep: false},
		{name: "lifetime -1", rule: r, value: ps(now - ret - 1), keep: false},
		{name: "lifetime 1 raised to min", rule: r, value: ps(now - ret + 1), deadline: now + H, keep: true},
		{name: "lifetime 1 min_ttl 0", rule: noMin, value: ps(now - ret + 1), deadline: now + 1, keep: true},
		{name: "lifetime min-1", rule: r, value: ps(now - ret + H - 1), deadline: now + H, keep: true},
		{name: "lifetime exactly min", rule: r, value: ps(now - ret + H), deadline: now + H, keep: true},
		{name: "lifetime min+1", rule: r, value: ps(now - ret + H + 1), deadline: now + H + 1, keep: true},
		{name: "lifetime max-1", rule: r, value: ps(now + 83*D - 1), deadline: now + 90*D - 1, keep: true},
		{name: "lifetime exactly max", rule: r, value: ps(now + 83*D), deadline: now + 90*D, keep: true},
		{name: "lifetime max+1", rule: r, value: ps(now + 83*D + 1), deadline: now + 90*D, keep: true},
		{name: "same record later", rule: noMin, value: examplePostscreen, now: 1795673021 + ret - 1, deadline: 1795673021 + ret, keep: true},
		{name: "same record at its end", rule: r, value: examplePostscreen, now: 1795673021 + ret, keep: false},

		// Huge stamps saturate instead of overflowing.
		{name: "max uint64 stamp", rule: r, value: "18446744073709551615;1;1;1;1", deadline: now + 90*D, keep: true},
		{name: "max int64 stamp", rule: r, value: "9223372036854775807", deadline: now + 90*D, keep: true},
		{name: "max int64+1 stamp", rule: r, value: "9223372036854775808", deadline: now + 90*D, keep: true},
		{name: "huge stamp no max", rule: noMax, value: "18446744073709551615", deadline: math.MaxInt64, keep: true},
		{name: "beyond 2106 no max", rule: noMax, value: "4294967296", deadline: 4294967296 + ret, keep: true},

		// Malformed values are refused.
		{name: "empty", rule: r, value: "", err: "postscreen record is empty"},
		{name: "letters", rule: r, value: "x1", err: `postscreen record field 1 (PREGREET) "x1" is not a Unix time`},
		{name: "DNSBL not a time", rule: r, value: "1;x1", err: `postscreen record field 2 (DNSBL) "x1" is not a Unix time`},
		{name: "fifth field", rule: r, value: "1;1;1;1;1x", err: `field 5 (BARE_NEWLINE) "1x" is not a Unix time`},
		{name: "minus sign", rule: r, value: "-1;1;1;1;1", err: `field 1 (PREGREET) "-1" is not a Unix time`},
		{name: "plus sign", rule: r, value: "+1795673021", err: `"+1795673021" is not a Unix time`},
		{name: "leading space", rule: r, value: " 1;1;1;1;1", err: `" 1" is not a Unix time`},
		{name: "trailing space", rule: r, value: "1;1;1;1;1 ", err: `field 5 (BARE_NEWLINE) "1 " is not`},
		{name: "trailing newline", rule: r, value: "1;1;1;1;1\n", err: `"1\n" is not`},
		{name: "empty middle field", rule: r, value: "1;;1;1;1", err: "field 2 (DNSBL) is empty"},
		{name: "trailing separator", rule: r, value: "1;", err: "field 2 (DNSBL) is empty"},
		{name: "only separator", rule: r, value: ";", err: "field 1 (PREGREET) is empty"},
		{name: "decimal point", rule: r, value: "1.5", err: `"1.5" is not a Unix time`},
		{name: "hex", rule: r, value: "0x10", err: `"0x10" is not`},
		{name: "non-ASCII digit", rule: r, value: "١", err: `is not a Unix time`},
		{name: "comma separated", rule: r, value: "1,1,1,1,1", err: `"1,1,1,1,1" is not`},
		{name: "overflow", rule: r, value: "18446744073709551616", err: `"18446744073709551616" is not a Unix time (too large)`},
		{name: "overflow then letter", rule: r, value: "99999999999999999999x", err: `"99999999999999999999x" is not a Unix time`},
		{name: "verify record", rule: r, value: exampleVerify, err: "field 1 (PREGREET)"},
		{name: "long field clipped", rule: r, value: strings.Repeat("a", 5000), err: `"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"... is not`},
	})
}

func TestDeadlineVerify(t *testing.T) {
	r := Defaults(Verify) // positive 31d, negative 3d, clamp [1h, 90d]
	noMin := with(r, func(r *Rule) { r.MinTTL = 0 })
	noMax := with(r, func(r *Rule) { r.MaxTTL = 0 })
	runDeadline(t, []deadlineCase{
		// A bounced recipient: negative expire time from UPDATED.
		{name: "facts example", rule: r, value: exampleVerify, deadline: 1795586621 + 3*D, keep: true},
		{name: "OK now", rule: r, value: vr(0, 0, now, "250 2.1.5 Ok"), deadline: now + 31*D, keep: true},
		{name: "DEFER", rule: r, value: vr(1, 0, now-H, "4.4.1 timeout"), deadline: now + 3*D - H, keep: true},
		{name: "BOUNCE empty text", rule: r, value: vr(2, 0, now, ""), deadline: now + 3*D, keep: true},
		{name: "text with colons", rule: r, value: vr(2, 0, now, "5.1.1 <a@b>: host x[1.2.3.4]: 550: no:"), deadline: now + 3*D, keep: true},
		{name: "text only colons", rule: r, value: "0:0:" + itoa(now) + ":::", deadline: now + 31*D, keep: true},
		{name: "leading zero status", rule: r, value: "00:0:" + itoa(now) + ":", deadline: now + 31*D, keep: true},

		// TODO: UPDATED is 0, only the probe in flight (PROBED+1000) counts.
		{name: "TODO probe just sent", rule: noMin, value: vr(3, now, 0, "Address verification in progress"), deadline: now + 1000, keep: true},
		{name: "TODO raised to min", rule: r, value: vr(3, now, 0, ""), deadline: now + H, keep: true},
		{name: "TODO probe 500s ago", rule: noMin, value: vr(3, now-500, 0, ""), deadline: now + 500, keep: true},
		{name: "TODO probe 999s ago", rule: noMin, value: vr(3, now-999, 0, ""), deadline: now + 1, keep: true},
		{name: "TODO probe 1000s ago", rule: noMin, value: vr(3, now-1000, 0, ""), keep: false},
		{name: "TODO probe long ago", rule: r, value: vr(3, now-D, 0, ""), keep: false},

		// Refresh probe on an old OK record: the later bound wins.
		{name: "OK expiring with probe in flight", rule: noMin, value: vr(0, now, now-31*D, ""), deadline: now + 1000, keep: true},
		{name: "OK with stale probe", rule: noMin, value: vr(0, now-2*D, now-D, ""), deadline: now + 30*D, keep: true},
		{name: "DEFER refresh in flight", rule: noMin, value: vr(1, now, now-3*D+10, ""), deadline: now + 1000, keep: true},

		// Expired by Postfix's rules: not kept, not clamped up.
		{name: "OK updated long ago", rule: r, value: vr(0, 0, now-40*D, "ok"), keep: false},
		{name: "OK lifetime exactly 0", rule: r, value: vr(0, 0, now-31*D, ""), keep: false},
		{name: "OK lifetime 1", rule: r, value: vr(0, 0, now-31*D+1, ""), deadline: now + H, keep: true},
		{name: "BOUNCE lifetime exactly 0", rule: r, value: vr(2, 0, now-3*D, ""), keep: false},
		{name: "BOUNCE lifetime -1", rule: r, value: vr(2, 0, now-3*D-1, ""), keep: false},
		{name: "BOUNCE 31d old is expired", rule: r, value: vr(2, 0, now-4*D, ""), keep: false},
		{name: "min-1", rule: r, value: vr(2, 0, now-3*D+H-1, ""), deadline: now + H, keep: true},
		{name: "exactly min", rule: r, value: vr(2, 0, now-3*D+H, ""), deadline: now + H, keep: true},
		{name: "min+1", rule: r, value: vr(2, 0, now-3*D+H+1, ""), deadline: now + H + 1, keep: true},
		{name: "max-1", rule: r, value: vr(0, 0, now+59*D-1, ""), deadline: now + 90*D - 1, keep: true},
		{name: "exactly max", rule: r, value: vr(0, 0, now+59*D, ""), deadline: now + 90*D, keep: true},
		{name: "max+1", rule: r, value: vr(0, 0, now+59*D+1, ""), deadline: now + 90*D, keep: true},

		// Huge times saturate.
		{name: "max int64 updated", rule: r, value: vr(0, 0, math.MaxInt64, ""), deadline: now + 90*D, keep: true},
		{name: "max int64 probed", rule: r, value: vr(3, math.MaxInt64, 0, ""), deadline: now + 90*D, keep: true},
		{name: "max int64 no max", rule: noMax, value: vr(0, math.MaxInt64, math.MaxInt64, ""), deadline: math.MaxInt64, keep: true},

		// Malformed.
		{name: "empty", rule: r, value: "", err: "verify record needs STATUS:PROBED:UPDATED:TEXT, got 1 field"},
		{name: "two fields", rule: r, value: "2:0", err: "verify record needs STATUS:PROBED:UPDATED:TEXT, got 2 fields"},
		{name: "three fields", rule: r, value: "2:0:1795586621", err: "got 3 fields"},
		{name: "postscreen record", rule: r, value: examplePostscreen, err: "got 1 field"},
		{name: "status 7", rule: r, value: "7:0:1795586621:x", err: "verify status 7 is not 0 (OK), 1 (DEFER), 2 (BOUNCE) or 3 (TODO)"},
		{name: "status 4", rule: r, value: "4:0:1:", err: "verify status 4 is not"},
		{name: "status huge", rule: r, value: "99999999999999999999:0:1:", err: `verify status "99999999999999999999" is not 0 (OK)`},
		{name: "status letters", rule: r, value: "OK:0:1:", err: `verify record field 1 (STATUS) "OK" is not a number`},
		{name: "status empty", rule: r, value: ":0:1:", err: "field 1 (STATUS) is empty"},
		{name: "status negative", rule: r, value: "-1:0:1:", err: `"-1" is not a number`},
		{name: "probed letters", rule: r, value: "2:x:1:", err: `verify record field 2 (PROBED) "x" is not a Unix time`},
		{name: "probed empty", rule: r, value: "2::1:", err: "field 2 (PROBED) is empty"},
		{name: "updated negative", rule: r, value: "2:0:-1:", err: `verify record field 3 (UPDATED) "-1" is not a Unix time`},
		{name: "updated space", rule: r, value: "2:0: 1795586621:", err: `" 1795586621" is not a Unix time`},
		{name: "updated overflow", rule: r, value: "2:0:9223372036854775808:", err: "(UPDATED) \"9223372036854775808\" is not a Unix time (too large)"},
		{name: "PROBED=UPDATED=0", rule: r, value: "2:0:0:unknown user", err: "PROBED and UPDATED both 0"},
		{name: "TODO all zero", rule: r, value: "3:0:0:", err: "PROBED and UPDATED both 0"},
	})
}

func TestDeadlineFixed(t *testing.T) {
	r := Rule{Kind: Fixed, TTL: time.Hour}
	runDeadline(t, []deadlineCase{
		{name: "hour", rule: r, value: "anything", deadline: now + H, keep: true},
		{name: "value not parsed", rule: r, value: "", deadline: now + H, keep: true},
		{name: "cleanup key", rule: r, value: "1795586621", deadline: now + H, keep: true},
		{name: "over 30 days", rule: Rule{Kind: Fixed, TTL: 45 * 24 * time.Hour}, value: "x", deadline: now + 45*D, keep: true},
		{name: "sub-second rounds up", rule: Rule{Kind: Fixed, TTL: 500 * time.Millisecond}, value: "x", deadline: now + 1, keep: true},
		{name: "1.5s rounds up", rule: Rule{Kind: Fixed, TTL: 1500 * time.Millisecond}, value: "x", deadline: now + 2, keep: true},
		{name: "clamped by max", rule: with(r, func(r *Rule) { r.TTL = 2 * time.Hour; r.MaxTTL = time.Hour }), value: "x", deadline: now + H, keep: true},
		{name: "raised by min", rule: with(r, func(r *Rule) { r.TTL = time.Minute; r.MinTTL = time.Hour }), value: "x", deadline: now + H, keep: true},
		{name: "client ignored", rule: r, value: "x", client: now + 10, deadline: now + H, keep: true},
		{name: "client past ignored", rule: r, value: "x", client: 1, deadline: now + H, keep: true},
		{name: "cap lower", rule: with(r, func(r *Rule) { r.ClientTTL = Cap }), value: "x", client: now + 10, deadline: now + 10, keep: true},
		{name: "cap higher", rule: with(r, func(r *Rule) { r.ClientTTL = Cap }), value: "x", client: now + 2*H, deadline: now + H, keep: true},
		{name: "cap never", rule: with(r, func(r *Rule) { r.ClientTTL = Cap }), value: "x", client: 0, deadline: now + H, keep: true},
	})
}

func TestDeadlinePassthrough(t *testing.T) {
	r := Defaults(Passthrough)
	minR := with(r, func(r *Rule) { r.MinTTL = time.Minute })
	maxR := with(r, func(r *Rule) { r.MaxTTL = time.Hour })
	runDeadline(t, []deadlineCase{
		{name: "never", rule: r, value: "x", client: 0, deadline: 0, keep: true},
		{name: "future", rule: r, value: "x", client: now + 3600, deadline: now + 3600, keep: true},
		{name: "one second", rule: r, value: "x", client: now + 1, deadline: now + 1, keep: true},
		{name: "absolute beyond 30d", rule: r, value: "x", client: now + 31*D, deadline: now + 31*D, keep: true},
		{name: "exactly now", rule: r, value: "x", client: now, keep: false},
		{name: "past", rule: r, value: "x", client: now - 1, keep: false},
		{name: "negative exptime", rule: r, value: "x", client: 1, keep: false},
		{name: "value not parsed", rule: r, value: "", client: now + 5, deadline: now + 5, keep: true},
		{name: "cap is a no-op", rule: with(r, func(r *Rule) { r.ClientTTL = Cap }), value: "x", client: 0, deadline: 0, keep: true},
		{name: "min raises", rule: minR, value: "x", client: now + 10, deadline: now + 60, keep: true},
		{name: "min exact", rule: minR, value: "x", client: now + 60, deadline: now + 60, keep: true},
		{name: "min above", rule: minR, value: "x", client: now + 61, deadline: now + 61, keep: true},
		{name: "min does not revive", rule: minR, value: "x", client: now - 1, keep: false},
		{name: "min leaves never", rule: minR, value: "x", client: 0, deadline: 0, keep: true},
		{name: "max caps never", rule: maxR, value: "x", client: 0, deadline: now + H, keep: true},
		{name: "max caps far", rule: maxR, value: "x", client: now + H + 1, deadline: now + H, keep: true},
		{name: "max exact", rule: maxR, value: "x", client: now + H, deadline: now + H, keep: true},
		{name: "max below", rule: maxR, value: "x", client: now + H - 1, deadline: now + H - 1, keep: true},
		{name: "max int64 client", rule: maxR, value: "x", client: math.MaxInt64, deadline: now + H, keep: true},
	})
}

func TestDeadlineCap(t *testing.T) {
	ps := with(Defaults(Postscreen), func(r *Rule) { r.ClientTTL = Cap })
	v := with(Defaults(Verify), func(r *Rule) { r.ClientTTL = Cap })
	derived := int64(1795673021) + 7*D
	runDeadline(t, []deadlineCase{
		// Postfix's table ttl 3600, converted to an absolute deadline.
		{name: "postfix ttl caps", rule: ps, value: examplePostscreen, client: now + 3600, deadline: now + 3600, keep: true},
		{name: "client never", rule: ps, value: examplePostscreen, client: 0, deadline: derived, keep: true},
		{name: "client later", rule: ps, value: examplePostscreen, client: derived + 1, deadline: derived, keep: true},
		{name: "client equal", rule: ps, value: examplePostscreen, client: derived, deadline: derived, keep: true},
		{name: "cap below min_ttl wins", rule: ps, value: examplePostscreen, client: now + 60, deadline: now + 60, keep: true},
		{name: "client now", rule: ps, value: examplePostscreen, client: now, keep: false},
		{name: "client past", rule: ps, value: examplePostscreen, client: 1, keep: false},
		{name: "cap does not revive", rule: ps, value: ps0(now - 8*D), client: now + H, keep: false},
		{name: "cap caps max", rule: ps, value: "18446744073709551615", client: math.MaxInt64, deadline: now + 90*D, keep: true},
		{name: "verify capped", rule: v, value: exampleVerify, client: now + H, deadline: now + H, keep: true},
		{name: "verify client later", rule: v, value: exampleVerify, client: now + 10*D, deadline: now + 3*D, keep: true},
		{name: "malformed still refused", rule: v, value: "2:0", client: now + H, err: "got 2 fields"},
		// Ignore mode: the client's deadline does not matter at all.
		{name: "ignore past client", rule: Defaults(Postscreen), value: examplePostscreen, client: 1, deadline: derived, keep: true},
		{name: "ignore near client", rule: Defaults(Verify), value: exampleVerify, client: now + 1, deadline: now + 3*D, keep: true},
	})
}

func ps0(stamp int64) string { return itoa(stamp) }

func TestDeadlineUnknownKind(t *testing.T) {
	for _, k := range []Kind{"", "memcache"} {
		_, keep, err := Rule{Kind: k}.Deadline([]byte("x"), 0, now)
		if err == nil || keep {
			t.Errorf("kind %q: keep=%v err=%v, want an error", k, keep, err)
		}
	}
}

func TestParsePostscreen(t *testing.T) {
	for _, tc := range []struct {
		in     string
		stamps [5]uint64
		fields int
	}{
		{examplePostscreen, [5]uint64{1795673021, 1, 1, 1, 1}, 5},
		{"1795673021", [5]uint64{1795673021, 1, 1, 1, 1}, 1},
		{"0;0", [5]uint64{0, 0, 1, 1, 1}, 2},
		{"5;4;3;2;1;0;x;", [5]uint64{5, 4, 3, 2, 1}, 5},
		{"007;0", [5]uint64{7, 0, 1, 1, 1}, 2},
		{"18446744073709551615", [5]uint64{math.MaxUint64, 1, 1, 1, 1}, 1},
	} {
		rec, err := ParsePostscreen([]byte(tc.in))
		if err != nil || rec.Stamps != tc.stamps || rec.Fields != tc.fields {
			t.Errorf("ParsePostscreen(%q) = %+v, %v; want %v %d", tc.in, rec, err, tc.stamps, tc.fields)
		}
	}
	rec, _ := ParsePostscreen([]byte("1;2"))
	if s := rec.String(); s != "1;2" {
		t.Errorf("String() = %q, want 1;2", s)
	}
	if s := (PostscreenRecord{}).String(); s != "0" {
		t.Errorf("zero String() = %q, want 0", s)
	}
}

func TestParseVerify(t *testing.T) {
	rec, err := ParseVerify([]byte(exampleVerify))
	want := VerifyRecord{Status: 2, Probed: 0, Updated: 1795586621, Text: `unknown user: "user"`}
	if err != nil || rec != want {
		t.Fatalf("ParseVerify(example) = %+v, %v; want %+v", rec, err, want)
	}
	if s := rec.String(); s != exampleVerify {
		t.Errorf("String() = %q, want %q", s, exampleVerify)
	}
	if VerifyStatuses[rec.Status] != "BOUNCE" {
		t.Errorf("status name %q", VerifyStatuses[rec.Status])
	}
	rec, err = ParseVerify([]byte("3:1795586621:0:"))
	if err != nil || rec != (VerifyRecord{Status: 3, Probed: 1795586621}) {
		t.Errorf("TODO record = %+v, %v", rec, err)
	}
	rec, err = ParseVerify([]byte("0:1:2:a:b\r\n:c"))
	if err != nil || rec.Text != "a:b\r\n:c" {
		t.Errorf("text = %q, %v", rec.Text, err)
	}
}

func TestParseKind(t *testing.T) {
	for _, k := range []Kind{Postscreen, Verify, Fixed, Passthrough} {
		if got, err := ParseKind(string(k)); err != nil || got != k {
			t.Errorf("ParseKind(%q) = %q, %v", k, got, err)
		}
	}
	for _, s := range []string{"", "Postscreen", "verify ", "memcache"} {
		if _, err := ParseKind(s); err == nil || !strings.Contains(err.Error(), "postscreen, verify, fixed or passthrough") {
			t.Errorf("ParseKind(%q) error = %v", s, err)
		}
	}
	for _, c := range []ClientTTL{Ignore, Cap} {
		if got, err := ParseClientTTL(string(c)); err != nil || got != c {
			t.Errorf("ParseClientTTL(%q) = %q, %v", c, got, err)
		}
	}
	if _, err := ParseClientTTL("min"); err == nil || !strings.Contains(err.Error(), "client_ttl") {
		t.Errorf("ParseClientTTL(min) error = %v", err)
	}
}

func TestDefaults(t *testing.T) {
	for _, k := range []Kind{Postscreen, Verify, Passthrough} {
		if err := Defaults(k).Validate(); err != nil {
			t.Errorf("Defaults(%s).Validate() = %v", k, err)
		}
	}
	// A fixed map has no default ttl: the operator must choose one.
	if err := Defaults(Fixed).Validate(); err == nil || !strings.Contains(err.Error(), "ttl") {
		t.Errorf("Defaults(fixed).Validate() = %v, want a ttl error", err)
	}
	p := Defaults(Postscreen)
	if p.Retention != 7*24*time.Hour || p.MinTTL != time.Hour || p.MaxTTL != 90*24*time.Hour || p.ClientTTL != Ignore {
		t.Errorf("Defaults(postscreen) = %+v", p)
	}
	v := Defaults(Verify)
	if v.PositiveExpire != 31*24*time.Hour || v.NegativeExpire != 3*24*time.Hour || v.MinTTL != time.Hour || v.MaxTTL != 90*24*time.Hour || v.ClientTTL != Ignore {
		t.Errorf("Defaults(verify) = %+v", v)
	}
	for _, k := range []Kind{Fixed, Passthrough} {
		if d := Defaults(k); d.MinTTL != 0 || d.MaxTTL != 0 || d.Kind != k {
			t.Errorf("Defaults(%s) = %+v", k, d)
		}
	}
}

func TestValidate(t *testing.T) {
	ok := []Rule{
		Defaults(Postscreen),
		{Kind: Fixed, TTL: time.Second},
		{Kind: Passthrough},                                  // "" ClientTTL means ignore
		{Kind: Verify, MinTTL: time.Hour, MaxTTL: time.Hour}, // equal bounds
		{Kind: Verify, MinTTL: 2 * time.Hour},                // max 0: unbounded
		{Kind: Postscreen, ClientTTL: Cap},
	}
	for _, r := range ok {
		if err := r.Validate(); err != nil {
			t.Errorf("%+v: %v", r, err)
		}
	}
	bad := []struct {
		rule Rule
		want string
	}{
		{Rule{Kind: "nope"}, "map kind"},
		{Rule{}, "map kind"},
		{Rule{Kind: Postscreen, Retention: -1}, "retention"},
		{Rule{Kind: Verify, PositiveExpire: -time.Hour}, "positive_expire"},
		{Rule{Kind: Verify, NegativeExpire: -time.Hour}, "negative_expire"},
		{Rule{Kind: Fixed, TTL: -time.Hour}, "ttl"},
		{Rule{Kind: Fixed}, "ttl must be above 0"},
		{Rule{Kind: Verify, MinTTL: -1}, "min_ttl"},
		{Rule{Kind: Verify, MaxTTL: -1}, "max_ttl"},
		{Rule{Kind: Verify, MinTTL: 2 * time.Hour, MaxTTL: time.Hour}, "min_ttl 2h0m0s is above max_ttl 1h0m0s"},
		{Rule{Kind: Verify, ClientTTL: "always"}, "client_ttl"},
	}
	for _, tc := range bad {
		if err := tc.rule.Validate(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: Validate() = %v, want one containing %q", tc.rule, err, tc.want)
		}
	}
}

func TestSaturation(t *testing.T) {
	for _, tc := range []struct{ a, b, sum, diff int64 }{
		{1, 2, 3, -1},
		{math.MaxInt64, 1, math.MaxInt64, math.MaxInt64 - 1},
		{math.MaxInt64, math.MaxInt64, math.MaxInt64, 0},
		{math.MinInt64, -1, math.MinInt64, math.MinInt64 + 1},
		{0, math.MinInt64, math.MinInt64, math.MaxInt64},
		{-1, math.MaxInt64, math.MaxInt64 - 1, math.MinInt64},
		{math.MaxInt64, math.MinInt64, -1, math.MaxInt64},
	} {
		if got := addSat(tc.a, tc.b); got != tc.sum {
			t.Errorf("addSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.sum)
		}
		if got := subSat(tc.a, tc.b); got != tc.diff {
			t.Errorf("subSat(%d, %d) = %d, want %d", tc.a, tc.b, got, tc.diff)
		}
	}
	for _, tc := range []struct {
		d    time.Duration
		want int64
	}{{0, 0}, {-time.Second, 0}, {1, 1}, {time.Second, 1}, {time.Second + 1, 2}, {math.MaxInt64, 9223372037}} {
		if got := secs(tc.d); got != tc.want {
			t.Errorf("secs(%v) = %d, want %d", tc.d, got, tc.want)
		}
	}
}

// The write path runs for every Postfix set: it must not allocate.
func TestDeadlineAllocs(t *testing.T) {
	psR, vR := Defaults(Postscreen), Defaults(Verify)
	psV, vV := []byte(examplePostscreen), []byte(exampleVerify)
	if n := testing.AllocsPerRun(100, func() { psR.Deadline(psV, 0, now) }); n != 0 {
		t.Errorf("postscreen Deadline allocates %v times", n)
	}
	if n := testing.AllocsPerRun(100, func() { vR.Deadline(vV, 0, now) }); n != 0 {
		t.Errorf("verify Deadline allocates %v times", n)
	}
}

func FuzzParsePostscreen(f *testing.F) {
	for _, s := range []string{examplePostscreen, "1;1;1;1;1", "0;0;0;0;0", "1795673021", "1;x1",
		"18446744073709551615;18446744073709551616", "1;1;1;1;1;junk", ";", "", "007;-1", exampleVerify} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		rec, err := ParsePostscreen(value)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "postscreen record ") {
				t.Fatalf("error %q does not say what it is about", err)
			}
			return
		}
		if rec.Fields < 1 || rec.Fields > 5 {
			t.Fatalf("Fields = %d", rec.Fields)
		}
		for i := rec.Fields; i < 5; i++ {
			if rec.Stamps[i] != StampDisabled {
				t.Fatalf("missing field %d = %d, want disabled", i+1, rec.Stamps[i])
			}
		}
		again, err := ParsePostscreen([]byte(rec.String()))
		if err != nil || again != rec {
			t.Fatalf("round trip %q -> %q -> %+v, %v; want %+v", value, rec.String(), again, err, rec)
		}
	})
}

func FuzzParseVerify(f *testing.F) {
	for _, s := range []string{exampleVerify, "0:0:1795586621:", "3:1795586621:0:Address verification in progress",
		"2:0", "7:0:1:x", "0:0:0:x", "00:1:2:a:b:c", "2:0:9223372036854775808:", examplePostscreen, ""} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, value []byte) {
		rec, err := ParseVerify(value)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "verify ") {
				t.Fatalf("error %q does not say what it is about", err)
			}
			return
		}
		if _, ok := VerifyStatuses[rec.Status]; !ok {
			t.Fatalf("status %d accepted", rec.Status)
		}
		if rec.Probed < 0 || rec.Updated < 0 || (rec.Probed == 0 && rec.Updated == 0) {
			t.Fatalf("times accepted: %+v", rec)
		}
		again, err := ParseVerify([]byte(rec.String()))
		if err != nil || again != rec {
			t.Fatalf("round trip %q -> %q -> %+v, %v; want %+v", value, rec.String(), again, err, rec)
		}
	})
}

func FuzzDeadline(f *testing.F) {
	add := func(kind uint8, value string, client, now int64, minS, maxS, aS, bS uint32, cp bool) {
		f.Add(kind, []byte(value), client, now, minS, maxS, aS, bS, cp)
	}
	add(0, examplePostscreen, 0, now, 3600, 90*86400, 7*86400, 0, false)
	add(0, "18446744073709551615", now+3600, now, 3600, 90*86400, 7*86400, 0, true)
	add(0, "1;1;1;1;1", 0, now, 0, 0, 0, 0, false)
	add(1, exampleVerify, 0, now, 3600, 90*86400, 31*86400, 3*86400, false)
	add(1, "3:1795586621:0:", now+10, now, 0, 0, 31*86400, 3*86400, true)
	add(1, "0:9223372036854775807:9223372036854775807:", 1, math.MaxInt64, 1, 1, 1, 1, true)
	add(2, "x", now-1, now, 0, 0, 3600, 0, true)
	add(3, "x", 0, now, 60, 3600, 0, 0, false)
	add(3, "x", now+30, now, 60, 0, 0, 0, false)
	f.Fuzz(func(t *testing.T, kind uint8, value []byte, client, now int64, minS, maxS, aS, bS uint32, cp bool) {
		now &= math.MaxInt64 // the clock is never negative
		r := Rule{
			Kind:      []Kind{Postscreen, Verify, Fixed, Passthrough}[kind%4],
			MinTTL:    time.Duration(minS) * time.Second,
			MaxTTL:    time.Duration(maxS) * time.Second,
			ClientTTL: Ignore,
		}
		if cp {
			r.ClientTTL = Cap
		}
		switch r.Kind {
		case Postscreen:
			r.Retention = time.Duration(aS) * time.Second
		case Verify:
			r.PositiveExpire = time.Duration(aS) * time.Second
			r.NegativeExpire = time.Duration(bS) * time.Second
		case Fixed:
			r.TTL = time.Duration(aS) * time.Second
		}
		if r.Validate() != nil {
			return
		}
		d, keep, err := r.Deadline(value, client, now)
		if !keep && d != 0 {
			t.Fatalf("not kept but deadline %d", d)
		}
		var perr error
		switch r.Kind {
		case Postscreen:
			_, perr = ParsePostscreen(value)
		case Verify:
			_, perr = ParseVerify(value)
		}
		if (err == nil) != (perr == nil) {
			t.Fatalf("Deadline err %v, parse err %v", err, perr)
		}
		if err != nil {
			if keep {
				t.Fatal("kept with an error")
			}
			return
		}
		if !keep {
			return
		}
		lo, hi := addSat(now, int64(minS)), addSat(now, int64(maxS))
		if r.Kind == Passthrough {
			if d == 0 {
				if client != 0 || maxS != 0 {
					t.Fatalf("never expires with client %d max %d", client, maxS)
				}
				return
			}
			if d <= now || (maxS > 0 && d > hi) || d < lo {
				t.Fatalf("passthrough deadline now%+d outside [%d, %d]", d-now, minS, maxS)
			}
			return
		}
		// Typed maps: always a real deadline, after now, within the clamp.
		if d <= now {
			t.Fatalf("kept with deadline now%+d", d-now)
		}
		if maxS > 0 && d > hi {
			t.Fatalf("deadline now%+d above max_ttl %d", d-now, maxS)
		}
		if r.ClientTTL == Cap && client != 0 {
			if d > client {
				t.Fatalf("deadline %d above client's %d in cap mode", d, client)
			}
			if d < min(lo, client) {
				t.Fatalf("deadline now%+d below min(min_ttl, client)", d-now)
			}
			return
		}
		if d < lo {
			t.Fatalf("deadline now%+d below min_ttl %d", d-now, minS)
		}
	})
}

// TestPostscreenRetentionRules sets repcache's default rule (latest pass +
// retention) beside Postfix's code rule (psc_cache_validator: the first
// enabled test's stamp + retention; a 0 stamp of an enabled test goes at
// the next cleanup run, which repcache stands in for with min_ttl), on
// records whose tests have Postfix's different TTLs: greet 1d, DNSBL up to
// 1h, the deep tests 30d. The clock is the injected now.
func TestPostscreenRetentionRules(t *testing.T) {
	latest := Defaults(Postscreen) // retention 7d, clamp [1h, 90d]
	first := with(latest, func(r *Rule) { r.RetentionRule = FirstExpired })
	cases := []struct {
		name          string
		value         string
		latest, first int64 // deadlines; 0 = not kept
	}{
		{"greet only (Debian example)", examplePostscreen, 1795673021 + 7*D, 1795673021 + 7*D},
		{"greet 1d, dnsbl 1h, deep tests 30d", ps(now+D, now+H, now+30*D, now+30*D, now+30*D), now + 37*D, now + H + 7*D},
		{"dnsbl expired 6d ago, deep tests fresh", ps(1, now-6*D, now+30*D, now+30*D, now+30*D), now + 37*D, now + D},
		{"dnsbl expired 8d ago, deep tests fresh", ps(1, now-8*D, now+30*D, now+30*D, now+30*D), now + 37*D, 0},
		{"deep tests enabled, not passed yet", ps(now+D, now+H, 0, 0, 0), now + 8*D, now + H},
		{"every test disabled", "1;1;1;1;1", now + H, now + H},
		{"every test new", "0;0;0;0;0", now + H, now + H},
		{"missing fields read as disabled", ps(now + D), now + 8*D, now + 8*D},
	}
	for _, tc := range cases {
		for _, rr := range []struct {
			rule Rule
			want int64
		}{{latest, tc.latest}, {first, tc.first}} {
			d, keep, err := rr.rule.Deadline([]byte(tc.value), 0, now)
			if err != nil || keep != (rr.want != 0) || d != rr.want {
				t.Errorf("%s, %s: Deadline = %d (now%+d), %v, %v; want %d (now%+d)", tc.name, rr.rule.RetentionRule, d, d-now, keep, err, rr.want, rr.want-now)
			}
		}
	}
	if err := with(latest, func(r *Rule) { r.RetentionRule = "all" }).Validate(); err == nil || err.Error() != `unknown retention_rule "all": want latest_pass or first_expired` {
		t.Errorf("Validate(retention_rule all) = %v", err)
	}
}

func TestVerifyLifeAndTestExpired(t *testing.T) {
	r := Defaults(Verify)
	if l := r.VerifyLife(0, 0, now); l.Valid != now+31*D || l.Probe != ProbeTTL || l.Until() != now+31*D {
		t.Errorf("OK record: %+v", l)
	}
	if l := r.VerifyLife(3, now, 0); l.Valid != 3*D || l.Until() != now+ProbeTTL {
		t.Errorf("TODO record: %+v", l)
	}
	for _, tc := range []struct {
		stamp uint64
		want  bool
	}{{StampNew, false}, {StampDisabled, false}, {2, true}, {uint64(now), true}, {uint64(now) + 1, false}} {
		if got := TestExpired(tc.stamp, now); got != tc.want {
			t.Errorf("TestExpired(%d) = %v", tc.stamp, got)
		}
	}
}
