package main

import (
	"bufio"
	"strings"
	"testing"
	"time"
)

func TestAppendKey(t *testing.T) {
	for _, tc := range []struct {
		i    int
		want string
	}{
		{0, "postscreen:10.0.0.0"},
		{255, "postscreen:10.0.0.255"},
		{256, "postscreen:10.0.1.0"},
		{9999999, "postscreen:10.152.150.127"},
		{maxRecords - 1, "postscreen:10.255.255.255"},
	} {
		if got := string(appendKey(nil, tc.i)); got != tc.want {
			t.Errorf("appendKey(%d) = %q, want %q", tc.i, got, tc.want)
		}
	}
	if n := len(Value); n != 18 {
		t.Errorf("len(Value) = %d, want 18", n)
	}
}

func TestReadGet(t *testing.T) {
	in := "VALUE postscreen:10.0.0.1 0 18\r\n" + Value + "\r\nEND\r\n" +
		"END\r\n" +
		"VALUE k 5 3 77\r\nabc\r\nEND\r\n" +
		"ERROR\r\n"
	r := bufio.NewReader(strings.NewReader(in))
	buf := make([]byte, 0, 64)
	v, found, err := readGet(r, buf)
	if err != nil || !found || string(v) != Value {
		t.Fatalf("hit: %q %v %v", v, found, err)
	}
	if v, found, err = readGet(r, buf); err != nil || found {
		t.Fatalf("miss: %q %v %v", v, found, err)
	}
	if v, found, err = readGet(r, buf); err != nil || !found || string(v) != "abc" {
		t.Fatalf("with cas: %q %v %v", v, found, err)
	}
	if _, _, err = readGet(r, buf); err == nil {
		t.Fatal("ERROR reply accepted")
	}
}

func TestReadGetAllocs(t *testing.T) {
	reply := "VALUE postscreen:10.0.0.1 0 18\r\n" + Value + "\r\nEND\r\n"
	sr := strings.NewReader(reply)
	r := bufio.NewReader(sr)
	buf := make([]byte, 0, 64)
	allocs := testing.AllocsPerRun(100, func() {
		sr.Reset(reply)
		r.Reset(sr)
		if _, _, err := readGet(r, buf); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Errorf("readGet allocates %v times per call", allocs)
	}
}

func TestQuantile(t *testing.T) {
	s := make([]time.Duration, 100)
	for i := range s {
		s[i] = time.Duration(i + 1)
	}
	for q, want := range map[float64]time.Duration{0.5: 50, 0.99: 99, 1: 100, 0: 1} {
		if got := quantile(s, q); got != want {
			t.Errorf("quantile(%v) = %v, want %v", q, got, want)
		}
	}
}

func TestGCLine(t *testing.T) {
	m := gcLine.FindStringSubmatch("gc 2 @0.371s 0%: 0.27+0.24+0.003 ms clock, 0.54+0.083/0.22/0+0.007 ms cpu, 6->6->3 MB, 6 MB goal, 0 MB stacks, 0 MB globals, 2 P")
	if m == nil || m[3] != "0.27" || m[5] != "0.003" {
		t.Fatalf("gcLine match = %q", m)
	}
}
