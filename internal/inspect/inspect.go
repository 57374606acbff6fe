// Package inspect turns a cache record into plain words for a mail
// administrator: for postscreen, each test's state and expiry; for verify,
// the status, when it was probed and updated, and until when Postfix trusts
// it; and for any record, how long repcache keeps it.
package inspect

import (
	"fmt"
	"strings"
	"time"

	"github.com/repcache/repcache/internal/ttl"
)

// Record is what to describe.
type Record struct {
	Map   string   // the map's name ("" when unknown)
	Rule  ttl.Rule // the map's rule (its Kind decides the decoding)
	Key   string
	Value []byte
	// Remaining is the lifetime left in the cache, as mg's t flag reports
	// it: -1 for never, unknown when Known is false (a raw value).
	Remaining int64
	Known     bool
}

// Describe writes rec in words, relative to now.
func Describe(rec Record, now time.Time) (string, error) {
	var b strings.Builder
	where := ""
	if rec.Map != "" {
		where = " (map " + rec.Map + ")"
	}
	switch rec.Rule.Kind {
	case ttl.Postscreen:
		r, err := ttl.ParsePostscreen(rec.Value)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "postscreen record %s%s\n", rec.Key, where)
		for i, stamp := range r.Stamps {
			name := strings.ToLower(ttl.PostscreenTests[i])
			switch {
			case i >= r.Fields:
				fmt.Fprintf(&b, "  %-13s not in the record (an older Postfix): treated as disabled\n", name)
			case stamp == ttl.StampNew:
				fmt.Fprintf(&b, "  %-13s never passed: postscreen runs it on the next connection\n", name)
			case stamp == ttl.StampDisabled:
				fmt.Fprintf(&b, "  %-13s disabled when the record was written\n", name)
			case !ttl.TestExpired(stamp, now.Unix()):
				fmt.Fprintf(&b, "  %-13s passed, valid until %s (%s from now)\n", name, at(int64(stamp)), words(int64(stamp)-now.Unix()))
			default:
				fmt.Fprintf(&b, "  %-13s passed, expired %s (%s ago): postscreen runs it again\n", name, at(int64(stamp)), words(now.Unix()-int64(stamp)))
			}
		}
		// What Postfix's own cleanup (psc_cache_validator's code) would do,
		// whatever rule the map applies.
		postfix := rec.Rule
		postfix.RetentionRule, postfix.MinTTL, postfix.MaxTTL, postfix.ClientTTL = ttl.FirstExpired, 0, 0, ttl.Ignore
		if r.Stamps == [5]uint64{ttl.StampDisabled, ttl.StampDisabled, ttl.StampDisabled, ttl.StampDisabled, ttl.StampDisabled} {
			b.WriteString("  Postfix's cleanup keeps it: no test was enabled when it was written\n")
		} else if d, keep, err := postfix.Deadline(rec.Value, 0, now.Unix()); err == nil && keep {
			fmt.Fprintf(&b, "  Postfix's cleanup would drop it at %s (its first enabled test's stamp + %s retention)\n", at(d), words(int64(rec.Rule.Retention.Seconds())))
		} else if err == nil {
			b.WriteString("  Postfix's cleanup would drop it at its next run (an enabled test is past retention or never passed)\n")
		}
	case ttl.Verify:
		r, err := ttl.ParseVerify(rec.Value)
		if err != nil {
			return "", err
		}
		fmt.Fprintf(&b, "verify record %s%s\n", rec.Key, where)
		fmt.Fprintf(&b, "  status   %s\n", statusWords(r.Status))
		fmt.Fprintf(&b, "  probed   %s\n", when(r.Probed, now))
		fmt.Fprintf(&b, "  updated  %s\n", when(r.Updated, now))
		if r.Text != "" {
			fmt.Fprintf(&b, "  text     %s\n", r.Text)
		}
		life := rec.Rule.VerifyLife(r.Status, r.Probed, r.Updated)
		if r.Updated > 0 {
			state := "trusts it"
			if life.Valid <= now.Unix() {
				state = "no longer trusts it"
			}
			fmt.Fprintf(&b, "  Postfix %s: valid until %s (update + %s)\n", state, at(life.Valid), words(life.Valid-r.Updated))
		}
		if r.Probed > 0 && life.Probe > now.Unix() {
			fmt.Fprintf(&b, "  a probe is in flight since %s\n", at(r.Probed))
		}
	default:
		fmt.Fprintf(&b, "%s record %s%s\n  value    %q\n", rec.Rule.Kind, rec.Key, where, rec.Value)
	}
	switch {
	case !rec.Known:
		d, keep, err := rec.Rule.Deadline(rec.Value, 0, now.Unix())
		switch {
		case err != nil:
		case !keep:
			b.WriteString("repcache would not keep it: it is already dead by Postfix's rules\n")
		case d == 0:
			b.WriteString("repcache would keep it without expiry\n")
		default:
			fmt.Fprintf(&b, "repcache would keep it until %s (%s from now)\n", at(d), words(d-now.Unix()))
		}
	case rec.Remaining < 0:
		b.WriteString("repcache keeps it without expiry\n")
	default:
		fmt.Fprintf(&b, "repcache keeps it for %s more (until %s)\n", words(rec.Remaining), at(now.Unix()+rec.Remaining))
	}
	return b.String(), nil
}

func statusWords(s int) string {
	switch s {
	case 0:
		return "OK (0): the address is deliverable"
	case 1:
		return "DEFER (1): delivery would be tried again later; mail is tempfailed"
	case 2:
		return "BOUNCE (2): the address was rejected; mail is refused"
	case 3:
		return "TODO (3): a probe is in progress"
	}
	return fmt.Sprint(s)
}

func when(t int64, now time.Time) string {
	if t == 0 {
		return "never"
	}
	if t > now.Unix() {
		return fmt.Sprintf("%s (in %s)", at(t), words(t-now.Unix()))
	}
	return fmt.Sprintf("%s (%s ago)", at(t), words(now.Unix()-t))
}

func at(unix int64) string { return time.Unix(unix, 0).UTC().Format("2006-01-02 15:04:05 UTC") }

// words writes a duration in seconds the way people say it: "7d 2h", "3h 5m", "40s".
func words(s int64) string {
	if s < 0 {
		s = -s
	}
	switch {
	case s >= 86400:
		d, h := s/86400, s%86400/3600
		if h == 0 {
			return fmt.Sprintf("%dd", d)
		}
		return fmt.Sprintf("%dd %dh", d, h)
	case s >= 3600:
		h, m := s/3600, s%3600/60
		if m == 0 {
			return fmt.Sprintf("%dh", h)
		}
		return fmt.Sprintf("%dh %dm", h, m)
	case s >= 60:
		return fmt.Sprintf("%dm", s/60)
	}
	return fmt.Sprintf("%ds", s)
}
