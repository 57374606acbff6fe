package protocol

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strconv"
	"time"

	"github.com/repcache/repcache/internal/cstrconv"
	"github.com/repcache/repcache/internal/store"
)

// Errors that end a session. memcached closes the connection without a
// reply in each case.
var (
	ErrQuit        = errors.New("client sent quit")
	ErrLineTooLong = errors.New("command line too long without a newline")
	ErrHTTP        = errors.New("HTTP request on the memcache port")
	ErrBinary      = errors.New("binary protocol is not supported")
)

// Per-connection memory. A session holds a read buffer and small reply
// buffers; what grew for one large request is dropped when the session next
// waits for input, so an idle connection holds a small, fixed amount.
const (
	readBufferSize = 16 << 10 // memcached's read buffer
	flushAt        = 64 << 10 // pending replies are sent once they reach this size, mid-reply too
	byReference    = 16 << 10 // values this large are sent from where they are (writev), not copied
	keepBuffer     = 64 << 10 // larger buffers are dropped when the session goes idle
)

// BuffersWriter is implemented by connections that send several buffers in
// one system call (writev), as net.Buffers does for a *net.TCPConn; it
// consumes what it wrote from bufs.
type BuffersWriter interface {
	WriteBuffers(bufs *net.Buffers) (int64, error)
}

// Session serves one client connection.
type Session struct {
	h       *Handler
	ctx     context.Context // carries req
	req     store.Request   // the request carrier: the policy layer sets its Route per call
	r       *bufio.Reader
	src     io.Reader // the connection under r, read directly by a watcher
	w       io.Writer
	bw      BuffersWriter // w's writev, when it has one
	wbuf    []byte        // replies not yet sent; see flush
	werr    error         // the first write error: the session ends with it
	flushes int           // flushes so far, to tell whether a reply was partly sent
	idle    bool          // between requests: buffers may be dropped
	line    []byte
	tok     [maxTokens][]byte
	val     []byte // data block of a storage command, value of a read
	out     []byte // reply under construction (meta, stats)
	noreply bool
}

// NewSession returns a session reading requests from r and writing replies to w.
func (h *Handler) NewSession(ctx context.Context, r io.Reader, w io.Writer) *Session {
	size := readBufferSize
	if size < 2*h.opts.MaxLineLength {
		size = 2 * h.opts.MaxLineLength
	}
	s := &Session{h: h, w: w, src: r}
	s.ctx = store.NewContext(ctx, &s.req)
	s.bw, _ = w.(BuffersWriter)
	s.r = bufio.NewReaderSize(flushingReader{s, r}, size)
	return s
}

// flushingReader sends every pending reply before the session reads more
// input, so no completed reply waits behind a request that has not fully
// arrived. Replies to pipelined requests already buffered still go out
// together, as memcached sends them.
type flushingReader struct {
	s   *Session
	src io.Reader
}

func (f flushingReader) Read(p []byte) (int, error) {
	if err := f.s.flush(); err != nil {
		return 0, err
	}
	if f.s.idle {
		f.s.release()
	}
	return f.src.Read(p)
}

// release drops buffers that grew beyond keepBuffer for an earlier request.
func (s *Session) release() {
	if cap(s.val) > keepBuffer {
		s.val = nil
	}
	if cap(s.out) > keepBuffer {
		s.out = nil
	}
	if cap(s.wbuf) > keepBuffer {
		s.wbuf = nil
	}
	if cap(s.line) > keepBuffer {
		s.line = nil
	}
}

// flush sends the pending replies.
func (s *Session) flush() error {
	if s.werr != nil || len(s.wbuf) == 0 {
		s.wbuf = s.wbuf[:0]
		return s.werr
	}
	_, err := s.w.Write(s.wbuf)
	s.sent(len(s.wbuf), err)
	s.wbuf = s.wbuf[:0]
	return err
}

func (s *Session) sent(n int, err error) {
	s.h.Stats.BytesWritten.Add(uint64(n))
	s.flushes++
	if err != nil && s.werr == nil {
		s.werr = err
	}
}

