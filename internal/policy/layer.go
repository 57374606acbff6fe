package policy

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/ttl"
)

// View is what one listener may do: which maps it serves (nil: all, and
// keys outside every map as the policy allows) and whether it may write.
type View struct {
	Maps     map[string]bool
	ReadOnly bool
	// Bound names the one map every key on this listener belongs to,
	// whatever the key looks like: Postfix 3.11+ with key_digest sends a
	// hash of the whole key, prefix included, so the prefix cannot tell the
	// map. The layer keeps such keys under the map's prefix, so records of
	// different bound listeners stay apart and the tiers see map keys.
	Bound string
}

// Live holds the policy in force; a reload swaps it atomically, and every
// Layer made from the Live sees the new one from its next request on.
type Live struct{ p atomic.Pointer[Policy] }

// NewLive returns a holder of p.
func NewLive(p *Policy) *Live {
	l := &Live{}
	l.p.Store(p)
	return l
}

// Load is the policy in force.
func (l *Live) Load() *Policy { return l.p.Load() }

// Swap puts p in force.
func (l *Live) Swap(p *Policy) { l.p.Store(p) }

// Layer is the policy layer of one listener: every request passes through
// it on its way to storage, which it is not. It applies the policy in force
// and the listener's View in front of the next store (the tiers), and
// implements store.Store and store.KeyLimiter so the protocol layer can
// call it as it would call a store.
type Layer struct {
	live *Live
	v    View
	next store.Store
	bufs sync.Pool // digest key buffers
}

var (
	_ store.Store      = (*Layer)(nil)
	_ store.KeyLimiter = (*Layer)(nil)
)

// Layer returns the layer serving next under the policy in force, as seen
// through v.
func (l *Live) Layer(next store.Store, v View) *Layer {
	return &Layer{live: l, v: v, next: next, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 64); return &b }}}
}

// MaxKeyLength implements store.KeyLimiter: keys of a map may be as long as
// the map allows.
func (s *Layer) MaxKeyLength(key []byte) int {
	p := s.live.Load()
	if s.v.Bound != "" {
		if m := p.Map(s.v.Bound); m != nil {
			return m.MaxKeyLength
		}
	}
	if m := p.Lookup(key); m != nil {
		return m.MaxKeyLength
	}
	return p.storeKeyLimit
}

// route finds key's map, the one lookup of the request (by prefix, or by
// the listener's bound map), tells the layers below through ctx's request
// carrier, and checks the view; write says whether the request changes
// data. It returns key as the map sees it: on a bound listener, with the
// map's prefix put before it.
func (s *Layer) route(ctx context.Context, key []byte, write bool) (*Map, *Policy, []byte, error) {
	p := s.live.Load()
	var m *Map
	if s.v.Bound != "" {
		if m = p.Map(s.v.Bound); m != nil {
			key = append(append(make([]byte, 0, len(m.Prefix)+len(key)), m.Prefix...), key...)
		}
	} else {
		m = p.Lookup(key)
	}
	if r := store.RequestFrom(ctx); r != nil {
		r.Route = store.Route{}
		if m != nil {
			r.Route = m.Route
		}
	}
	switch {
	case write && s.v.ReadOnly:
		return nil, nil, nil, &store.ClientError{Msg: "this listener is read-only"}
	case m == nil && s.v.Bound != "":
		return nil, nil, nil, &store.ClientError{Msg: fmt.Sprintf("map %s, which this listener is bound to, is no longer configured", s.v.Bound)}
	case m == nil && p.rejectUnknown:
		return nil, nil, nil, &store.ClientError{Msg: fmt.Sprintf("key prefix %q matches no map", prefixOf(key))}
	case m == nil && s.v.Maps != nil:
		return nil, nil, nil, &store.ClientError{Msg: fmt.Sprintf("key prefix %q matches no map served on this listener", prefixOf(key))}
	case m != nil && s.v.Maps != nil && !s.v.Maps[m.Name]:
		return nil, nil, nil, &store.ClientError{Msg: fmt.Sprintf("map %s is not served on this listener", m.Name)}
	}
	return m, p, key, nil
}

// isCleanup reports whether key is the map's dict_cache cleanup marker.
func isCleanup(m *Map, key []byte) bool {
	return len(key) == len(m.Prefix)+len(CleanupKey) && string(key[len(m.Prefix):]) == CleanupKey
}

func (s *Layer) key(p *Policy, m *Map, key []byte) ([]byte, func()) {
	if m == nil || len(key) <= p.storeKeyLimit {
		return key, func() {}
	}
	bp := s.bufs.Get().(*[]byte)
	*bp = p.storageKey(m, key, *bp)
	return *bp, func() { s.bufs.Put(bp) }
}

// Get implements store.Store.
func (s *Layer) Get(ctx context.Context, key, buf []byte, now int64) (store.Item, error) {
	m, p, key, err := s.route(ctx, key, false)
	if err != nil {
		return store.Item{}, err
	}
	k, done := s.key(p, m, key)
	defer done()
	it, err := s.next.Get(ctx, k, buf, now)
	if err == nil && m != nil && m.Typed() && !isCleanup(m, key) {
		p.observeRead(m, it.Value, now)
	}
	return it, err
}

