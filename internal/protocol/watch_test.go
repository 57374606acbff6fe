package protocol

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store/memory"
)

// idConn is a client connection with memcached's connection id, as the
// server's connections have.
type idConn struct {
	bytes.Buffer
	id int
}

func (c *idConn) ConnID() int { return c.id }

func newTestHandler(t *testing.T) *Handler {
	t.Helper()
	st, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return NewHandler(st, Options{})
}

// startWatcher serves a session on one end of a pipe, sends req and
// returns a reader of the stream and the session's end.
func startWatcher(t *testing.T, h *Handler, req string) (*bufio.Reader, net.Conn, <-chan error) {
	t.Helper()
	client, server := net.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- h.NewSession(context.Background(), server, server).Serve()
		server.Close()
		close(done) // the cleanup's receive too returns
	}()
	t.Cleanup(func() { client.Close(); <-done })
	go io.WriteString(client, req)
	return bufio.NewReader(client), client, done
}

func readLine(t *testing.T, r *bufio.Reader) string {
	t.Helper()
	l, err := r.ReadString('\n')
	if err != nil {
		t.Fatalf("watcher stream: %v after %q", err, l)
	}
	return l
}

func TestWatchStreams(t *testing.T) {
	h := newTestHandler(t)
	w, _, _ := startWatcher(t, h, "watch fetchers mutations\r\n")
	if l := readLine(t, w); l != "OK\r\n" {
		t.Fatalf("watch: %q, want OK", l)
	}
	c := &idConn{id: 7}
	h.NewSession(context.Background(), strings.NewReader("set foo 0 0 5\r\nhello\r\nget foo a/b\r\nadd foo 0 100 1\r\nx\r\nset big 0 0 2000000\r\n"), c).Serve()
	for _, want := range []string{
		`^ts=\d+\.\d+ gid=1 type=item_get key=foo status=not_found clsid=0 cfd=7 size=0\n$`,
		`^ts=\d+\.\d+ gid=2 type=item_store key=foo status=stored cmd=set ttl=0 clsid=1 cfd=7 size=5\n$`,
		`^ts=\d+\.\d+ gid=3 type=item_get key=foo status=found clsid=1 cfd=7 size=5\n$`,
		`^ts=\d+\.\d+ gid=4 type=item_get key=a%2Fb status=not_found clsid=0 cfd=7 size=0\n$`,
		`^ts=\d+\.\d+ gid=5 type=item_get key=foo status=found clsid=1 cfd=7 size=5\n$`, // the item add found, as memcached reports it
		`^ts=\d+\.\d+ gid=6 type=item_store key=foo status=not_stored cmd=add ttl=100 clsid=1 cfd=7 size=1\n$`,
		`^ts=\d+\.\d+ gid=7 type=item_store key=big status=too_large cmd=set ttl=0 clsid=0 cfd=7 size=0\n$`,
		`^ts=\d+\.\d+ gid=8 type=item_get key=big status=not_found clsid=0 cfd=7 size=0\n$`, // the old value's drop
	} {
		if l := readLine(t, w); !regexp.MustCompile(want).MatchString(l) {
			t.Errorf("stream line %q, want %s", l, want)
		}
	}
}

func TestWatchOnlyWhatWasAsked(t *testing.T) {
	h := newTestHandler(t)
	w, _, _ := startWatcher(t, h, "watch mutations\r\n")
	readLine(t, w)
	h.NewSession(context.Background(), strings.NewReader("get x\r\nset x 0 0 1\r\n1\r\n"), io.Discard).Serve()
	if l := readLine(t, w); !strings.Contains(l, "type=item_store key=x status=stored") {
		t.Errorf("mutations watcher read %q first, want the set alone", l)
	}
	// An append reports the item it made, read first even without fetchers.
	h.NewSession(context.Background(), strings.NewReader("append x 0 0 2\r\nyz\r\n"), io.Discard).Serve()
	if l := readLine(t, w); !strings.Contains(l, "type=item_store key=x status=stored cmd=append") || !strings.HasSuffix(l, " size=3\n") {
		t.Errorf("mutations watcher read %q for the append, want its item_store with size=3", l)
	}
}

// A watcher that reads too slowly loses lines, never memory: past the
// buffer they are counted, and the count goes out before the next line
// once there is room again.
func TestWatchSkipsWhatASlowWatcherCannotTake(t *testing.T) {
	h := newTestHandler(t)
	w, _, _ := startWatcher(t, h, "watch\r\n")
	readLine(t, w)
	key := strings.Repeat("k", 200)
	sent := 3 * watchBufSize / 200
	h.NewSession(context.Background(), strings.NewReader(strings.Repeat("get "+key+"\r\n", sent)), io.Discard).Serve()
	lines := make(chan string, sent+2)
	go func() {
		for {
			l, err := w.ReadString('\n')
			if err != nil {
				close(lines)
				return
			}
			lines <- l
		}
	}()
	// Wait until the stream has written every buffered line: the client
	// caught up.
	for pending := true; pending; {
		h.logs.mu.Lock()
		pending = len(h.logs.ws[0].buf)+h.logs.ws[0].inflight > 0
		h.logs.mu.Unlock()
		time.Sleep(time.Millisecond)
	}
	h.NewSession(context.Background(), strings.NewReader("get last\r\n"), io.Discard).Serve()
	var got []string
	for l := range lines {
		got = append(got, l)
		if strings.Contains(l, "key=last") {
			break
		}
	}
	n := len(got)
	if n < 3 || n-2 >= sent || !strings.HasPrefix(got[n-2], "skipped=") {
		t.Fatalf("read %d lines of %d sent; the last two %q: want fewer, then skipped=N and the next event", n, sent, got[max(n-2, 0):])
	}
	if want := "skipped=" + strconv.Itoa(sent-(n-2)) + "\n"; got[n-2] != want {
		t.Errorf("%q after %d lines, want %q", got[n-2], n-2, want)
	}
}

