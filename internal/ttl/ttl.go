// Package ttl decides how long repcache keeps a record Postfix writes, by
// reading the record the way Postfix itself reads it. Postfix's memcache
// client sends one fixed ttl for every entry of a table, which is wrong for
// postscreen and verify records (whose useful life is written inside the
// value) and which memcached misreads above 30 days. This package replaces
// that ttl with the lifetime Postfix's own cleanup rules would give the
// record.
//
// Everything here is a pure function: a rule and a value go in, an absolute
// deadline comes out. The clock is a parameter (now, Unix seconds, >= 0) so
// that callers and tests control time; nothing here reads the wall clock.
// The shape follows coredns plugin/cache: derive a lifetime, clamp it to
// [MinTTL, MaxTTL], add it to the injected now.
//
// The rules per Kind:
//
//   - Postscreen: the value is PREGREET;DNSBL;PIPELINING;NON_SMTP;BARE_NEWLINE,
//     each the Unix time at which that test's pass expires (0 = never passed,
//     1 = disabled). The record lives until its latest passed stamp plus
//     Retention (postscreen_cache_retention_time): postscreen re-runs only
//     the expired tests, so a record is worth keeping until its last pass is
//     of no use any more. A record without any passed test lives MinTTL.
//   - Verify: the value is STATUS:PROBED:UPDATED:TEXT. The record lives
//     until the later of UPDATED plus PositiveExpire (STATUS 0) or
//     NegativeExpire (any other STATUS), and PROBED plus 1000 s (Postfix's
//     PROBE_TTL, a probe in flight).
//   - Fixed: every write lives TTL; the value is not read.
//   - Passthrough: the client's own exptime, as memcached would apply it.
//
// A derived lifetime > 0 is clamped to [MinTTL, MaxTTL] (MaxTTL 0: no upper
// bound). A derived lifetime <= 0 means Postfix would already treat the record
// as expired: it is not kept and not clamped up, just as memcached answers
// STORED to a write whose exptime is in the past and keeps nothing.
//
// Deadlines are absolute, so lifetimes above memcached's 30-day relative
// limit need no special care. Arithmetic saturates at math.MaxInt64 instead
// of overflowing, so absurd stamps (up to 2^64-1) yield a far deadline that
// MaxTTL then clamps.
package ttl

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"time"
)

// Kind names how a map's values are read.
type Kind string

const (
	Postscreen  Kind = "postscreen"  // postscreen_cache_map records
	Verify      Kind = "verify"      // address_verify_map records
	Fixed       Kind = "fixed"       // every write lives Rule.TTL
	Passthrough Kind = "passthrough" // the client's exptime, memcached semantics
)

// ParseKind reads a kind from configuration text.
func ParseKind(s string) (Kind, error) {
	return parseWord(s, "map kind", Postscreen, Verify, Fixed, Passthrough)
}

// parseWord reads one of the allowed words of a setting from configuration
// text; the error names the setting and lists the words.
func parseWord[T ~string](s, setting string, allowed ...T) (T, error) {
	words := make([]string, len(allowed))
	for i, a := range allowed {
		if string(a) == s {
			return a, nil
		}
		words[i] = string(a)
	}
	list := strings.Join(words[:len(words)-1], ", ") + " or " + words[len(words)-1]
	return "", fmt.Errorf("unknown %s %q: want %s", setting, s, list)
}

// ClientTTL says what a typed map (postscreen, verify, fixed) does with the
// exptime the client sent. Postfix sends the table's fixed ttl, which knows
// nothing about the record, so ignoring it is the default.
type ClientTTL string

const (
	// Ignore: the client's exptime is ignored (default; "" means Ignore).
	Ignore ClientTTL = "ignore"
	// Cap: the derived deadline is capped at the client's deadline when that
	// is non-zero, for operators who want Postfix's ttl as an upper bound.
	Cap ClientTTL = "cap"
)

// ParseClientTTL reads a ClientTTL from configuration text.
func ParseClientTTL(s string) (ClientTTL, error) { return parseWord(s, "client_ttl", Ignore, Cap) }

// RetentionRule says when a postscreen record's retention runs out.
type RetentionRule string

const (
	// LatestPass (default; "" means LatestPass): the record lives until its
	// latest passed stamp plus Retention. This is the intent stated in the
	// comment of Postfix's psc_cache_validator ("remove the cache entry only
	// after all tests have expired longer ago than the cache retention
	// time"), and it spares a client that passed the after-220 tests from
	// redoing them while its other passes are renewed.
	LatestPass RetentionRule = "latest_pass"
	// FirstExpired: what psc_cache_validator's code does (Postfix 3.7
	// through 3.12): the record goes as soon as any enabled test's stamp is
	// older than now - Retention, i.e. at its earliest stamp that is not
	// StampDisabled plus Retention. A StampNew (0) stamp of an enabled test
	// makes Postfix drop the record at its next cleanup run; repcache keeps
	// such a record MinTTL, standing for that next run.
	FirstExpired RetentionRule = "first_expired"
)

