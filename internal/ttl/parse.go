package ttl

import (
	"bytes"
	"fmt"
	"math"
	"strconv"
)

// PostscreenTests names the five fields of a postscreen record, in order.
var PostscreenTests = [5]string{"PREGREET", "DNSBL", "PIPELINING", "NON_SMTP", "BARE_NEWLINE"}

// Special postscreen stamps (postscreen.h PSC_TIME_STAMP_*).
const (
	StampNew      = 0 // the test has never passed
	StampDisabled = 1 // the test was disabled when the record was written
)

// PostscreenRecord is a parsed postscreen cache value.
type PostscreenRecord struct {
	// Stamps holds each test's pass expiry (Unix time), or StampNew or
	// StampDisabled. Fields missing from the value read as StampDisabled,
	// as postscreen reads them.
	Stamps [5]uint64
	// Fields is how many of the five fields were present (1..5). Fields
	// beyond the fifth are ignored, as postscreen ignores them, and are not
	// counted.
	Fields int
}

// ParsePostscreen parses PREGREET;DNSBL;PIPELINING;NON_SMTP;BARE_NEWLINE.
//
// Like postscreen, it accepts fewer than five fields (the missing trailing
// ones read as disabled) and ignores fields beyond the fifth. Unlike
// postscreen's lenient strtoul, each present field among the first five must
// be a non-empty run of ASCII digits that fits 64 bits: postscreen never
// writes anything else, so anything else is not a postscreen record.
func ParsePostscreen(value []byte) (PostscreenRecord, error) {
	rec := PostscreenRecord{Stamps: [5]uint64{StampDisabled, StampDisabled, StampDisabled, StampDisabled, StampDisabled}}
	if len(value) == 0 {
		return rec, fmt.Errorf("postscreen record is empty, want %s", postscreenFormat)
	}
	rest := value
	for i := range rec.Stamps {
		field, tail, more := bytes.Cut(rest, []byte{';'})
		n, perr := parseDigits(field, math.MaxUint64)
		if perr != 0 {
			return rec, fmt.Errorf("postscreen record field %d (%s) %s", i+1, PostscreenTests[i], perr.describe(field, "a Unix time"))
		}
		rec.Stamps[i] = n
		rec.Fields = i + 1
		if !more {
			break
		}
		rest = tail
	}
	return rec, nil
}

const postscreenFormat = "PREGREET;DNSBL;PIPELINING;NON_SMTP;BARE_NEWLINE"

// String returns the record in postscreen's wire form, with Fields fields
// (at least one).
func (p PostscreenRecord) String() string {
	n := min(max(p.Fields, 1), len(p.Stamps))
	b := make([]byte, 0, n*11)
	for i, s := range p.Stamps[:n] {
		if i > 0 {
			b = append(b, ';')
		}
		b = strconv.AppendUint(b, s, 10)
	}
	return string(b)
}

// latestPass returns the latest passed stamp (one above StampDisabled),
// saturated to int64, and whether any test had passed.
func (p PostscreenRecord) latestPass() (int64, bool) {
	var latest uint64
	for _, s := range p.Stamps {
		if s > StampDisabled && s > latest {
			latest = s
		}
	}
	if latest == 0 {
		return 0, false
	}
	if latest > math.MaxInt64 {
		return math.MaxInt64, true // beyond any real clock; MaxTTL will clamp
	}
	return int64(latest), true
}

// earliestEnabled returns the earliest stamp of a test that was enabled
// (any stamp but StampDisabled, StampNew included), saturated to int64, and
// whether there was one.
func (p PostscreenRecord) earliestEnabled() (int64, bool) {
	earliest, found := uint64(math.MaxUint64), false
	for _, s := range p.Stamps {
		if s != StampDisabled {
			earliest, found = min(earliest, s), true
		}
	}
	if earliest > math.MaxInt64 {
		return math.MaxInt64, found
	}
	return int64(earliest), found
}

// VerifyStatuses names verify's STATUS codes (DEL_RCPT_STAT_*).
var VerifyStatuses = map[int]string{0: "OK", 1: "DEFER", 2: "BOUNCE", 3: "TODO"}

// VerifyRecord is a parsed verify cache value.
type VerifyRecord struct {
	Status  int    // 0 OK, 1 DEFER, 2 BOUNCE, 3 TODO
	Probed  int64  // when the outstanding probe was sent; 0 = none
	Updated int64  // when the probe result arrived; 0 = none yet
	Text    string // delivery agent's text; may contain ':' and may be empty
}