func TestWatchRefusals(t *testing.T) {
	for _, tc := range []struct{ req, want string }{
		{"watch bogus\r\nmn\r\n", "ERROR\r\nMN\r\n"},
		{"watch fetchers noreply\r\nmn\r\n", "MN\r\n"},
		{"version\r\nwatch\r\n", "VERSION 1.6.18\r\nERROR cannot pipeline other commands before watch\r\n"},
		{"mn\r\nwatch\r\n", "MN\r\nOK\r\n"}, // mn sent its reply at once
	} {
		if got := session(t, Options{}, tc.req); got != tc.want {
			t.Errorf("%q: %q, want %q", tc.req, got, tc.want)
		}
	}
	h := newTestHandler(t)
	for range maxWatchers {
		w, _, _ := startWatcher(t, h, "watch\r\n")
		readLine(t, w)
	}
	var out bytes.Buffer
	h.NewSession(context.Background(), strings.NewReader("watch\r\n"), &out).Serve()
	if out.String() != "WATCHER_TOO_MANY log watcher limit reached\r\n" {
		t.Errorf("watcher %d: %q", maxWatchers+1, out.String())
	}
}

// A watcher's session ends when its client goes away, and takes the
// watcher off the stream.
func TestWatchEndsWithTheClient(t *testing.T) {
	h := newTestHandler(t)
	w, client, done := startWatcher(t, h, "watch\r\n")
	readLine(t, w)
	client.Close()
	<-done
	if h.logs.wants(watchFetchers) {
		t.Error("the closed watcher still receives events")
	}
}

func TestConnEvents(t *testing.T) {
	h := newTestHandler(t)
	w, _, _ := startWatcher(t, h, "watch connevents\r\n")
	readLine(t, w)
	peer := &net.TCPAddr{IP: net.IPv4(10, 0, 0, 1), Port: 4000}
	h.ConnOpened(9, peer)
	h.ConnClosed(9, peer, CloseIdleTimeout)
	h.ConnOpened(10, &net.UnixAddr{Name: "", Net: "unix"})
	for _, want := range []string{
		` type=conn_new rip=10.0.0.1 rport=4000 transport=tcp cfd=9` + "\n",
		` type=conn_close rip=10.0.0.1 rport=4000 transport=tcp reason=idle_timeout cfd=9` + "\n",
		` type=conn_new rip=unix rport=0 transport=local cfd=10` + "\n",
	} {
		if l := readLine(t, w); !strings.HasSuffix(l, want) {
			t.Errorf("stream line %q, want it to end %q", l, want)
		}
	}
}

// fakeServer is the server's side of ConnectionStats: counts and a list.
type fakeServer struct {
	curr, total, rejected int64
	conns                 []ConnInfo
}

func (f fakeServer) Connections() (int64, int64, int64) { return f.curr, f.total, f.rejected }
func (f fakeServer) EachConnection(each func(ConnInfo)) {
	for _, c := range f.conns {
		each(c)
	}
}

func TestStatsConns(t *testing.T) {
	h := newTestHandler(t)
	now := time.Now()
	ln := &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 11211}
	h.SetConnectionStats(fakeServer{conns: []ConnInfo{
		{ID: 12, Addr: &net.TCPAddr{IP: net.ParseIP("::1"), Port: 5}, Listen: &net.TCPAddr{IP: net.ParseIP("::1"), Port: 11211}, State: ConnWatching, LastCommand: now.Add(-3 * time.Second)},
		{ID: 3, Addr: ln, State: ConnListening, LastCommand: now},
		{ID: 9, Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 40000}, Listen: ln, State: ConnBusy, LastCommand: now},
	}})
	var out bytes.Buffer
	h.NewSession(context.Background(), strings.NewReader("stats conns\r\n"), &out).Serve()
	want := "STAT 3:addr tcp:127.0.0.1:11211\r\nSTAT 3:state conn_listening\r\nSTAT 3:secs_since_last_cmd 0\r\n" +
		"STAT 9:addr tcp:127.0.0.1:40000\r\nSTAT 9:listen_addr tcp:127.0.0.1:11211\r\nSTAT 9:state conn_parse_cmd\r\nSTAT 9:secs_since_last_cmd 0\r\n" +
		"STAT 12:addr tcp6:[::1]:5\r\nSTAT 12:listen_addr tcp6:[::1]:11211\r\nSTAT 12:state conn_watch\r\nSTAT 12:secs_since_last_cmd 3\r\nEND\r\n"
	if out.String() != want {
		t.Errorf("stats conns:\n%s\nwant:\n%s", out.String(), want)
	}
}
