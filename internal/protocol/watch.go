package protocol

import (
	"errors"
	"io"
	"net"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/repcache/repcache/internal/store"
)

// Log streams: "watch fetchers mutations" turns a connection into a stream
// of one line per event, in memcached's logger format, for as long as the
// client stays connected. A session checks one atomic mask per event, so
// nobody watching costs nothing.

// watchFlag is one stream a watcher asked for.
type watchFlag uint32

const (
	watchFetchers   watchFlag = 1 << iota // item_get: reads, and the lookup a storage command makes
	watchMutations                        // item_store: storage commands
	watchConnEvents                       // conn_new, conn_close
	// Accepted as memcached accepts them; repcache has no such events
	// (no evictions per key are reported by its stores, no proxy, no raw
	// command log), so these streams stay silent.
	watchSilent
)

// watchStreams are the names "watch" accepts.
var watchStreams = map[string]watchFlag{
	"fetchers": watchFetchers, "mutations": watchMutations, "connevents": watchConnEvents,
	"evictions": watchSilent, "rawcmds": watchSilent, "sysevents": watchSilent,
	"proxyreqs": watchSilent, "proxyevents": watchSilent, "proxyuser": watchSilent,
}

// Limits of memcached's logger: watchers at once, and the bytes buffered
// for one watcher that reads too slowly; later lines are skipped and
// counted in a "skipped=N" line once it catches up.
const (
	maxWatchers  = 20
	watchBufSize = 256 << 10
)

var (
	rWatchTooMany  = []byte("WATCHER_TOO_MANY log watcher limit reached\r\n")
	rWatchPipeline = []byte("ERROR cannot pipeline other commands before watch\r\n")
)

// Watchable is implemented by connections that can become a log stream:
// told by Watch, they stop applying the idle timeout to reads (a watcher
// sends nothing) and report the state conn_watch.
type Watchable interface {
	Watch()
}

// watcher is one log stream's pending lines.
type watcher struct {
	flags    watchFlag
	buf      []byte // guarded by logHub.mu, as are inflight and skipped
	inflight int    // bytes taken from buf and being written: they count toward the bound
	skipped  uint64
	wake     chan struct{}
}

// logHub fans events out to the watchers of a handler family.
type logHub struct {
	mask atomic.Uint32 // union of the watchers' flags
	gid  atomic.Uint64 // memcached's global event id
	mu   sync.Mutex
	ws   []*watcher
}

func (l *logHub) wants(f watchFlag) bool { return watchFlag(l.mask.Load())&f != 0 }

func (l *logHub) add(f watchFlag) *watcher {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.ws) >= maxWatchers {
		return nil
	}
	w := &watcher{flags: f, wake: make(chan struct{}, 1)}
	l.ws = append(l.ws, w)
	l.mask.Store(l.mask.Load() | uint32(f))
	return w
}

func (l *logHub) remove(w *watcher) {
	l.mu.Lock()
	defer l.mu.Unlock()
	var mask watchFlag
	kept := l.ws[:0]
	for _, o := range l.ws {
		if o != w {
			kept = append(kept, o)
			mask |= o.flags
		}
	}
	clear(l.ws[len(kept):])
	l.ws = kept
	l.mask.Store(uint32(mask))
}

// publish hands one event to every watcher of its stream. line is built by
// appending the event's fields to the "ts=… gid=…" prefix.
func (l *logHub) publish(f watchFlag, line func([]byte) []byte) {
	now := time.Now()
	b := strconv.AppendInt(append(make([]byte, 0, 192), "ts="...), now.Unix(), 10)
	b = append(b, '.')
	b = strconv.AppendInt(b, int64(now.Nanosecond()/1000), 10) // memcached prints microseconds unpadded
	b = append(b, " gid="...)
	b = strconv.AppendUint(b, l.gid.Add(1), 10)
	b = append(line(append(b, " type="...)), '\n')
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, w := range l.ws {
		if w.flags&f != 0 {
			w.queue(b)
		}
	}
}