// ParseVerify parses STATUS:PROBED:UPDATED:TEXT by Postfix's
// verify_parse_entry rules: split at the first three ':' (TEXT keeps any
// further ones), STATUS, PROBED and UPDATED all digits, STATUS one of 0..3,
// and PROBED or UPDATED non-zero. PROBED and UPDATED must also fit int64.
func ParseVerify(value []byte) (VerifyRecord, error) {
	status, probed, updated, text, err := parseVerify(value)
	if err != nil {
		return VerifyRecord{}, err
	}
	return VerifyRecord{Status: status, Probed: probed, Updated: updated, Text: string(text)}, nil
}

// String returns the record in verify's wire form (verify_make_entry).
func (v VerifyRecord) String() string {
	return fmt.Sprintf("%d:%d:%d:%s", v.Status, v.Probed, v.Updated, v.Text)
}

// parseVerify is ParseVerify without copying TEXT, for the write path.
func parseVerify(value []byte) (status int, probed, updated int64, text []byte, err error) {
	var f [3][]byte
	rest := value
	for i := range f {
		var more bool
		f[i], rest, more = bytes.Cut(rest, []byte{':'})
		if !more {
			n := i + 1
			word := "fields"
			if n == 1 {
				word = "field"
			}
			return 0, 0, 0, nil, fmt.Errorf("verify record needs STATUS:PROBED:UPDATED:TEXT, got %d %s", n, word)
		}
	}
	text = rest

	st, perr := parseDigits(f[0], math.MaxUint64)
	if perr == errOverflow {
		// All digits but huge: report it as an out-of-range status.
		return 0, 0, 0, nil, fmt.Errorf("verify status %s is not %s", clip(f[0]), statusList)
	}
	if perr != 0 {
		return 0, 0, 0, nil, fmt.Errorf("verify record field 1 (STATUS) %s", perr.describe(f[0], "a number"))
	}
	for i, name := range []string{"PROBED", "UPDATED"} {
		n, perr := parseDigits(f[i+1], math.MaxInt64)
		if perr != 0 {
			return 0, 0, 0, nil, fmt.Errorf("verify record field %d (%s) %s", i+2, name, perr.describe(f[i+1], "a Unix time"))
		}
		if i == 0 {
			probed = int64(n)
		} else {
			updated = int64(n)
		}
	}
	if st > 3 {
		return 0, 0, 0, nil, fmt.Errorf("verify status %d is not %s", st, statusList)
	}
	if probed == 0 && updated == 0 {
		// Postfix rejects these too: it never writes one.
		return 0, 0, 0, nil, fmt.Errorf("verify record has PROBED and UPDATED both 0; one must be a Unix time")
	}
	return int(st), probed, updated, text, nil
}

const statusList = "0 (OK), 1 (DEFER), 2 (BOUNCE) or 3 (TODO)"

// digitsError says why a numeric field was refused.
type digitsError int

const (
	errEmpty digitsError = iota + 1
	errNotDigits
	errOverflow
)

// describe words the error for an operator, quoting the field.
func (e digitsError) describe(field []byte, want string) string {
	switch e {
	case errEmpty:
		return "is empty, want " + want
	case errOverflow:
		return fmt.Sprintf("%s is not %s (too large)", clip(field), want)
	default:
		return fmt.Sprintf("%s is not %s", clip(field), want)
	}
}

// parseDigits parses a non-empty run of ASCII digits no larger than limit.
// It returns a digitsError (0 = none, not an error interface) so that
// callers can word it and the success path allocates nothing.
func parseDigits(b []byte, limit uint64) (uint64, digitsError) {
	if len(b) == 0 {
		return 0, errEmpty
	}
	var n uint64
	over := false
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, errNotDigits
		}
		d := uint64(c - '0')
		if n > (limit-d)/10 {
			over = true // keep scanning: a non-digit later is the better message
			continue
		}
		n = n*10 + d
	}
	if over {
		return 0, errOverflow
	}
	return n, 0
}

// clip quotes a field for an error message, shortened so that a 10 KB value
// cannot flood a log line.
func clip(b []byte) string {
	const maxShown = 40
	if len(b) > maxShown {
		return strconv.Quote(string(b[:maxShown])) + "..."
	}
	return strconv.Quote(string(b))
}