// writeValue queues a value and its CRLF. A large value is sent at once
// together with what is pending, from where it is (one writev), so a reply
// of many large values never sits whole in memory.
func (s *Session) writeValue(v []byte) {
	if len(v) < byReference || s.werr != nil {
		s.wbuf = append(s.wbuf, v...)
		s.wbuf = append(s.wbuf, crlf...)
		if len(s.wbuf) >= flushAt {
			s.flush()
		}
		return
	}
	n := len(s.wbuf) + len(v) + len(crlf)
	var err error
	if s.bw != nil {
		bufs := net.Buffers{s.wbuf, v, crlf}
		_, err = s.bw.WriteBuffers(&bufs)
	} else {
		for _, b := range [][]byte{s.wbuf, v, crlf} {
			if _, err = s.w.Write(b); err != nil {
				break
			}
		}
	}
	s.sent(n, err)
	s.wbuf = s.wbuf[:0]
}

// Serve processes requests until the client quits, the connection fails or
// the protocol requires closing it.
func (s *Session) Serve() error {
	b, err := s.r.Peek(1)
	if err != nil {
		return err // a silent client's idle timeout, or EOF: cut once
	}
	if b[0] == 0x80 {
		return ErrBinary
	}
	for {
		line, err := s.readLine()
		if err != nil {
			s.flush()
			return err
		}
		s.h.Stats.BytesRead.Add(uint64(len(line) + 2))
		start := time.Now()
		err = s.dispatch(line)
		if s.h.metrics != nil {
			if name, ok := commandName(firstToken(line)); ok {
				s.observe(name, start)
			}
		}
		if err == nil {
			err = s.werr
		}
		if err != nil {
			s.flush()
			return err
		}
		if len(s.wbuf) >= flushAt {
			if err := s.flush(); err != nil {
				return err
			}
		}
	}
}

// readLine returns the next command line, without "\n" (and "\r" when the
// line is longer than one byte), cut at the first NUL like memcached's C
// strings. Like memcached, a line still without a newline after
// MaxLineLength bytes closes the connection unless it is a get/gets.
func (s *Session) readLine() ([]byte, error) {
	s.idle = true
	defer func() { s.idle = false }()
	for {
		n := s.r.Buffered()
		if n > 0 {
			buf, _ := s.r.Peek(n)
			if i := bytes.IndexByte(buf, '\n'); i >= 0 {
				s.line = append(s.line[:0], buf[:i]...)
				s.r.Discard(i + 1)
				return s.trimLine(), nil
			}
			if n > s.h.opts.MaxLineLength {
				if !isMultiGet(buf) {
					return nil, ErrLineTooLong
				}
				return s.readLongLine()
			}
		}
		if _, err := s.r.Peek(n + 1); err != nil {
			return nil, err
		}
	}
}

func firstToken(line []byte) []byte {
	line = bytes.TrimLeft(line, " ")
	if i := bytes.IndexByte(line, ' '); i >= 0 {
		return line[:i]
	}
	return line
}

func (s *Session) readLongLine() ([]byte, error) {
	s.idle = false // s.line holds the line's start: keep it
	s.line = s.line[:0]
	for {
		chunk, err := s.r.ReadSlice('\n')
		s.line = append(s.line, chunk...)
		if len(s.line) > s.h.opts.MaxMultiGetLine {
			return nil, ErrLineTooLong
		}
		switch {
		case err == nil:
			s.line = s.line[:len(s.line)-1]
			return s.trimLine(), nil
		case errors.Is(err, bufio.ErrBufferFull):
		default:
			return nil, err
		}
	}
}

func (s *Session) trimLine() []byte {
	l := s.line
	if len(l) > 1 && l[len(l)-1] == '\r' {
		l = l[:len(l)-1]
	}
	if i := bytes.IndexByte(l, 0); i >= 0 {
		l = l[:i]
	}
	return l
}

