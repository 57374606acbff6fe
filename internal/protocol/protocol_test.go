package protocol

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"testing/iotest"

	"github.com/repcache/repcache/internal/store/memory"
)

func TestTokenize(t *testing.T) {
	for _, tc := range []struct {
		line string
		want []string
		rest string
	}{
		{"", nil, ""},
		{"   ", nil, ""},
		{"get a", []string{"get", "a"}, ""},
		{"  get   a  b ", []string{"get", "a", "b"}, ""},
		{"get\ta b", []string{"get\ta", "b"}, ""}, // only ' ' separates
		{strings.Repeat("k ", 23), strings.Split(strings.Repeat("k ", 23)[:45], " "), ""},
		{strings.Repeat("k ", 25), strings.Split(strings.Repeat("k ", 23)[:45], " "), "k k "},
		{strings.Repeat("k ", 23) + " x", strings.Split(strings.Repeat("k ", 23)[:45], " "), " x"},
	} {
		var tok [maxTokens][]byte
		n, rest := tokenize([]byte(tc.line), tok[:])
		var got []string
		for _, b := range tok[:n] {
			got = append(got, string(b))
		}
		if strings.Join(got, "|") != strings.Join(tc.want, "|") || string(rest) != tc.rest {
			t.Errorf("tokenize(%q) = %q rest %q; want %q rest %q", tc.line, got, rest, tc.want, tc.rest)
		}
	}
}

func TestDeadline(t *testing.T) {
	const now = 1_800_000_000
	for _, tc := range []struct {
		exptime int32
		want    int64
	}{
		{0, 0},
		{-1, 1},
		{1, now + 1},
		{2592000, now + 2592000},
		{2592001, 2592001}, // absolute, long past
		{1900000000, 1900000000},
	} {
		if got := ExptimeDeadline(tc.exptime, now); got != tc.want {
			t.Errorf("ExptimeDeadline(%d) = %d, want %d", tc.exptime, got, tc.want)
		}
	}
}

// session runs one request stream through a session and returns its replies.
func session(t testing.TB, o Options, req string) string {
	t.Helper()
	st, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	if o.Now == nil {
		o.Now = func() int64 { return 1_800_000_000 }
	}
	var out bytes.Buffer
	NewHandler(st, o).NewSession(context.Background(), strings.NewReader(req), &out).Serve()
	return out.String()
}

func TestConfiguredLimits(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		req  string
		want string
	}{
		{"key limit", Options{MaxKeyLength: 4}, "set abcd 0 0 1\r\nx\r\nset abcde 0 0 1\r\nx\r\n", "STORED\r\nCLIENT_ERROR bad command line format\r\nERROR\r\n"},
		{"item limit", Options{MaxItemSize: 100}, "set k 0 0 40\r\n" + strings.Repeat("v", 40) + "\r\nset k 0 0 41\r\n" + strings.Repeat("v", 41) + "\r\nget k\r\n",
			"STORED\r\nSERVER_ERROR object too large for cache\r\nEND\r\n"},
		{"line limit", Options{MaxLineLength: 600}, "set " + strings.Repeat("k", 700), ""},
		{"clock", Options{}, "set k 0 100 1\r\nx\r\nmg k t\r\nset k 0 1900000000 1\r\nx\r\nmg k t\r\n", "STORED\r\nHD t100\r\nSTORED\r\nHD t100000000\r\n"},
		{"version", Options{Version: "1.6.18-repcache-test"}, "version\r\n", "VERSION 1.6.18-repcache-test\r\n"},
	} {
		if got := session(t, tc.o, tc.req); got != tc.want {
			t.Errorf("%s: got %q, want %q", tc.name, got, tc.want)
		}
	}
}

func TestStats(t *testing.T) {
	got := session(t, Options{}, "set k 0 0 1\r\nx\r\nget k\r\nget nope\r\nstats\r\n")
	for _, want := range []string{"STAT cmd_get 2\r\n", "STAT get_hits 1\r\n", "STAT get_misses 1\r\n", "STAT curr_items 1\r\n", "STAT limit_maxbytes 8388608\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stats lacks %q:\n%s", want, got)
		}
	}
	if !strings.HasSuffix(got, "END\r\n") {
		t.Errorf("stats not terminated by END: %q", got)
	}
}

// FuzzSession feeds arbitrary client bytes to a session: whatever arrives,
// the session must neither panic nor hang, must answer in whole lines, and
// the store must stay usable.
func FuzzSession(f *testing.F) {
	for _, seed := range []string{
		"set a 0 0 1\r\nx\r\nget a\r\n",
		"get\r\nget \r\n\r\nGET a\r\n",
		"set " + strings.Repeat("k", 251) + " 0 0 1\r\nx\r\n",
		"set a 0 0 -1\r\nset a 0 0 4294967295\r\nset a -1 0 1\r\n",
		"set a 0 0 1\r\nxyz\r\n",
		"set a 0 0 2000000\r\n",
		"delete a 10\r\nflush_all junk\r\nincr a x\r\n",
		"get a HTTP/1.1\r\n",
		"\x80\x01\x00",
		"mg a t v f s c k O123 q\r\nms a 2 T100 F5 c k\r\nhi\r\nmd a q\r\nma a N0 J5 v\r\nmn\r\n",
		"gat 100 a b\r\ntouch a 10 noreply\r\ncas a 0 0 1 99\r\ny\r\n",
		"get " + strings.Repeat("k\x01 ", 40) + "\r\n",
	} {
		f.Add([]byte(seed))
	}
	st, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		f.Fatal(err)
	}
	h := NewHandler(st, Options{MaxLineLength: 2048})
	f.Fuzz(func(t *testing.T, req []byte) {
		var out bytes.Buffer
		h.NewSession(context.Background(), bytes.NewReader(req), &out).Serve()
		if out.Len() > 0 && !bytes.HasSuffix(out.Bytes(), crlf) {
			t.Fatalf("reply does not end a line: %q", out.Bytes())
		}
		var check bytes.Buffer
		h.NewSession(context.Background(), strings.NewReader("set fuzzcheck 0 0 2\r\nok\r\nget fuzzcheck\r\n"), &check).Serve()
		if check.String() != "STORED\r\nVALUE fuzzcheck 0 2\r\nok\r\nEND\r\n" {
			t.Fatalf("store unusable after %q: %q", req, check.String())
		}
	})
}