// queue buffers line, or counts it as skipped: when it does not fit in
// the bound with what is being written, and after that until the client
// has caught up with everything (lines differ in length: a shorter one
// that fits must not end the count early).
func (w *watcher) queue(line []byte) {
	pending := len(w.buf) + w.inflight
	if pending+len(line) > watchBufSize || w.skipped > 0 && pending > 0 {
		w.skipped++
		return
	}
	if w.skipped > 0 {
		w.buf = append(w.buf, "skipped="...)
		w.buf = strconv.AppendUint(w.buf, w.skipped, 10)
		w.buf = append(w.buf, '\n')
		w.skipped = 0
	}
	w.buf = append(w.buf, line...)
	select {
	case w.wake <- struct{}{}:
	default:
	}
}

// take swaps the watcher's pending lines for spare (emptied); they count
// as in flight until written.
func (l *logHub) take(w *watcher, spare []byte) []byte {
	l.mu.Lock()
	defer l.mu.Unlock()
	b := w.buf
	w.buf = spare[:0]
	w.inflight = len(b)
	return b
}

// written is told that what take returned went out.
func (l *logHub) written(w *watcher) {
	l.mu.Lock()
	w.inflight = 0
	l.mu.Unlock()
}

// watch serves "watch [stream ...]": from the OK on, the session only
// streams log lines, and ends when the client goes away or stops reading
// them for the idle timeout; whatever the client sends is ignored.
func (s *Session) watch(t [][]byte, n int) error {
	s.setNoreply(t, n)
	var f watchFlag
	for _, name := range t[1:n] {
		g, ok := watchStreams[string(name)]
		if !ok {
			s.reply(rError) // memcached's reply, dropped by a trailing noreply as there
			return nil
		}
		f |= g
	}
	if n == 1 {
		f = watchFetchers
	}
	if len(s.wbuf) > 0 {
		s.write(rWatchPipeline)
		return nil
	}
	w := s.h.logs.add(f)
	if w == nil {
		s.write(rWatchTooMany)
		return nil
	}
	defer s.h.logs.remove(w)
	s.reply(rOK)
	if err := s.flush(); err != nil {
		return err
	}
	if c, ok := s.w.(Watchable); ok {
		c.Watch()
	}
	gone := make(chan error, 1)
	go func() { gone <- discard(s.src) }()
	var spare []byte
	for {
		select {
		case err := <-gone:
			return err
		case <-w.wake:
		}
		b := s.h.logs.take(w, spare)
		_, err := s.w.Write(b)
		s.sent(len(b), err)
		if err != nil {
			return err
		}
		s.h.logs.written(w)
		if cap(b) > keepBuffer {
			b = nil // a burst's buffer goes back
		}
		spare = b
	}
}

// discard reads and drops a watcher's input until the connection ends.
func discard(r io.Reader) error {
	buf := make([]byte, 512)
	for {
		if _, err := r.Read(buf); err != nil {
			return err
		}
	}
}

// Connection ids in log lines, memcached's cfd: the session learns its own
// from its connection.
type identified interface{ ConnID() int }

func (s *Session) connID() int {
	if c, ok := s.w.(identified); ok {
		return c.ConnID()
	}
	return 0
}

// watchGet reports a lookup to the fetchers stream: it is the item found,
// nil for a miss.
func (s *Session) watchGet(key []byte, it *store.Item) {
	if !s.h.logs.wants(watchFetchers) {
		return
	}
	status, class, size := "not_found", 0, 0
	if it != nil {
		status, size = "found", len(it.Value)
		class, _ = store.SlabClass(store.ItemSize(len(key), size, it.Flags))
	}
	id := s.connID()
	s.h.logs.publish(watchFetchers, func(b []byte) []byte {
		b = append(b, "item_get key="...)
		b = append(b, url.QueryEscape(string(key))...)
		b = append(b, " status="...)
		b = append(b, status...)
		return appendClassFD(b, class, id, size)
	})
}

// storeStatus names a storage command's outcome as memcached's logger
// does; any other error (a tier failure, a refusal) is not an item_store.
func storeStatus(err error) (string, bool) {
	for _, s := range storeStatuses {
		if errors.Is(err, s.err) {
			return s.name, true
		}
	}
	return "", err == nil
}

var storeStatuses = []struct {
	err  error
	name string
}{{store.ErrNotStored, "not_stored"}, {store.ErrExists, "exists"}, {store.ErrNotFound, "not_found"}, {store.ErrTooLarge, "too_large"}}