// isMultiGet is memcached's test for a long line it keeps reading.
func isMultiGet(buf []byte) bool {
	i := 0
	for i < len(buf) && buf[i] == ' ' {
		i++
	}
	if i > 100 {
		return false
	}
	return bytes.HasPrefix(buf[i:], []byte("get ")) || bytes.HasPrefix(buf[i:], []byte("gets "))
}

func (s *Session) write(b []byte) {
	s.wbuf = append(s.wbuf, b...)
}

// reply writes a status line unless the request asked for noreply.
func (s *Session) reply(b []byte) {
	if !s.noreply {
		s.write(b)
	}
}

// clientError is errors.As for a store.ClientError. It costs nothing for
// a success or a plain miss (errors.As's target escapes: one allocation),
// which is nearly every request.
func clientError(err error) (*store.ClientError, bool) {
	if err == nil || err == store.ErrNotFound {
		return nil, false
	}
	var ce *store.ClientError
	ok := errors.As(err, &ce)
	return ce, ok
}

// statusOf names a store error for the commands metric.
func statusOf(err error) string {
	_, refused := clientError(err)
	switch {
	case err == nil:
		return "stored"
	case errors.Is(err, store.ErrNotFound):
		return "not_found"
	case errors.Is(err, store.ErrNotStored):
		return "not_stored"
	case errors.Is(err, store.ErrExists):
		return "exists"
	case refused, errors.Is(err, store.ErrTooLarge), errors.Is(err, store.ErrNonNumeric):
		return "refused"
	}
	return "error"
}

// commandNames are the commands observed in metrics.
var commandNames = []string{"get", "gets", "gat", "gats", "set", "add", "replace", "append", "prepend", "cas",
	"delete", "incr", "decr", "touch", "flush_all", "mg", "ms", "md", "ma"}

// commandName is the metrics label of a command, for the commands
// repcache serves; anything else is not observed.
func commandName(cmd []byte) (string, bool) {
	for _, c := range commandNames {
		if string(cmd) == c {
			return c, true
		}
	}
	return "", false
}

// storeError maps a store error to memcached's reply.
func (s *Session) storeError(err error) {
	ce, refused := clientError(err)
	switch {
	case refused:
		s.reply([]byte("CLIENT_ERROR " + ce.Msg + "\r\n"))
	case errors.Is(err, store.ErrNotFound):
		s.reply(rNotFound)
	case errors.Is(err, store.ErrNotStored):
		s.reply(rNotStored)
	case errors.Is(err, store.ErrExists):
		s.reply(rExists)
	case errors.Is(err, store.ErrTooLarge):
		s.reply(rTooLarge)
	case errors.Is(err, store.ErrNonNumeric):
		s.reply(rNonNumeric)
	default:
		// The tiers log each outage once per change of state, with periodic
		// counts; a line per failed request would flood the log during one.
		s.h.opts.Logger.Debug("store request failed", "err", err)
		s.reply([]byte("SERVER_ERROR " + err.Error() + "\r\n"))
	}
}

func (s *Session) now() int64 { return s.h.opts.Now() }

