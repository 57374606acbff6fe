// Package guard puts a deadline and a circuit breaker around a remote
// backend (memcached, Redis), and turns its failures into errors that name
// the failure class, not the backend's addresses.
package guard

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"

	"github.com/repcache/repcache/internal/store"
)

// Failure classes, as clients see them in "SERVER_ERROR <backend> <class>".
const (
	ClassTimeout     = "timeout"     // no answer within the deadline
	ClassUnavailable = "unavailable" // refused, reset, or the breaker is open
)

// ErrUnavailable is wrapped by the errors returned while a backend's circuit
// breaker is open.
var ErrUnavailable = errors.New("backend unavailable")

// Error is a backend failure. Error() is what a client may read (the
// backend's name and the failure class); Detail has the backend client's
// own message (addresses included) for the log.
type Error struct {
	Backend string
	Class   string
	Err     error
}

func (e *Error) Error() string { return e.Backend + " " + e.Class }

// Unwrap returns the backend client's error.
func (e *Error) Unwrap() error { return e.Err }

// Detail is the full message, for logs only.
func (e *Error) Detail() string { return e.Backend + " " + e.Class + ": " + e.Err.Error() }

// Options configure a Guard.
type Options struct {
	// Timeout bounds every call, far below Postfix's 2 s client timeout
	// (default 100ms).
	Timeout time.Duration
	// FailuresToOpen consecutive failures open the breaker (default 5).
	FailuresToOpen uint32
	// OpenFor is how long an open breaker refuses calls before it lets one
	// through to probe the backend (default 2s).
	OpenFor time.Duration
	// Metrics, shared by every guard of a process (NewMetrics); optional.
	Metrics *Metrics
	// Logger gets one line per breaker state change (optional).
	Logger *slog.Logger
}

// Guard wraps a remote backend so that an outage costs a client at most one
// Timeout, and, once the breaker opens, nothing: calls fail at once until a
// probe succeeds. Each call gets a context deadline; the backend clients
// enforce it on their sockets too (gomemcache's Timeout, go-redis's read and
// write timeouts), so a hung peer cannot hold a caller past it. Running each
// call in its own goroutine would also cover a backend that ignored both,
// but cost every request a goroutine and a channel; the backends here do not
// need it.
type Guard struct {
	metrics *Metrics
	name    string
	next    store.Store
	timeout time.Duration
	cb      atomic.Pointer[gobreaker.CircuitBreaker[any]]
	// settings build a fresh (closed) breaker: at start, and when a
	// background probe finds the backend answering while the breaker is
	// open (gobreaker has no reset).
	settings gobreaker.Settings
	log      *slog.Logger
}

var _ store.Store = (*Guard)(nil)

// New guards next, named name in errors, logs and metrics labels.
func New(name string, next store.Store, o Options) *Guard {
	if o.Timeout <= 0 {
		o.Timeout = 100 * time.Millisecond
	}
	if o.FailuresToOpen == 0 {
		o.FailuresToOpen = 5
	}
	if o.OpenFor <= 0 {
		o.OpenFor = 2 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	st := gobreaker.Settings{
		Name:        name,
		MaxRequests: 1,
		Timeout:     o.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= o.FailuresToOpen },
		// Answers about data (miss, exists, refused) are the backend working.
		IsSuccessful: func(err error) bool { return err == nil || IsAnswer(err) },
	}
	g := &Guard{name: name, next: next, timeout: o.Timeout, metrics: o.Metrics, log: o.Logger}
	st.OnStateChange = func(name string, from, to gobreaker.State) {
		g.setState(to)
		o.Logger.Warn("backend circuit breaker changed state", "backend", name, "from", from.String(), "to", to.String())
	}
	g.settings = st
	g.cb.Store(gobreaker.NewCircuitBreaker[any](st))
	if g.metrics != nil {
		g.metrics.errors.WithLabelValues(name)
		g.setState(gobreaker.StateClosed)
	}
	return g
}

// IsAnswer reports whether err is the backend's answer about the data, as
// opposed to a failure to reach it.
func IsAnswer(err error) bool {
	var ce *store.ClientError
	return errors.Is(err, store.ErrNotFound) || errors.Is(err, store.ErrNotStored) || errors.Is(err, store.ErrExists) ||
		errors.Is(err, store.ErrTooLarge) || errors.Is(err, store.ErrNonNumeric) || errors.As(err, &ce)
}

// Failed reports whether err is a backend failure rather than an answer.
func Failed(err error) bool { return err != nil && !IsAnswer(err) }

// Name is the backend's name.
func (g *Guard) Name() string { return g.name }

// Ready reports whether the backend is believed reachable (breaker closed
// or probing).
func (g *Guard) Ready() error {
	if g.cb.Load().State() == gobreaker.StateOpen {
		return &Error{Backend: g.name, Class: ClassUnavailable, Err: fmt.Errorf("%w (circuit open after repeated failures)", ErrUnavailable)}
	}
	return nil
}

// State is the breaker's state.
func (g *Guard) State() gobreaker.State { return g.cb.Load().State() }

type result struct {
	it  store.Item
	n   uint64
	st  store.MetaState
	c   store.Counter
	err error
}

// call runs f (operation op) under the breaker with the guard's deadline.
func (g *Guard) call(ctx context.Context, op string, f func(ctx context.Context) result) result {
	return g.callWithin(ctx, op, g.timeout, f)
}

func (g *Guard) callWithin(ctx context.Context, op string, timeout time.Duration, f func(ctx context.Context) result) (r result) {
	start := time.Now()
	defer func() { g.observe(op, start, r.err) }()
	v, err := g.cb.Load().Execute(func() (any, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		r := f(ctx)
		if Failed(r.err) {
			r.err = g.classify(ctx, timeout, r.err)
		}
		return r, r.err
	})
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		return result{err: &Error{Backend: g.name, Class: ClassUnavailable, Err: ErrUnavailable}}
	}
	if r, ok := v.(result); ok {
		return r
	}
	return result{err: err}
}