// watchLookup reports to fetchers the lookup memcached makes before a
// command changes an item (storage commands, delete, incr and decr, md,
// ma): the item as it was, read with one more store call (a Peek), made
// only while someone watches fetchers, or mutations when sized (an append
// or prepend, whose report adds to the size it returns: 0 if the item is
// absent or was not read).
func (s *Session) watchLookup(key []byte, sized bool, now int64) (size int) {
	if !s.h.logs.wants(watchFetchers) && !(sized && s.h.logs.wants(watchMutations)) {
		return 0
	}
	it, _, err := s.h.store.MetaGet(s.ctx, key, nil, store.MetaGetOptions{NoBump: true, Peek: true}, now)
	if err != nil {
		s.watchGet(key, nil)
		return 0
	}
	s.watchGet(key, &it)
	return len(it.Value)
}

// watchStore reports a storage command's write to mutations (its lookup
// went to fetchers before, from watchLookup, which gave old, the size the
// item had).
func (s *Session) watchStore(mode store.Mode, it store.Item, err error, old int, now int64) {
	if !s.h.logs.wants(watchMutations) {
		return
	}
	status, ok := storeStatus(err)
	if !ok {
		return
	}
	if err == nil {
		status = "stored"
	}
	var ttl int64
	if it.Deadline != 0 {
		ttl = max(it.Deadline-now, 0)
	}
	size, class := 0, 0
	if !errors.Is(err, store.ErrTooLarge) {
		size = len(it.Value)
		if err == nil && (mode == store.Append || mode == store.Prepend) {
			size += old // memcached reports the item it made
		}
		class, _ = store.SlabClass(store.ItemSize(len(it.Key), size, it.Flags))
	}
	id := s.connID()
	s.h.logs.publish(watchMutations, func(b []byte) []byte {
		b = append(b, "item_store key="...)
		b = append(b, url.QueryEscape(string(it.Key))...)
		b = append(b, " status="...)
		b = append(b, status...)
		b = append(b, " cmd="...)
		b = append(b, mode.String()...)
		b = append(b, " ttl="...)
		b = strconv.AppendInt(b, ttl, 10)
		return appendClassFD(b, class, id, size)
	})
}

func appendClassFD(b []byte, class, id, size int) []byte {
	b = append(b, " clsid="...)
	b = strconv.AppendInt(b, int64(class), 10)
	b = append(b, " cfd="...)
	b = strconv.AppendInt(b, int64(id), 10)
	b = append(b, " size="...)
	return strconv.AppendInt(b, int64(size), 10)
}

// Reasons a connection closed, memcached's names for conn_close.
const (
	CloseError       = "error"
	CloseNormal      = "normal"
	CloseIdleTimeout = "idle_timeout"
	CloseShutdown    = "shutdown"
)

// ConnOpened reports a new connection to the connevents stream.
func (h *Handler) ConnOpened(id int, remote net.Addr) {
	if h.logs.wants(watchConnEvents) {
		h.logs.publish(watchConnEvents, func(b []byte) []byte {
			return appendConnEvent(append(b, "conn_new"...), id, remote, "")
		})
	}
}

// ConnClosed reports a closed connection, and why (Close*), to the
// connevents stream.
func (h *Handler) ConnClosed(id int, remote net.Addr, reason string) {
	if h.logs.wants(watchConnEvents) {
		h.logs.publish(watchConnEvents, func(b []byte) []byte {
			return appendConnEvent(append(b, "conn_close"...), id, remote, reason)
		})
	}
}

func appendConnEvent(b []byte, id int, remote net.Addr, reason string) []byte {
	ip, port, transport := "unix", 0, "local"
	if a, ok := remote.(*net.TCPAddr); ok {
		ip, port, transport = a.IP.String(), a.Port, "tcp"
	}
	b = append(b, " rip="...)
	b = append(b, ip...)
	b = append(b, " rport="...)
	b = strconv.AppendInt(b, int64(port), 10)
	b = append(b, " transport="...)
	b = append(b, transport...)
	if reason != "" {
		b = append(b, " reason="...)
		b = append(b, reason...)
	}
	b = append(b, " cfd="...)
	return strconv.AppendInt(b, int64(id), 10)
}
