package guard

import (
	"context"
	"errors"
	"net"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memory"
)

const now = 1_700_000_000

type inner = store.Store

// hung stands in for a peer that accepts and never answers (the embedded
// store cannot hang by itself): it blocks until the call's context ends,
// as the backend clients' socket deadlines make a real one do. The faults
// against real memcached and Redis processes are tested with the binary.
type hung struct {
	inner
	gets atomic.Int64
}

func (h *hung) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	h.gets.Add(1)
	<-ctx.Done()
	return store.Item{}, ctx.Err()
}

// refused fails at once, as a dial to a closed port does.
type refused struct{ inner }

func (refused) Get(context.Context, []byte, []byte, int64) (store.Item, error) {
	return store.Item{}, &net.OpError{Op: "dial", Net: "tcp", Addr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 1), Port: 21411}, Err: errors.New("connection refused")}
}

func mem(t *testing.T) store.Store {
	m, err := memory.New(memory.Options{MaxBytes: 8 << 20, SweepInterval: -1})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { m.Close() })
	return m
}

func TestCutsOffAHungBackend(t *testing.T) {
	h := &hung{inner: mem(t)}
	g := New("hung", h, Options{Timeout: 50 * time.Millisecond, FailuresToOpen: 2, OpenFor: time.Hour})
	for range 2 {
		_, err := g.Get(context.Background(), []byte("k"), nil, now)
		var ge *Error
		if !errors.As(err, &ge) || ge.Class != ClassTimeout {
			t.Fatalf("hung backend: %v, want a timeout", err)
		}
	}
	if g.Ready() == nil {
		t.Fatal("breaker still closed after 2 timeouts")
	}
	if _, err := g.Get(context.Background(), []byte("k"), nil, now); !errors.Is(err, ErrUnavailable) {
		t.Fatalf("open breaker: %v", err)
	}
	if h.gets.Load() != 2 {
		t.Fatalf("open breaker still called the backend (%d calls)", h.gets.Load())
	}
}

func TestErrorsNameTheClassNotTheAddress(t *testing.T) {
	g := New("memcached", refused{mem(t)}, Options{})
	_, err := g.Get(context.Background(), []byte("k"), nil, now)
	if err == nil || err.Error() != "memcached unavailable" {
		t.Fatalf("client-facing error %q, want %q", err, "memcached unavailable")
	}
	var ge *Error
	if !errors.As(err, &ge) || !strings.Contains(ge.Detail(), "127.0.0.1:21411") {
		t.Fatalf("the log detail lost the backend's message: %v", err)
	}
	// Answers about data are not failures.
	if _, err := New("m", mem(t), Options{}).Get(context.Background(), []byte("absent"), nil, now); !errors.Is(err, store.ErrNotFound) || Failed(err) {
		t.Fatalf("a miss: %v", err)
	}
}

// Do bounds a call by the per-call timeout, or by the caller's deadline
// when it has one (the background probe's, for work that takes longer).
func TestDoTakesTheCallersDeadline(t *testing.T) {
	g := New("redis", mem(t), Options{Timeout: time.Millisecond})
	var got time.Time
	record := func(ctx context.Context) error {
		got, _ = ctx.Deadline()
		return nil
	}
	start := time.Now()
	if err := g.Do(context.Background(), "clear_missed", record); err != nil {
		t.Fatal(err)
	}
	if got.IsZero() || got.After(start.Add(time.Minute)) {
		t.Fatalf("without a caller's deadline the call's is %v, want the 1 ms timeout's", got.Sub(start))
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Hour)
	defer cancel()
	if err := g.Do(ctx, "clear_missed", record); err != nil {
		t.Fatal(err)
	}
	if got.Before(start.Add(time.Minute)) {
		t.Fatalf("with an hour's deadline the call's is %v, want the caller's", got.Sub(start))
	}
}