// classify names a failure's class: a call that ran out of time (its
// deadline passed, or the socket's timeout fired) is a timeout, anything
// else (refused, reset, garbage) unavailable.
func (g *Guard) classify(ctx context.Context, timeout time.Duration, err error) error {
	var ne interface{ Timeout() bool }
	switch {
	case ctx.Err() != nil || errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout():
		return &Error{Backend: g.name, Class: ClassTimeout, Err: fmt.Errorf("no answer within %v: %w", timeout, err)}
	default:
		return &Error{Backend: g.name, Class: ClassUnavailable, Err: err}
	}
}

// Do runs f, a call to the backend outside the store interface, under the
// breaker, with ctx's deadline if it has one (a background caller's, for
// work that may take longer than one request), else the per-call timeout.
func (g *Guard) Do(ctx context.Context, op string, f func(ctx context.Context) error) error {
	return g.callWithin(ctx, op, g.timeoutFor(ctx), func(ctx context.Context) result { return result{err: f(ctx)} }).err
}

// timeoutFor is the time left before ctx's deadline, or the per-call
// timeout when ctx has none.
func (g *Guard) timeoutFor(ctx context.Context) time.Duration {
	if d, ok := ctx.Deadline(); ok {
		return time.Until(d)
	}
	return g.timeout
}

func (g *Guard) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	r := g.call(ctx, "get", func(ctx context.Context) result {
		it, err := g.next.Get(ctx, key, buf, now)
		return result{it: it, err: err}
	})
	return r.it, r.err
}

func (g *Guard) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	r := g.call(ctx, "touch", func(ctx context.Context) result {
		it, err := g.next.Touch(ctx, key, deadline, buf, now)
		return result{it: it, err: err}
	})
	return r.it, r.err
}

func (g *Guard) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	r := g.call(ctx, "get", func(ctx context.Context) result {
		it, st, err := g.next.MetaGet(ctx, key, buf, o, now)
		return result{it: it, st: st, err: err}
	})
	return r.it, r.st, r.err
}

func (g *Guard) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	r := g.call(ctx, "store", func(ctx context.Context) result {
		n, err := g.next.Store(ctx, mode, it, now)
		return result{n: n, err: err}
	})
	return r.n, r.err
}

func (g *Guard) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	return g.call(ctx, "delete", func(ctx context.Context) result { return result{err: g.next.Delete(ctx, key, o, now)} }).err
}

func (g *Guard) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	r := g.call(ctx, "incr", func(ctx context.Context) result {
		c, err := g.next.Incr(ctx, key, o, now)
		return result{c: c, err: err}
	})
	return r.c, r.err
}

func (g *Guard) Flush(ctx context.Context) error {
	return g.call(ctx, "flush", func(ctx context.Context) result { return result{err: g.next.Flush(ctx)} }).err
}

func (g *Guard) Close() error { return g.next.Close() }

// Batcher is implemented by backends that can apply many writes in one
// round trip (Redis pipelines).
type Batcher interface {
	ApplyBatch(ctx context.Context, ops []store.Op, now int64) []error
}

// ApplyBatch passes a batch to a backend that batches (one round trip),
// under the breaker; the batch gets the caller's deadline rather than the
// per-call one. Other backends get the writes one by one.
func (g *Guard) ApplyBatch(ctx context.Context, ops []store.Op, now int64) []error {
	errs := make([]error, len(ops))
	b, ok := g.next.(Batcher)
	if !ok {
		for i, op := range ops {
			if op.Delete {
				errs[i] = g.Delete(ctx, op.Item.Key, store.DeleteOptions{}, now)
			} else {
				_, errs[i] = g.Store(ctx, store.Set, op.Item, now)
			}
		}
		return errs
	}
	var got []error
	r := g.callWithin(ctx, "batch", g.timeoutFor(ctx), func(ctx context.Context) result {
		got = b.ApplyBatch(ctx, ops, now)
		for _, err := range got {
			if Failed(err) {
				return result{err: err} // a failed batch counts once against the breaker
			}
		}
		return result{}
	})
	if r.err != nil && got == nil {
		for i := range errs {
			errs[i] = r.err
		}
		return errs
	}
	return got
}

// Pinger is a backend that can be probed without touching any record.
type Pinger interface {
	Ping(ctx context.Context) error
}

// Ping probes the backend through the breaker: a failure counts toward
// opening it. While it is open, the probe goes to the backend anyway, and
// an answer closes the breaker at once, so recovery (a restarted server, a
// promoted replica) does not wait for the open period or for client
// traffic. A backend that cannot be pinged answers nil.
func (g *Guard) Ping(ctx context.Context) error {
	p, ok := g.next.(Pinger)
	if !ok {
		return nil
	}
	cb := g.cb.Load()
	if cb.State() != gobreaker.StateOpen {
		return g.call(ctx, "ping", func(ctx context.Context) result { return result{err: p.Ping(ctx)} }).err
	}
	pctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	start := time.Now()
	err := p.Ping(pctx)
	if err != nil {
		err = g.classify(pctx, g.timeout, err)
		g.observe("ping", start, err)
		return err
	}
	g.observe("ping", start, nil)
	if g.cb.CompareAndSwap(cb, gobreaker.NewCircuitBreaker[any](g.settings)) {
		g.setState(gobreaker.StateClosed)
		g.log.Warn("backend circuit breaker changed state", "backend", g.name, "from", "open", "to", "closed", "by", "background probe")
	}
	return nil
}
