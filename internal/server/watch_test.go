package server

import (
	"bufio"
	"context"
	"io"
	"net"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/protocol"
)

// ownID is the id "stats conns" gives the connection that asks: the one
// whose listen_addr-side peer address is its local address.
func ownID(t *testing.T, c net.Conn, r *bufio.Reader) (id string, states map[string]string) {
	t.Helper()
	io.WriteString(c, "stats conns\r\n")
	states = map[string]string{}
	addrs := map[string]string{}
	line := regexp.MustCompile(`^STAT (\d+):(addr|listen_addr|state|secs_since_last_cmd) (\S+)\r\n$`)
	for {
		l, err := r.ReadString('\n')
		if err != nil {
			t.Fatal(err)
		}
		if l == "END\r\n" {
			break
		}
		m := line.FindStringSubmatch(l)
		if m == nil {
			t.Fatalf("stats conns line %q", l)
		}
		switch m[2] {
		case "addr":
			addrs[m[1]] = m[3]
		case "state":
			states[m[1]] = m[3]
		}
	}
	for i, a := range addrs {
		if a == "tcp:"+c.LocalAddr().String() {
			return i, states
		}
	}
	t.Fatalf("stats conns lists no connection from %s: %v", c.LocalAddr(), addrs)
	return "", nil
}

// The ids of "stats conns" are those of the watch stream's cfd, and of
// connevents; a watcher outlives the idle timeout (it sends nothing by
// design) and ends with the server's shutdown.
func TestWatchThroughTheServer(t *testing.T) {
	addr, srv := startServerWith(t, Options{MaxConnections: 10, IdleTimeout: 300 * time.Millisecond}, protocol.Options{})
	w, wr := dial(t, addr)
	if l := roundTrip(t, w, wr, "watch fetchers connevents\r\n"); l != "OK\r\n" {
		t.Fatalf("watch: %q", l)
	}
	time.Sleep(time.Second) // past the idle timeout: a reader would be cut, the watcher is not
	c, r := dial(t, addr)
	id, _ := ownID(t, c, r)
	if l, _ := wr.ReadString('\n'); !strings.Contains(l, " type=conn_new rip=127.0.0.1 ") || !strings.HasSuffix(l, " transport=tcp cfd="+id+"\n") {
		t.Errorf("conn_new line %q, want cfd=%s", l, id)
	}
	roundTrip(t, c, r, "get k\r\n")
	if l, _ := wr.ReadString('\n'); !strings.Contains(l, " type=item_get key=k status=not_found clsid=0 cfd="+id+" ") {
		t.Errorf("item_get line %q, want cfd=%s", l, id)
	}
	_, states := ownID(t, c, r)
	if !watching(states) {
		t.Errorf("no connection in state conn_watch: %v", states)
	}
	if states[id] != "conn_parse_cmd" {
		t.Errorf("the asking connection is %q, want conn_parse_cmd", states[id])
	}
	c.Close()
	if l, _ := wr.ReadString('\n'); !strings.HasSuffix(l, " reason=normal cfd="+id+"\n") {
		t.Errorf("conn_close line %q, want reason=normal cfd=%s", l, id)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		t.Errorf("shutdown with a watcher: %v", err)
	}
	if _, err := io.ReadAll(wr); err != nil {
		t.Errorf("watcher after shutdown: %v, want EOF", err)
	}
}

func watching(states map[string]string) bool {
	for _, s := range states {
		if s == "conn_watch" {
			return true
		}
	}
	return false
}