// FuzzSessionSplit feeds a request stream whole and one byte per read (a
// request split at every byte) to two fresh sessions with the same clock:
// the replies must be the same bytes. The exceptions are memcached's own:
// an over-long key culls only replies not yet sent, and a line over the
// line limit is refused only if its newline has not arrived yet, so both
// depend on how the bytes arrive.
func FuzzSessionSplit(f *testing.F) {
	for _, seed := range []string{
		"set a 0 0 1\r\nx\r\nget a a b\r\ngets a\r\n",
		"ms a 2 T100 F5 c k\r\nhi\r\nmg a t v f s c k O1 h l\r\nmd a I\r\nmg a v c\r\nma n N0 J5 v\r\nmn\r\n",
		"set a 0 0 2147483647\r\nxx",
		"get a\r\nget b",
		"set a 0 0 3 noreply\r\nabc\r\nappend a 0 0 1\r\nd\r\nincr a 1\r\nget a\r\nquit\r\n",
		"\x80\x01",
	} {
		f.Add([]byte(seed))
	}
	run := func(t *testing.T, r io.Reader) string {
		st, err := memory.New(memory.Options{MaxBytes: 1 << 20, MaxItemSize: 64 << 10, SweepInterval: -1})
		if err != nil {
			t.Fatal(err)
		}
		defer st.Close()
		h := NewHandler(st, Options{MaxItemSize: 64 << 10, Now: func() int64 { return 1_800_000_000 }})
		defer h.Close()
		var out bytes.Buffer
		h.NewSession(context.Background(), r, &out).Serve()
		return out.String()
	}
	f.Fuzz(func(t *testing.T, req []byte) {
		whole := run(t, bytes.NewReader(req))
		split := run(t, iotest.OneByteReader(bytes.NewReader(req)))
		if len(split) > 0 && !strings.HasSuffix(split, "\r\n") {
			t.Fatalf("split reply does not end a line: %q", split)
		}
		for _, l := range bytes.Split(req, []byte("\n")) {
			if len(l) > 1024 {
				return
			}
		}
		if strings.Contains(whole, "CLIENT_ERROR bad command line format") {
			return
		}
		if whole != split {
			t.Fatalf("request %q\nwhole: %q\nsplit: %q", req, whole, split)
		}
	})
}

func TestStatsDetail(t *testing.T) {
	got := session(t, Options{}, "stats detail on\r\nset a:1 0 0 1\r\nx\r\nset b:1 0 0 1\r\nx\r\nget a:1 a:2 plain\r\ndelete b:2\r\nstats detail dump\r\nstats detail off\r\nget a:1\r\nstats reset\r\nstats detail dump\r\nstats detail\r\n")
	want := "OK\r\nSTORED\r\nSTORED\r\nVALUE a:1 0 1\r\nx\r\nEND\r\nNOT_FOUND\r\n" +
		// memcached's order: by murmur3 bucket of the prefix
		"PREFIX b get 0 hit 0 set 1 del 1\r\nPREFIX a get 2 hit 1 set 1 del 0\r\nEND\r\n" +
		"OK\r\nVALUE a:1 0 1\r\nx\r\nEND\r\nRESET\r\nEND\r\nCLIENT_ERROR usage: stats detail on|off|dump\r\n"
	if got != want {
		t.Errorf("got  %q\nwant %q", got, want)
	}
}

// stats reset starts the counters again from zero, the connection totals
// included (as offsets: the server's own counts feed Prometheus), and
// leaves what is current.
func TestStatsReset(t *testing.T) {
	h := newTestHandler(t)
	h.SetConnectionStats(fakeServer{curr: 2, total: 40, rejected: 3})
	var out bytes.Buffer
	h.NewSession(context.Background(), strings.NewReader("set k 0 0 1\r\nx\r\nget k\r\nstats reset\r\nget nope\r\nstats\r\n"), &out).Serve()
	got := out.String()[strings.Index(out.String(), "RESET\r\n"):]
	for _, want := range []string{"STAT cmd_get 1\r\n", "STAT get_hits 0\r\n", "STAT get_misses 1\r\n", "STAT cmd_set 0\r\n",
		"STAT total_items 0\r\n", "STAT curr_items 1\r\n", "STAT curr_connections 2\r\n", "STAT total_connections 0\r\n", "STAT rejected_connections 0\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("stats after reset lacks %q:\n%s", want, got)
		}
	}
}
