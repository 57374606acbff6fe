package mcclient

import (
	"bufio"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
)

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
// requests, and an idle connection costs the caller no hand-off to another
// goroutine). One reader goroutine per connection parses replies in order
// and completes the calls in flight.
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
	err      error   // set once the connection failed; final
	queue    []*call // waiting to be written
	spare    []*call // the previous queue's array, reused
	writing  bool    // a caller is writing (or dialing)
	inflight []*call // written, awaiting replies, oldest first
	opaque   uint32
	wbuf     []byte
	armed    time.Time     // when the read (stall) deadline was last set
	writes   atomic.Uint64 // write calls, for the batching test
}

// submit queues c and, if no write is in progress, writes the queue. It
// returns an error only if the connection had already failed (c was not
// queued and never sent).
func (cn *conn) submit(c *call) error {
	cn.mu.Lock()
	if cn.err != nil {
		err := cn.err
		cn.mu.Unlock()
		return err
	}
	cn.queue = append(cn.queue, c)
	if cn.writing {
		cn.mu.Unlock()
		return nil
	}
	cn.writing = true
	cn.mu.Unlock()
	// Let the goroutines that are ready to run (other clients' sessions
	// with a request in hand) queue theirs first, so that one write
	// carries them all; with nothing else to run this returns at once.
	runtime.Gosched()
	cn.mu.Lock()
	cn.flushLocked()
	return nil
}

// flushLocked writes the queue until it is empty. Called with mu held and
// writing set; returns with mu released.
func (cn *conn) flushLocked() {
	for {
		if cn.nc == nil {
			cn.mu.Unlock()
			nc, err := cn.srv.dial(cn.timeout)
			if err != nil {
				cn.fail(err)
				return
			}
			cn.mu.Lock()
			if cn.err != nil { // closed while dialing
				cn.mu.Unlock()
				nc.Close()
				return
			}
			cn.nc = nc
			go cn.readLoop(bufio.NewReaderSize(nc, 64<<10))
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
			return
		}
		if len(cn.queue) == 0 || cn.err != nil {
			cn.writing = false
			cn.mu.Unlock()
			return
		}
	}
}

// readLoop parses replies until the connection fails.
func (cn *conn) readLoop(r *bufio.Reader) {
	for {
		cn.mu.Lock()
		if cn.err != nil {
			cn.mu.Unlock()
			return
		}
		var c *call
		if len(cn.inflight) > 0 {
			c = cn.inflight[0]
		}
		cn.mu.Unlock()
		if c == nil {
			// Nothing in flight: wait for the next request's reply, or
			// notice the server closing the connection.
			if _, err := r.Peek(1); err != nil {
				cn.fail(err)
				return
			}
			cn.mu.Lock()
			stray := len(cn.inflight) == 0 && cn.err == nil
			cn.mu.Unlock()
			if stray {
				cn.fail(&ProtocolError{Msg: "reply with no request in flight"})
				return
			}
			continue
		}
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
		cn.inflight[0] = nil
		cn.inflight = cn.inflight[1:]
		if len(cn.inflight) == 0 {
			cn.nc.SetReadDeadline(time.Time{})
			cn.armed = time.Time{}
		} else if now := time.Now(); now.Sub(cn.armed) > cn.timeout/8 {
			// Replies keep coming: push the stall deadline on (not on
			// every reply; a timer update per eighth of the timeout is
			// plenty).
			cn.nc.SetReadDeadline(now.Add(cn.timeout))
			cn.armed = now
		}
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