// Touch implements store.Store. On maps that derive lifetimes the client's
// exptime is ignored (client_ttl: ignore) or may only shorten the record
// (client_ttl: cap).
func (s *Layer) Touch(ctx context.Context, key []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	m, p, key, err := s.route(ctx, key, true)
	if err != nil {
		return store.Item{}, err
	}
	k, done := s.key(p, m, key)
	defer done()
	return s.touch(ctx, m, key, k, deadline, buf, now)
}

// touch applies the map's client_ttl rule to a touch of key, stored as k.
func (s *Layer) touch(ctx context.Context, m *Map, key, k []byte, deadline int64, buf []byte, now int64) (store.Item, error) {
	if m == nil || m.Rule.Kind == ttl.Passthrough || isCleanup(m, key) {
		return s.next.Touch(ctx, k, deadline, buf, now)
	}
	it, err := s.next.Get(ctx, k, buf, now)
	if err != nil || m.Rule.ClientTTL != ttl.Cap || deadline == 0 || (it.Deadline != 0 && it.Deadline <= deadline) {
		return it, err
	}
	return s.next.Touch(ctx, k, deadline, buf, now)
}

// Store implements store.Store: the record's value decides its lifetime.
func (s *Layer) Store(ctx context.Context, mode store.Mode, it store.Item, now int64) (uint64, error) {
	m, p, key, err := s.route(ctx, it.Key, true)
	if err != nil {
		return 0, err
	}
	it.Key = key
	k, done := s.key(p, m, it.Key)
	defer done()
	if m != nil && !isCleanup(m, it.Key) {
		if m.Typed() && (mode == store.Append || mode == store.Prepend) {
			return 0, &store.ClientError{Msg: fmt.Sprintf("map %s: append and prepend would corrupt %s records", m.Name, m.Rule.Kind)}
		}
		deadline, keep, err := m.Rule.Deadline(it.Value, it.Deadline, now)
		if err != nil {
			return 0, &store.ClientError{Msg: fmt.Sprintf("map %s: %v", m.Name, err)}
		}
		if !keep {
			deadline = 1 // dead by the map's rules: answered STORED, kept nowhere
		} else if deadline != 0 {
			p.observeLifetime(m, deadline-now)
		}
		it.Deadline = deadline
	}
	it.Key = k
	return s.next.Store(ctx, mode, it, now)
}

// MetaGet implements store.Store. A meta get that writes (touch, vivify)
// is routed as a write; on maps that derive lifetimes the touch follows
// Touch's rules (a second call below, on the map already resolved) and vivifying, which would store an empty
// record, is refused on typed maps.
func (s *Layer) MetaGet(ctx context.Context, key, buf []byte, o store.MetaGetOptions, now int64) (store.Item, store.MetaState, error) {
	m, p, key, err := s.route(ctx, key, o.Touch || o.Vivify)
	if err != nil {
		return store.Item{}, store.MetaState{}, err
	}
	if o.Vivify && m != nil && m.Typed() && !isCleanup(m, key) {
		return store.Item{}, store.MetaState{}, &store.ClientError{Msg: fmt.Sprintf("map %s: an empty vivified item would corrupt %s records", m.Name, m.Rule.Kind)}
	}
	k, done := s.key(p, m, key)
	defer done()
	derived := m != nil && m.Rule.Kind != ttl.Passthrough && !isCleanup(m, key)
	touch := o.Touch && derived
	if touch {
		o.Touch, o.RecacheAfterTouch = false, false
	}
	it, st, err := s.next.MetaGet(ctx, k, buf, o, now)
	if err == nil && !o.Peek && m != nil && m.Typed() && !isCleanup(m, key) {
		p.observeRead(m, it.Value, now)
	}
	if err == nil && touch {
		_, err = s.touch(ctx, m, key, k, o.Deadline, nil, now)
	}
	return it, st, err
}

// Delete implements store.Store.
func (s *Layer) Delete(ctx context.Context, key []byte, o store.DeleteOptions, now int64) error {
	m, p, key, err := s.route(ctx, key, true)
	if err != nil {
		return err
	}
	k, done := s.key(p, m, key)
	defer done()
	return s.next.Delete(ctx, k, o, now)
}

// Incr implements store.Store; records of typed maps are not counters.
func (s *Layer) Incr(ctx context.Context, key []byte, o store.IncrOptions, now int64) (store.Counter, error) {
	m, p, key, err := s.route(ctx, key, true)
	if err != nil {
		return store.Counter{}, err
	}
	if m != nil && m.Typed() && !isCleanup(m, key) {
		return store.Counter{}, &store.ClientError{Msg: fmt.Sprintf("map %s: incr and decr would corrupt %s records", m.Name, m.Rule.Kind)}
	}
	k, done := s.key(p, m, key)
	defer done()
	return s.next.Incr(ctx, k, o, now)
}

// Flush implements store.Store. It empties every map, so only a listener
// that may write to all of them may flush.
func (s *Layer) Flush(ctx context.Context) error {
	if s.v.ReadOnly {
		return &store.ClientError{Msg: "this listener is read-only"}
	}
	if s.v.Maps != nil {
		return &store.ClientError{Msg: "flush_all needs a listener that serves every map"}
	}
	return s.next.Flush(ctx)
}

// Close implements store.Store; the next store belongs to the caller.
func (s *Layer) Close() error { return nil }

// Stats passes the next store's statistics through.
func (s *Layer) Stats() store.Stats {
	if r, ok := s.next.(store.StatsReporter); ok {
		return r.Stats()
	}
	return store.Stats{}
}