// dispatch routes one command line, following memcached's
// process_command_ascii, including its token-count checks. n counts the real
// tokens; memcached's ntokens is n+1.
func (s *Session) dispatch(line []byte) error {
	s.noreply = false
	t := s.tok[:]
	n, rest := tokenize(line, t)
	if n == 0 || len(t[0]) < 2 {
		s.write(rError)
		return nil
	}
	cmd := t[0]
	nt := n + 1 // memcached's ntokens counts a terminal token
	want := func(ok bool) bool {
		if !ok {
			s.write(rError)
		}
		return ok
	}
	if cmd[0] == 'm' && len(cmd) == 2 {
		s.h.Stats.CmdMeta.Add(1)
		switch cmd[1] {
		case 'g':
			s.metaGet(t, n, nt)
		case 's':
			return s.metaSet(t, n, nt)
		case 'd':
			s.metaDelete(t, n, nt)
		case 'a':
			s.metaArithmetic(t, n, nt)
		case 'n':
			// memcached sends mn's reply, and every one before it, at once:
			// the end of a batch.
			s.write(rMN)
			return s.flush()
		case 'e':
			s.metaDebug(t, n, nt)
		default:
			s.write(rError)
		}
		return nil
	}
	switch string(cmd) {
	case "get", "bget":
		if want(nt >= 3) {
			return s.get(t, n, rest, false, false)
		}
	case "gets":
		if want(nt >= 3) {
			return s.get(t, n, rest, true, false)
		}
	case "gat":
		if want(nt >= 3) {
			return s.get(t, n, rest, false, true)
		}
	case "gats":
		if want(nt >= 3) {
			return s.get(t, n, rest, true, true)
		}
	case "set":
		if want(nt == 6 || nt == 7) {
			return s.update(t, n, store.Set)
		}
	case "add":
		if want(nt == 6 || nt == 7) {
			return s.update(t, n, store.Add)
		}
	case "replace":
		if want(nt == 6 || nt == 7) {
			return s.update(t, n, store.Replace)
		}
	case "append":
		if want(nt == 6 || nt == 7) {
			return s.update(t, n, store.Append)
		}
	case "prepend":
		if want(nt == 6 || nt == 7) {
			return s.update(t, n, store.Prepend)
		}
	case "cas":
		if want(nt == 7 || nt == 8) {
			return s.update(t, n, store.CAS)
		}
	case "incr":
		if want(nt == 4 || nt == 5) {
			s.arithmetic(t, n, false)
		}
	case "decr":
		if want(nt == 4 || nt == 5) {
			s.arithmetic(t, n, true)
		}
	case "delete":
		if want(nt >= 3 && nt <= 5) {
			s.delete(t, n, nt)
		}
	case "touch":
		if want(nt == 4 || nt == 5) {
			s.touch(t, n)
		}
	case "flush_all":
		if want(nt >= 2 && nt <= 4) {
			s.flushAll(t, n, nt)
		}
	case "version":
		s.write([]byte("VERSION " + s.h.opts.Version + "\r\n"))
	case "verbosity":
		if want(nt == 3 || nt == 4) {
			s.setNoreply(t, n)
			if _, ok := cstrconv.ParseUint32(t[1]); !ok {
				s.reply(rBadFormat)
			} else {
				s.reply(rOK)
			}
		}
	case "stats":
		s.stats(t, n)
	case "slabs":
		s.slabs(t, n)
	case "watch":
		return s.watch(t, n)
	case "quit":
		return ErrQuit
	default:
		// memcached drops, without a word, a connection that talks HTTP.
		if bytes.HasPrefix(t[n-1], []byte("HTTP/")) {
			return ErrHTTP
		}
		s.write(rError)
	}
	return nil
}

// setNoreply is memcached's set_noreply_maybe: the last token decides.
func (s *Session) setNoreply(t [][]byte, n int) {
	if string(t[n-1]) == "noreply" {
		s.noreply = true
	}
}

func (s *Session) keyTooLong(key []byte) bool {
	if len(key) <= int(s.h.maxKey.Load()) {
		return false
	}
	return s.h.limiter == nil || len(key) > s.h.limiter.MaxKeyLength(key)
}

