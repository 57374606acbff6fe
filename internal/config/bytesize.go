package config

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// ByteSize is a number of bytes. In YAML, environment variables and flags it
// is written as a bare integer (bytes) or an integer with a unit:
//
//	B                          1
//	KiB, MiB, GiB, TiB         1024-based (IEC)
//	k, m, g, t (or K, M, G, T) 1024-based, as memcached's -m reads them
//	KB, MB, GB, TB             1000-based (SI)
//
// Units are case-sensitive ("mb" is rejected rather than guessed at) and an
// optional space may separate number and unit. Fractions are not accepted.
type ByteSize int64

// Common sizes.
const (
	KiB ByteSize = 1 << 10
	MiB ByteSize = 1 << 20
	GiB ByteSize = 1 << 30
	TiB ByteSize = 1 << 40
)

var byteUnits = map[string]ByteSize{
	"B":   1,
	"KiB": KiB, "MiB": MiB, "GiB": GiB, "TiB": TiB,
	"k": KiB, "m": MiB, "g": GiB, "t": TiB,
	"K": KiB, "M": MiB, "G": GiB, "T": TiB,
	"KB": 1e3, "MB": 1e6, "GB": 1e9, "TB": 1e12,
}

// ParseByteSize parses s as described on ByteSize.
func ParseByteSize(s string) (ByteSize, error) {
	s = strings.TrimSpace(s)
	i := 0
	for i < len(s) && s[i] >= '0' && s[i] <= '9' {
		i++
	}
	num, unit := s[:i], strings.TrimLeft(s[i:], " ")
	mult := ByteSize(1)
	if unit != "" {
		m, ok := byteUnits[unit]
		if !ok {
			return 0, fmt.Errorf("cannot parse %q as a byte size (want bytes or a unit such as \"64MiB\")", s)
		}
		mult = m
	}
	if num == "" {
		return 0, fmt.Errorf("cannot parse %q as a byte size (want bytes or a unit such as \"64MiB\")", s)
	}
	n, err := strconv.ParseInt(num, 10, 64)
	if err != nil || n > math.MaxInt64/int64(mult) {
		return 0, fmt.Errorf("byte size %q is out of range", s)
	}
	return ByteSize(n) * mult, nil
}

// String formats b with the largest unit that divides it exactly, so the
// result is short and parses back to the same value ("64MiB", "64MB",
// "1536KiB", "100B").
func (b ByteSize) String() string {
	if b > 0 {
		for _, u := range []struct {
			size ByteSize
			name string
		}{{TiB, "TiB"}, {1e12, "TB"}, {GiB, "GiB"}, {1e9, "GB"}, {MiB, "MiB"}, {1e6, "MB"}, {KiB, "KiB"}, {1e3, "KB"}} {
			if b%u.size == 0 {
				return strconv.FormatInt(int64(b/u.size), 10) + u.name
			}
		}
	}
	return strconv.FormatInt(int64(b), 10) + "B"
}

// Set implements pflag.Value so byte-size flags accept the same forms as YAML.
func (b *ByteSize) Set(s string) error {
	v, err := ParseByteSize(s)
	if err != nil {
		return err
	}
	*b = v
	return nil
}

// Type implements pflag.Value; it is the placeholder shown in --help.
func (b *ByteSize) Type() string { return "bytesize" }

// MarshalText renders b like String, so a Config dumped as JSON or YAML
// shows "64MiB" rather than 67108864.
func (b ByteSize) MarshalText() ([]byte, error) { return []byte(b.String()), nil }

// UnmarshalText parses the forms accepted by ParseByteSize.
func (b *ByteSize) UnmarshalText(text []byte) error { return b.Set(string(text)) }
