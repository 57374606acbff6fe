package mcclient

import (
	"bufio"
	"context"
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// idleCheck: a connection idle for longer is checked for a close by the
// server (memcached's idle_timeout, at least a second) before it carries a
// request; nobody reads an idle connection, so a close is not seen
// otherwise. Shorter gaps go unchecked: one syscall saved per request
// under load, at the price that a server killed within idleCheck of its
// last reply fails one more request.
const idleCheck = 10 * time.Millisecond

// call is one request and, once done is signalled, its reply.
type call struct {
	op      op
	key     string
	value   []byte
	exptime int32
	mode    Mode
	cas     uint64

	opaque uint32
	rvalue []byte
	rcas   uint64
	err    error
	done   chan struct{} // buffered (1): the reader never blocks on a caller that gave up
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

func newCall() *call { return callPool.Get().(*call) }

// release returns c to the pool; only for a call whose done was received.
func release(c *call) {
	*c = call{done: c.done}
	callPool.Put(c)
}

// conn is one pipelined connection to a server. Requests from any number
// of goroutines are queued; whichever caller finds no write in progress
// becomes the writer and sends everything queued in one write, looping
// while more arrives (so under load one write syscall carries many
// requests). Replies are parsed in order by one reader at a time: a caller
// whose request was written alone on an idle connection reads its own
// reply (no hand-off to another goroutine, what a sequential client waits
// for), otherwise a reader goroutine, which runs while requests are in
// flight and completes their calls.
//
// The connection dials on its first write. It fails as a whole: any I/O
// error, a stall (no reply for timeout while requests are in flight) or an
// unusable reply fails every queued and in-flight call and closes it; the
// server then gets a new connection for the next request.
type conn struct {
	srv     *server
	timeout time.Duration

	mu       sync.Mutex
	nc       net.Conn
	r        *bufio.Reader // nc's; used only by the reader of the moment
	reading  bool          // a caller or the reader goroutine owns r
	err      error         // set once the connection failed; final
	queue    []*call       // waiting to be written
	spare    []*call       // the previous queue's array, reused
	writing  bool          // a caller is writing (or dialing)
	inflight []*call       // written, awaiting replies, oldest first
	opaque   uint32
	wbuf     []byte
	armed    time.Time     // when the read (stall) deadline was last set
	writes   atomic.Uint64 // write calls, for the batching test
	readers  atomic.Uint64 // reader goroutines started, for the sequential test
}

// submit queues c and, if no write is in progress, writes the queue. It
// returns an error only if the connection had already failed (c was not
// queued and never sent). own reports that c went out alone on an idle
// connection and the caller is its reader: it must call readOwn.
func (cn *conn) submit(c *call) (own bool, err error) {
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return false, err
	}
	cn.queue = append(cn.queue, c)
	if cn.writing {
		cn.mu.Unlock()
		return false, nil
	}
	cn.writing = true
	cn.mu.Unlock()
	// Let the goroutines that are ready to run (other clients' sessions
	// with a request in hand) queue theirs first, so that one write
	// carries them all; with nothing else to run this returns at once.
	runtime.Gosched()
	cn.mu.Lock()
	return cn.flushLocked(c), nil
}

// flushLocked writes the queue until it is empty. Called with mu held and
// writing set; returns with mu released. It reports whether mine, the
// writer's own call, went out alone on an idle connection, which makes
// the writer its reader.
func (cn *conn) flushLocked(mine *call) (own bool) {
	for {
		if cn.nc != nil && len(cn.inflight) == 0 && !cn.reading && time.Since(cn.armed) > idleCheck && peerClosed(cn.nc) {
			// Closed by the server while idle: nothing was lost, so
			// not a failure; redial.
			cn.nc.Close()
			cn.nc = nil
		}
		if cn.nc == nil {
			cn.mu.Unlock()
			nc, err := cn.srv.dial(cn.timeout)
			if err != nil {
				cn.fail(err)
				return false
			}
			cn.mu.Lock()
			if cn.err != nil { // closed while dialing
				cn.mu.Unlock()
				nc.Close()
				return false
			}
			cn.nc = nc
			if cn.r == nil {
				cn.r = bufio.NewReaderSize(nc, 64<<10)
			} else {
				cn.r.Reset(nc) // nobody reads: nothing was in flight
			}
		}
		q := cn.queue
		cn.queue = cn.spare[:0]
		b := cn.wbuf[:0]
		for _, c := range q {
			cn.opaque++
			c.opaque = cn.opaque
			b = appendRequest(b, c, c.opaque)
		}
		if len(cn.inflight) == 0 {
			// The reader may be blocked without a deadline; from now on
			// a reply is due.
			cn.armed = time.Now()
			cn.nc.SetReadDeadline(cn.armed.Add(cn.timeout))
		}
		if !cn.reading {
			cn.reading = true
			if len(cn.inflight) == 0 && len(q) == 1 && q[0] == mine {
				own = true
			} else {
				cn.startReader()
			}
		}
		cn.inflight = append(cn.inflight, q...)
		clear(q)
		cn.spare = q
		nc := cn.nc
		cn.mu.Unlock()

		nc.SetWriteDeadline(time.Now().Add(cn.timeout))
		_, err := nc.Write(b)
		cn.writes.Add(1)
		if cap(b) <= 256<<10 {
			cn.wbuf = b // kept while writing is set, so no one else touches it
		}
		cn.mu.Lock()
		if err != nil {
			cn.mu.Unlock()
			cn.fail(err)
			return own
		}
		if len(cn.queue) == 0 || cn.err != nil {
			cn.writing = false
			cn.mu.Unlock()
			return own
		}
	}
}

// peerClosed reports whether the server closed the idle connection nc (or
// sent something unasked, which makes it as unusable): one non-blocking
// peek at the socket.
func peerClosed(nc net.Conn) bool {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	nc.SetReadDeadline(time.Time{}) // a past deadline would skip the peek
	closed := false
	var b [1]byte
	raw.Read(func(fd uintptr) bool {
		n, _, err := syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		closed = n > 0 || !errors.Is(err, syscall.EAGAIN)
		return true
	})
	return closed
}

// readOwn reads the reply to c, written alone on an idle connection, in
// the caller's goroutine, then hands the reader role to a reader goroutine
// if requests were written behind c meanwhile. A nil return means c holds
// the reply (or the connection's failure); ctx ending before the reply
// starts to arrive returns ctx's error and leaves c in the pipeline, its
// reply to be dropped, as in server.do. A ctx without a deadline is not
// watched while reading: the stall timer bounds the wait.
func (cn *conn) readOwn(ctx context.Context, c *call) error {
	cn.mu.Lock()
	nc, r, stall := cn.nc, cn.r, cn.armed.Add(cn.timeout)
	cn.mu.Unlock()
	d, early := ctx.Deadline()
	early = early && d.Before(stall)
	if early {
		nc.SetReadDeadline(d)
	}
	if _, err := r.Peek(1); err != nil {
		var ne net.Error
		if early && errors.As(err, &ne) && ne.Timeout() && time.Now().Before(stall) {
			nc.SetReadDeadline(stall)
			cn.startReader()
			if err := ctx.Err(); err != nil {
				return err
			}
			return context.DeadlineExceeded // the socket's timer ran out before ctx's

		}
		cn.fail(err)
		<-c.done
		return nil
	}
	if early {
		nc.SetReadDeadline(stall)
	}
	res := call{op: c.op}
	if err := readReply(r, &res, c.opaque); err != nil {
		cn.fail(err)
		<-c.done
		return nil
	}
	cn.mu.Lock()
	if cn.err != nil { // failed meanwhile (a writer's error, Close): c was completed by fail
		cn.mu.Unlock()
		<-c.done
		return nil
	}
	cn.popLocked()
	if len(cn.inflight) > 0 {
		cn.startReader()
	} else {
		cn.reading = false
	}
	cn.mu.Unlock()
	c.rvalue, c.rcas, c.err = res.rvalue, res.rcas, res.err
	cn.srv.succeeded()
	return nil
}

// popLocked removes the oldest call in flight, its reply read, and keeps
// the stall deadline ahead while replies keep coming. Called with mu held.
func (cn *conn) popLocked() {
	cn.inflight[0] = nil
	cn.inflight = cn.inflight[1:]
	if len(cn.inflight) > 0 {
		if now := time.Now(); now.Sub(cn.armed) > cn.timeout/8 {
			// Not on every reply; a timer update per eighth of the
			// timeout is plenty.
			cn.nc.SetReadDeadline(now.Add(cn.timeout))
			cn.armed = now
		}
	}
}

// startReader hands the reader role to a new reader goroutine.
func (cn *conn) startReader() {
	cn.readers.Add(1)
	go cn.readLoop()
}

// readLoop is the reader goroutine: it parses replies while requests are
// in flight, then gives up the reader role (an idle connection is not
// read; see idleCheck).
func (cn *conn) readLoop() {
	for {
		cn.mu.Lock()
		if cn.err != nil {
			cn.mu.Unlock()
			return
		}
		if len(cn.inflight) == 0 {
			cn.reading = false
			cn.mu.Unlock()
			return
		}
		c, r := cn.inflight[0], cn.r
		cn.mu.Unlock()
		// Parsed into a scratch call: until it is popped below, a
		// concurrent fail may complete c and hand it back to its caller.
		res := call{op: c.op}
		if err := readReply(r, &res, c.opaque); err != nil {
			cn.fail(err)
			return
		}
		cn.mu.Lock()
		if cn.err != nil { // failed meanwhile: c was completed by fail
			cn.mu.Unlock()
			return
		}
		cn.popLocked()
		cn.mu.Unlock()
		c.rvalue, c.rcas, c.err = res.rvalue, res.rcas, res.err
		cn.srv.succeeded()
		c.done <- struct{}{}
	}
}

// fail closes the connection and fails every queued and in-flight call
// with err. Only the first failure counts.
func (cn *conn) fail(err error) {
	cn.mu.Lock()
	if cn.err != nil {
		cn.mu.Unlock()
		return
	}
	cn.err = err
	calls := append(cn.inflight, cn.queue...)
	cn.inflight, cn.queue = nil, nil
	nc := cn.nc
	cn.mu.Unlock()
	if nc != nil {
		nc.Close()
	}
	// A connection that fails with nothing queued or in flight (memcached
	// closing an idle connection, or the client closing) says nothing
	// about the server; a dead server shows at the next dial.
	if err != ErrClosed && len(calls) > 0 {
		cn.srv.failed(err)
	}
	for _, c := range calls {
		c.err = err
		c.done <- struct{}{}
	}
}

// close fails the connection as closed by the client.
func (cn *conn) close() { cn.fail(ErrClosed) }

func (cn *conn) failed() bool {
	cn.mu.Lock()
	defer cn.mu.Unlock()
	return cn.err != nil
}