// get serves get, gets, gat and gats, writing each value as it is read
// (see writeValue). A key that is too long voids the whole reply, as in
// memcached: every key is checked before anything is read.
func (s *Session) get(t [][]byte, n int, rest []byte, withCAS, touch bool) error {
	now := s.now()
	var deadline int64
	i := 1
	if touch {
		exptime, ok := cstrconv.ParseInt32(t[1])
		if !ok {
			s.write(rBadExptime)
			return nil
		}
		deadline = ExptimeDeadline(exptime, now)
		i = 2
	}
	if s.anyKeyTooLong(t[i:n], rest) {
		// memcached culls every reply it has not sent yet, those of
		// earlier pipelined requests included, and answers this alone.
		s.wbuf = s.wbuf[:0]
		s.write(rBadFormat)
		return nil
	}
	cmdName := "get"
	switch {
	case touch && withCAS:
		cmdName = "gats"
	case touch:
		cmdName = "gat"
	case withCAS:
		cmdName = "gets"
	}
	flushes := s.flushes
	var last []byte // the previous key, when it was a hit: its item is in it and s.val
	var it store.Item
	for {
		for ; i < n; i++ {
			key := t[i]
			if touch {
				s.h.Stats.CmdTouch.Add(1)
			} else {
				s.h.Stats.CmdGet.Add(1)
			}
			var err error
			switch {
			case last != nil && bytes.Equal(key, last):
				// A repeated key is answered from the value just read.
			case touch:
				it, err = s.h.store.Touch(s.ctx, key, deadline, s.val[:0], now)
			default:
				it, err = s.h.store.Get(s.ctx, key, s.val[:0], now)
			}
			if err == nil {
				s.val = it.Value
			}
			last = nil
			if _, refused := clientError(err); refused {
				s.count(cmdName, key, "refused")
				if s.flushes != flushes {
					// Part of the reply is out: it cannot be voided any more,
					// so the connection ends after the refusal.
					s.storeError(err)
					return errReplyCut
				}
				// Refused like an over-long key: the whole reply is voided.
				s.wbuf = s.wbuf[:0]
				s.storeError(err)
				return nil
			}
			if err != nil {
				status := "miss"
				if !errors.Is(err, store.ErrNotFound) {
					status = "error"
					s.h.opts.Logger.Warn("get failed", "err", err)
				}
				s.count(cmdName, key, status)
				s.watchGet(key, nil)
				s.countGet(touch, false)
				s.h.detail.get(key, false)
				continue
			}
			last = key
			s.count(cmdName, key, "hit")
			s.watchGet(key, &it)
			s.countGet(touch, true)
			s.h.detail.get(key, true)
			w := append(s.wbuf, rValue...)
			w = append(w, key...)
			w = append(w, ' ')
			w = strconv.AppendUint(w, uint64(it.Flags), 10)
			w = append(w, ' ')
			w = strconv.AppendInt(w, int64(len(it.Value)), 10)
			if withCAS {
				w = append(w, ' ')
				w = strconv.AppendUint(w, it.CAS, 10)
			}
			s.wbuf = append(w, crlf...)
			s.writeValue(it.Value)
			if s.werr != nil {
				return s.werr
			}
		}
		if rest == nil {
			break
		}
		n, rest = tokenize(rest, t)
		i = 0
	}
	s.write(rEnd)
	return nil
}

// errReplyCut ends a session whose multi-key reply was refused after part
// of it had been sent.
var errReplyCut = errors.New("a key of a multi-key get was refused after part of the reply was sent")

// anyKeyTooLong checks every key of a get line: the tokens split off and the
// rest of the line.
func (s *Session) anyKeyTooLong(keys [][]byte, rest []byte) bool {
	for _, k := range keys {
		if s.keyTooLong(k) {
			return true
		}
	}
	for len(rest) > 0 {
		i := bytes.IndexByte(rest, ' ')
		if i < 0 {
			return s.keyTooLong(rest)
		}
		if s.keyTooLong(rest[:i]) {
			return true
		}
		rest = rest[i+1:]
	}
	return false
}

func (s *Session) countGet(touch, hit bool) {
	switch {
	case touch && hit:
		s.h.Stats.TouchHits.Add(1)
	case touch:
		s.h.Stats.TouchMisses.Add(1)
	case hit:
		s.h.Stats.GetHits.Add(1)
	default:
		s.h.Stats.GetMisses.Add(1)
	}
}

// readData reads a data block of n bytes and its "\r\n" into s.val.
// n was bounded by the item size limit before this is called.
func (s *Session) readData(n int) (ok bool, err error) {
	if cap(s.val) < n+2 {
		s.val = make([]byte, n+2)
	}
	s.val = s.val[:n+2]
	if _, err := io.ReadFull(s.r, s.val); err != nil {
		return false, err
	}
	s.h.Stats.BytesRead.Add(uint64(n + 2))
	ok = s.val[n] == '\r' && s.val[n+1] == '\n'
	s.val = s.val[:n]
	return ok, nil
}

