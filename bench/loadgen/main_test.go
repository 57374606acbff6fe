package main

import (
	"bufio"
	"net"
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

func TestAppendSet(t *testing.T) {
	got := string(appendSet(nil, []byte("plain:"), 257, 0))
	want := "set plain:10.0.1.1 0 0 18\r\n" + Value + "\r\n"
	if got != want {
		t.Errorf("appendSet = %q, want %q", got, want)
	}
	if got := string(appendSet(nil, []byte("p:"), 0, 3600)); got != "set p:10.0.0.0 0 3600 18\r\n"+Value+"\r\n" {
		t.Errorf("appendSet with exptime = %q", got)
	}
}

func TestReadStored(t *testing.T) {
	r := bufio.NewReader(strings.NewReader("STORED\r\nNOT_STORED\r\nSERVER_ERROR backup write failed\r\n"))
	if err := readStored(r); err != nil {
		t.Fatalf("STORED: %v", err)
	}
	for _, want := range []string{"NOT_STORED", "SERVER_ERROR backup write failed"} {
		if err := readStored(r); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("reply %s: err = %v", want, err)
		}
	}
	if err := readStored(r); err == nil {
		t.Error("EOF accepted")
	}
}

// TestSetLatencyConn runs one connection's share of sets against a fake
// server that checks every request and answers STORED.
func TestSetLatencyConn(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	got := make(chan []string, 1)
	go func() {
		var keys []string
		defer func() { got <- keys }()
		conn, err := l.Accept()
		if err != nil {
			return
		}
		defer conn.Close()
		r := bufio.NewReader(conn)
		for {
			line, err := r.ReadString('\n')
			if err != nil {
				return
			}
			f := strings.Fields(line)
			data, err := r.ReadString('\n')
			if err != nil || len(f) != 5 || f[0] != "set" || f[4] != "18" || data != Value+"\r\n" {
				conn.Write([]byte("ERROR\r\n"))
				return
			}
			keys = append(keys, f[1])
			conn.Write([]byte("STORED\r\n"))
		}
	}()
	var done atomicCounter
	rs := recordSet{n: 7, start: 10, stride: 1}
	lat, err := setLatencyConn(l.Addr().String(), []byte("plain:"), 0, &rs, 1, 3, &done)
	if err != nil {
		t.Fatal(err)
	}
	if len(lat) != 2 || done.get() != 2 {
		t.Errorf("%d latencies, %d done; want 2 (records 1 and 4 of 7, every 3rd)", len(lat), done.get())
	}
	keys := <-got
	if strings.Join(keys, " ") != "plain:10.0.0.11 plain:10.0.0.14" {
		t.Errorf("server saw keys %q", keys)
	}
}
