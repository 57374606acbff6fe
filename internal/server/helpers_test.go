package server

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/protocol"
	"github.com/repcache/repcache/internal/store/memory"
)

// startServer runs an in-process repcache (embedded store, default limits)
// on a loopback port and returns its address.
func startServer(t testing.TB, o Options) string {
	t.Helper()
	addr, _ := startServerWith(t, o, protocol.Options{})
	return addr
}

func startServerWith(t testing.TB, o Options, po protocol.Options) (string, *Server) {
	t.Helper()
	st, err := memory.New(memory.Options{MaxBytes: 64 << 20})
	if err != nil {
		t.Fatal(err)
	}
	h := protocol.NewHandler(st, po)
	srv := New(o)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go srv.Serve(ln, h)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		h.Close()
		st.Close()
	})
	return ln.Addr().String(), srv
}