// swallow discards a data block memcached refused before reading it.
func (s *Session) swallow(n int) error {
	_, err := s.r.Discard(n)
	return err
}

// update serves set, add, replace, append, prepend and cas.
func (s *Session) update(t [][]byte, n int, mode store.Mode) error {
	s.setNoreply(t, n)
	key := t[1]
	if s.keyTooLong(key) {
		s.reply(rBadFormat)
		return nil
	}
	flags, ok1 := cstrconv.ParseUint32(t[2])
	exptime, ok2 := cstrconv.ParseInt32(t[3])
	vlen, ok3 := cstrconv.ParseInt32(t[4])
	if !ok1 || !ok2 || !ok3 {
		s.reply(rBadFormat)
		return nil
	}
	var cas uint64
	if mode == store.CAS {
		var ok bool
		if cas, ok = cstrconv.ParseUint64(t[5]); !ok {
			s.reply(rBadFormat)
			return nil
		}
	}
	if vlen < 0 || vlen > 1<<31-1-2 {
		s.reply(rBadFormat)
		return nil
	}
	now := s.now()
	s.h.Stats.CmdSet.Add(1)
	s.h.detail.set(key)
	// The key lives in s.line, which reading the data block does not touch.
	if store.ItemSize(len(key), int(vlen), flags) > int(s.h.maxItem.Load()) {
		s.h.Stats.StoreTooLarge.Add(1)
		s.count(mode.String(), key, "refused")
		s.watchStore(mode, store.Item{Key: key}, store.ErrTooLarge, 0, now)
		s.reply(rTooLarge)
		if mode == store.Set {
			// memcached drops the old value so that a failed set cannot leave stale data.
			s.watchLookup(key, false, now)
			s.h.store.Delete(s.ctx, key, store.DeleteOptions{}, now)
		}
		return s.swallow(int(vlen) + 2)
	}
	ok, err := s.readData(int(vlen))
	if err != nil {
		return err
	}
	if !ok {
		s.count(mode.String(), key, "refused")
		s.reply(rBadDataChunk)
		return nil
	}
	it := store.Item{Key: key, Value: s.val, Flags: flags, Deadline: ExptimeDeadline(exptime, now), CAS: cas}
	old := s.watchLookup(key, mode == store.Append || mode == store.Prepend, now)
	_, err = s.h.store.Store(s.ctx, mode, it, now)
	s.count(mode.String(), key, statusOf(err))
	s.watchStore(mode, it, err, old, now)
	s.countStore(mode, err)
	if err != nil {
		s.storeError(err)
		return nil
	}
	s.reply(rStored)
	return nil
}

func (s *Session) countStore(mode store.Mode, err error) {
	if err == nil {
		s.h.Stats.TotalItems.Add(1)
	}
	if mode != store.CAS {
		return
	}
	switch {
	case err == nil:
		s.h.Stats.CASHits.Add(1)
	case errors.Is(err, store.ErrExists):
		s.h.Stats.CASBadval.Add(1)
	case errors.Is(err, store.ErrNotFound):
		s.h.Stats.CASMisses.Add(1)
	}
}

func (s *Session) arithmetic(t [][]byte, n int, decr bool) {
	s.setNoreply(t, n)
	key := t[1]
	if s.keyTooLong(key) {
		s.reply(rBadFormat)
		return
	}
	delta, ok := cstrconv.ParseUint64(t[2])
	if !ok {
		s.reply(rBadDelta)
		return
	}
	now := s.now()
	s.watchLookup(key, false, now)
	c, err := s.h.store.Incr(s.ctx, key, store.IncrOptions{Delta: delta, Decr: decr}, now)
	name := "incr"
	if decr {
		name = "decr"
	}
	if err == nil {
		s.count(name, key, "hit")
	} else {
		s.count(name, key, statusOf(err))
	}
	hits, misses := &s.h.Stats.IncrHits, &s.h.Stats.IncrMisses
	if decr {
		hits, misses = &s.h.Stats.DecrHits, &s.h.Stats.DecrMisses
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			misses.Add(1)
		}
		s.storeError(err)
		return
	}
	hits.Add(1)
	s.out = strconv.AppendUint(s.out[:0], c.Value, 10)
	s.out = append(s.out, crlf...)
	s.reply(s.out)
}