// ParseRetentionRule reads a RetentionRule from configuration text.
func ParseRetentionRule(s string) (RetentionRule, error) {
	return parseWord(s, "retention_rule", LatestPass, FirstExpired)
}

// ProbeTTL is Postfix verify's PROBE_TTL: a record whose probe went out less
// than this long ago is kept so that concurrent queries do not send more
// probes.
const ProbeTTL = 1000 // seconds

// Rule is one map's lifetime rule.
type Rule struct {
	Kind           Kind
	Retention      time.Duration // postscreen: postscreen_cache_retention_time, Postfix default 7d
	PositiveExpire time.Duration // verify: address_verify_positive_expire_time, default 31d
	NegativeExpire time.Duration // verify: address_verify_negative_expire_time, default 3d
	TTL            time.Duration // fixed: every write lives TTL
	MinTTL, MaxTTL time.Duration // clamp bounds; MaxTTL 0 = no upper bound
	ClientTTL      ClientTTL
	RetentionRule  RetentionRule // postscreen: when Retention runs out
}

const day = 24 * time.Hour

// Defaults returns Postfix's defaults for a kind, with clamp bounds that
// keep a typed record at least an hour (so a burst of rewrites is not
// churned) and at most 90 days (so a bogus far-future stamp cannot pin
// memory). Fixed and passthrough are unclamped; fixed still needs a TTL.
// An unknown kind yields a Rule that fails Validate.
func Defaults(k Kind) Rule {
	switch k {
	case Postscreen:
		return Rule{Kind: k, Retention: 7 * day, MinTTL: time.Hour, MaxTTL: 90 * day, ClientTTL: Ignore, RetentionRule: LatestPass}
	case Verify:
		return Rule{Kind: k, PositiveExpire: 31 * day, NegativeExpire: 3 * day, MinTTL: time.Hour, MaxTTL: 90 * day, ClientTTL: Ignore}
	default:
		return Rule{Kind: k, ClientTTL: Ignore}
	}
}

// Validate checks the rule itself. Errors name the offending field by its
// configuration key so that an operator can find it.
func (r Rule) Validate() error {
	if _, err := ParseKind(string(r.Kind)); err != nil {
		return err
	}
	for _, f := range []struct {
		key string
		d   time.Duration
	}{
		{"retention", r.Retention},
		{"positive_expire", r.PositiveExpire},
		{"negative_expire", r.NegativeExpire},
		{"ttl", r.TTL},
		{"min_ttl", r.MinTTL},
		{"max_ttl", r.MaxTTL},
	} {
		if f.d < 0 {
			return fmt.Errorf("%s %v is negative", f.key, f.d)
		}
	}
	if r.MaxTTL > 0 && r.MinTTL > r.MaxTTL {
		return fmt.Errorf("min_ttl %v is above max_ttl %v", r.MinTTL, r.MaxTTL)
	}
	if r.Kind == Fixed && r.TTL <= 0 {
		return errors.New("ttl must be above 0 for a fixed map")
	}
	if r.ClientTTL != "" {
		if _, err := ParseClientTTL(string(r.ClientTTL)); err != nil {
			return err
		}
	}
	if r.RetentionRule != "" {
		if _, err := ParseRetentionRule(string(r.RetentionRule)); err != nil {
			return err
		}
	}
	return nil
}

// Deadline decides the absolute deadline (Unix seconds) of a record written
// at now.
//
// clientDeadline is the client's exptime as memcached reads it, already
// converted: 0 = never, else an absolute Unix time, possibly in the past.
//
// keep=false: the record is already dead by Postfix's rules; the server
// answers STORED and keeps nothing (as memcached does for a past exptime).
// deadline is then 0.
//
// deadline 0 with keep=true: never expires. Only passthrough with
// clientDeadline 0 and MaxTTL 0 gives that.
//
// err != nil: the value does not parse as this kind and the write must be
// refused; the text says what is wrong in an operator's words.
//
// now must be >= 0. The rule should have passed Validate; an invalid one
// does not panic but its result is unspecified.
func (r Rule) Deadline(value []byte, clientDeadline, now int64) (deadline int64, keep bool, err error) {
	var life int64 // derived lifetime, seconds
	switch r.Kind {
	case Passthrough:
		return r.passthrough(clientDeadline, now)
	case Fixed:
		life = secs(r.TTL)
	case Postscreen:
		rec, err := ParsePostscreen(value)
		if err != nil {
			return 0, false, err
		}
		life = r.postscreenLife(rec, now)
	case Verify:
		status, probed, updated, _, err := parseVerify(value)
		if err != nil {
			return 0, false, err
		}
		life = subSat(r.VerifyLife(status, probed, updated).Until(), now)
	default:
		return 0, false, fmt.Errorf("unknown map kind %q", r.Kind)
	}
	if life <= 0 {
		return 0, false, nil // dead by Postfix's rules: do not revive it
	}
	deadline = addSat(now, clamp(life, secs(r.MinTTL), secs(r.MaxTTL)))
	if r.ClientTTL == Cap && clientDeadline != 0 {
		deadline = min(deadline, clientDeadline)
	}
	if deadline <= now {
		return 0, false, nil
	}
	return deadline, true, nil
}

