package cstrconv

import "testing"

func TestParse(t *testing.T) {
	for _, tc := range []struct {
		in    string
		i32   int32
		i32ok bool
		u32   uint32
		u32ok bool
		u64   uint64
		u64ok bool
	}{
		{"0", 0, true, 0, true, 0, true},
		{"+5", 5, true, 5, true, 5, true},
		{"\t7", 7, true, 7, true, 7, true},
		{"7\t", 7, true, 7, true, 7, true},
		{"7x", 0, false, 0, false, 0, false},
		{"", 0, false, 0, false, 0, false},
		{"-", 0, false, 0, false, 0, false},
		{"-1", -1, true, 0, false, 0, false},
		{"-0", 0, true, 0, true, 0, true},
		{"2147483647", 2147483647, true, 2147483647, true, 2147483647, true},
		{"2147483648", -2147483648, true, 2147483648, true, 2147483648, true},
		{"-2147483648", -2147483648, true, 0, false, 0, false},
		{"4294967296", 0, true, 0, true, 4294967296, true},
		{"4000000000", -294967296, true, 4000000000, true, 4000000000, true},
		{"9223372036854775808", 0, false, 0, true, 9223372036854775808, true},
		{"18446744073709551615", 0, false, 4294967295, true, 18446744073709551615, true},
		{"18446744073709551616", 0, false, 0, false, 0, false},
		// strtoul negates modulo 2^64; memcached only refuses it above 2^63.
		{"-9223372036854775809", 0, false, 4294967295, true, 9223372036854775807, true},
	} {
		if v, ok := ParseInt32([]byte(tc.in)); v != tc.i32 || ok != tc.i32ok {
			t.Errorf("ParseInt32(%q) = %d, %v; want %d, %v", tc.in, v, ok, tc.i32, tc.i32ok)
		}
		if v, ok := ParseUint32([]byte(tc.in)); v != tc.u32 || ok != tc.u32ok {
			t.Errorf("ParseUint32(%q) = %d, %v; want %d, %v", tc.in, v, ok, tc.u32, tc.u32ok)
		}
		if v, ok := ParseUint64([]byte(tc.in)); v != tc.u64 || ok != tc.u64ok {
			t.Errorf("ParseUint64(%q) = %d, %v; want %d, %v", tc.in, v, ok, tc.u64, tc.u64ok)
		}
	}
}