func (s *Session) delete(t [][]byte, n, nt int) {
	if nt > 3 {
		zero := string(t[2]) == "0"
		s.setNoreply(t, n)
		if !((nt == 4 && (zero || s.noreply)) || (nt == 5 && zero && s.noreply)) {
			s.reply(rDeleteUsage)
			return
		}
	}
	key := t[1]
	if s.keyTooLong(key) {
		s.reply(rBadFormat)
		return
	}
	s.h.detail.delete(key)
	now := s.now()
	s.watchLookup(key, false, now)
	if err := s.h.store.Delete(s.ctx, key, store.DeleteOptions{}, now); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.h.Stats.DeleteMisses.Add(1)
		}
		s.count("delete", key, statusOf(err))
		s.storeError(err)
		return
	}
	s.count("delete", key, "deleted")
	s.h.Stats.DeleteHits.Add(1)
	s.reply(rDeleted)
}

func (s *Session) touch(t [][]byte, n int) {
	s.setNoreply(t, n)
	key := t[1]
	if s.keyTooLong(key) {
		s.reply(rBadFormat)
		return
	}
	exptime, ok := cstrconv.ParseInt32(t[2])
	if !ok {
		s.reply(rBadExptime)
		return
	}
	now := s.now()
	s.h.Stats.CmdTouch.Add(1)
	it, err := s.h.store.Touch(s.ctx, key, ExptimeDeadline(exptime, now), s.val[:0], now)
	if err == nil {
		s.count("touch", key, "hit")
		s.watchGet(key, &it)
	} else {
		s.count("touch", key, statusOf(err))
		if errors.Is(err, store.ErrNotFound) {
			s.watchGet(key, nil)
		}
	}
	s.countGet(true, err == nil)
	if err != nil {
		s.storeError(err)
		return
	}
	s.reply(rTouched)
}

func (s *Session) flushAll(t [][]byte, n, nt int) {
	s.setNoreply(t, n)
	s.h.Stats.CmdFlush.Add(1)
	var delay int32
	want := 2
	if s.noreply {
		want = 3
	}
	if nt != want {
		var ok bool
		if delay, ok = cstrconv.ParseInt32(t[1]); !ok {
			s.reply(rBadExptime)
			return
		}
	}
	if delay > 0 {
		// The flush moment is read like an exptime: relative up to 30 days, else absolute.
		now := s.now()
		at := ExptimeDeadline(delay, now)
		s.h.scheduleFlush(secondsDuration(at - now))
	} else if err := s.h.store.Flush(s.ctx); err != nil {
		s.count("flush_all", nil, statusOf(err))
		s.storeError(err)
		return
	}
	s.count("flush_all", nil, "deleted")
	s.reply(rOK)
}

// slabs answers "slabs automove" as memcached does (repcache has no slab
// classes to move pages between, so the setting changes nothing); every
// other slabs command is an ERROR.
func (s *Session) slabs(t [][]byte, n int) {
	if n < 3 || string(t[1]) != "automove" {
		s.write(rError)
		return
	}
	s.setNoreply(t, n)
	if string(t[2]) == "ratio" {
		if _, err := strconv.ParseFloat(string(t[3%n]), 64); n < 4 || err != nil {
			s.reply(rError)
			return
		}
		s.reply(rOK)
		return
	}
	switch level, ok := cstrconv.ParseUint32(t[2]); {
	case !ok:
		s.reply(rBadFormat)
	case level > 2:
		s.reply(rError)
	default:
		s.reply(rOK)
	}
}