// passthrough applies the client's deadline as memcached would, within the
// clamp bounds when they are set.
func (r Rule) passthrough(clientDeadline, now int64) (int64, bool, error) {
	maxT := secs(r.MaxTTL)
	var deadline int64
	if clientDeadline == 0 {
		if maxT == 0 {
			return 0, true, nil // never
		}
		deadline = addSat(now, maxT)
	} else {
		life := subSat(clientDeadline, now)
		if life <= 0 {
			return 0, false, nil // a past exptime: memcached keeps nothing
		}
		deadline = addSat(now, clamp(life, secs(r.MinTTL), maxT))
	}
	if deadline <= now {
		return 0, false, nil // only when now itself is at the end of time
	}
	return deadline, true, nil
}

// postscreenLife is a postscreen record's lifetime under r's RetentionRule.
func (r Rule) postscreenLife(rec PostscreenRecord, now int64) int64 {
	if r.RetentionRule == FirstExpired {
		earliest, ok := rec.earliestEnabled()
		if !ok || earliest == StampNew {
			// No enabled test (Postfix's cleanup never drops it), or an
			// enabled test never passed (dropped at the next cleanup run).
			return secs(r.MinTTL)
		}
		return subSat(addSat(earliest, secs(r.Retention)), now)
	}
	latest, passed := rec.latestPass()
	if !passed {
		// Nothing passed yet, but the record still tells postscreen
		// which tests were disabled; keep it the minimum.
		return secs(r.MinTTL)
	}
	return subSat(addSat(latest, secs(r.Retention)), now)
}

// VerifyLife is what Postfix's verify makes of a record's times.
type VerifyLife struct {
	// Valid is UPDATED plus the status's expire time (positive_expire for
	// OK, negative_expire otherwise): until then verify trusts the result.
	Valid int64
	// Probe is PROBED plus ProbeTTL: until then a probe is in flight.
	Probe int64
}

// Until is when verify stops keeping the record: the later of the two.
func (l VerifyLife) Until() int64 { return max(l.Valid, l.Probe) }

// VerifyLife is the one place verify's expiry rule is written: the write
// path (Deadline), the expired-read metric and inspect all read it here.
func (r Rule) VerifyLife(status int, probed, updated int64) VerifyLife {
	expire := r.NegativeExpire
	if status == 0 {
		expire = r.PositiveExpire
	}
	return VerifyLife{Valid: addSat(updated, secs(expire)), Probe: addSat(probed, ProbeTTL)}
}

// TestExpired reports whether a postscreen test's stamp is a pass that has
// expired at now (postscreen then runs that test again). StampNew and
// StampDisabled are not passes.
func TestExpired(stamp uint64, now int64) bool {
	return stamp > StampDisabled && stamp <= uint64(max(now, 0))
}

// clamp bounds a positive lifetime to [lo, hi]; hi 0 means no upper bound.
// As in coredns's computeTTL, the upper bound wins if the bounds cross.
func clamp(life, lo, hi int64) int64 {
	if life < lo {
		life = lo
	}
	if hi > 0 && life > hi {
		life = hi
	}
	return life
}

// secs converts a duration to whole seconds, rounding up so that a positive
// sub-second duration never becomes 0 (which would mean "drop" or
// "unbounded"). Negative durations count as 0.
func secs(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	s := int64(d / time.Second)
	if d%time.Second != 0 {
		s++
	}
	return s
}

// addSat returns a+b, saturated at the int64 limits instead of wrapping.
func addSat(a, b int64) int64 {
	if b > 0 && a > math.MaxInt64-b {
		return math.MaxInt64
	}
	if b < 0 && a < math.MinInt64-b {
		return math.MinInt64
	}
	return a + b
}

// subSat returns a-b, saturated at the int64 limits instead of wrapping.
func subSat(a, b int64) int64 {
	if b < 0 && a > math.MaxInt64+b {
		return math.MaxInt64
	}
	if b > 0 && a < math.MinInt64+b {
		return math.MinInt64
	}
	return a - b
}
