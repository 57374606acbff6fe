// Package cstrconv parses numbers exactly as memcached does with the C
// library's strtol/strtoul/strtoull plus memcached's safe_* wrappers, so that
// repcache accepts and rejects the same numeric tokens byte for byte
// (leading white space, a sign, trailing white space, silent truncation of
// flags to 32 bits).
package cstrconv

import "math"

// isSpace reports C isspace() in the "C" locale.
func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\v' || c == '\f' || c == '\r'
}

// strtou parses like strtoull: optional leading white space, optional sign,
// decimal digits. It returns the value (negated modulo 2^64 when the sign
// is '-'), the index just past the digits, whether any digit was consumed,
// and whether the magnitude overflowed 64 bits (ERANGE).
func strtou(s []byte) (v uint64, end int, neg, ok, overflow bool) {
	i := 0
	for i < len(s) && isSpace(s[i]) {
		i++
	}
	if i < len(s) && (s[i] == '+' || s[i] == '-') {
		neg = s[i] == '-'
		i++
	}
	start := i
	for ; i < len(s) && s[i] >= '0' && s[i] <= '9'; i++ {
		d := uint64(s[i] - '0')
		if v > (math.MaxUint64-d)/10 {
			overflow = true
		}
		v = v*10 + d
	}
	if i == start {
		return 0, 0, false, false, false
	}
	if neg {
		v = -v
	}
	return v, i, neg, true, overflow
}

// endsClean is memcached's check after strto*: the number must be followed
// by white space or the end of the token.
func endsClean(s []byte, end int) bool {
	return end == len(s) || isSpace(s[end])
}

// ParseUint64 is memcached's safe_strtoull: a negative number is refused only
// when its two's complement is above 2^63, exactly as memcached does.
func ParseUint64(s []byte) (uint64, bool) {
	v, end, neg, ok, overflow := strtou(s)
	if !ok || overflow || !endsClean(s, end) {
		return 0, false
	}
	if int64(v) < 0 && neg {
		return 0, false
	}
	return v, true
}

// ParseUint32 is memcached's safe_strtoul on a 64-bit host: the value is
// parsed as 64 bits and then truncated to 32, so "4294967296" reads as 0.
func ParseUint32(s []byte) (uint32, bool) {
	v, ok := ParseUint64(s)
	return uint32(v), ok
}

// ParseInt32 is memcached 1.6.18's safe_strtol: a signed 64-bit strtol
// (refused on ERANGE) whose result is then truncated to 32 bits, so
// "4000000000" reads as a negative exptime and "4294967295" as -1.
func ParseInt32(s []byte) (int32, bool) {
	u, end, neg, ok, overflow := strtou(s)
	if !ok || !endsClean(s, end) {
		return 0, false
	}
	if overflow || (!neg && u > math.MaxInt64) || (neg && -u > 1<<63) {
		return 0, false
	}
	return int32(int64(u)), true
}
