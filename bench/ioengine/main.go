// Command ioengine compares connection engines for repcache's embedded store:
// Go's goroutine per connection (what repcache runs) against an event loop
// (github.com/panjf2000/gnet/v2) and against a hybrid (a goroutine per
// connection that waits on an epoll set of its own instead of Go's
// read-until-EAGAIN), with the same minimal get/set protocol code and the
// same store, so the figures show the I/O model's cost and nothing else. It is an evaluation tool for docs/benchmarks.md, not a
// server: it speaks only "get KEY" and "set KEY FLAGS EXPTIME BYTES".
//
//	ioengine -engine goroutine|gnet -listen 127.0.0.1:PORT
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"net"
	"os"
	"strconv"
	"time"

	"github.com/panjf2000/gnet/v2"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memory"
)

func main() {
	engine := flag.String("engine", "goroutine", "goroutine, gnet or hybrid")
	listen := flag.String("listen", "127.0.0.1:11311", "TCP address")
	loops := flag.Int("loops", 2, "gnet event loops")
	flag.Parse()
	st, err := memory.New(memory.Options{MaxBytes: 1 << 30})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	p := &proto{st: st}
	switch *engine {
	case "goroutine":
		err = serveGoroutines(*listen, p)
	case "hybrid":
		err = serveHybrid(*listen, p)
	case "gnet":
		err = gnet.Run(&loop{p: p}, "tcp://"+*listen, gnet.WithMulticore(true), gnet.WithNumEventLoop(*loops), gnet.WithReusePort(false))
	default:
		err = fmt.Errorf("unknown engine %q", *engine)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
}

// proto is the protocol code both engines share: it answers every complete
// request at the start of in, appending replies to out, and reports how
// many bytes it consumed (an incomplete request is left for later).
type proto struct{ st *memory.Store }

var (
	rEnd    = []byte("END\r\n")
	rStored = []byte("STORED\r\n")
	rError  = []byte("ERROR\r\n")
	rVer    = []byte("VERSION ioengine\r\n")
)

func (p *proto) serve(in, out []byte, val []byte) (consumed int, _ []byte, _ []byte) {
	ctx := context.Background()
	for {
		rest := in[consumed:]
		i := bytes.IndexByte(rest, '\n')
		if i < 0 {
			return consumed, out, val
		}
		line := bytes.TrimSuffix(rest[:i], []byte("\r"))
		f := bytes.Fields(line)
		switch {
		case len(f) == 2 && string(f[0]) == "get":
			it, err := p.st.Get(ctx, f[1], val[:0], time.Now().Unix())
			if err == nil {
				val = it.Value
				out = append(out, "VALUE "...)
				out = append(out, f[1]...)
				out = append(out, ' ')
				out = strconv.AppendUint(out, uint64(it.Flags), 10)
				out = append(out, ' ')
				out = strconv.AppendInt(out, int64(len(it.Value)), 10)
				out = append(out, "\r\n"...)
				out = append(out, it.Value...)
				out = append(out, "\r\n"...)
			}
			out = append(out, rEnd...)
			consumed += i + 1
		case len(f) == 1 && string(f[0]) == "version":
			out = append(out, rVer...)
			consumed += i + 1
		case (len(f) == 5 || len(f) == 6 && string(f[5]) == "noreply") && string(f[0]) == "set":
			n, _ := strconv.Atoi(string(f[4]))
			if len(rest) < i+1+n+2 {
				return consumed, out, val
			}
			flags, _ := strconv.ParseUint(string(f[2]), 10, 32)
			data := rest[i+1 : i+1+n]
			p.st.Store(ctx, store.Set, store.Item{Key: f[1], Value: data, Flags: uint32(flags)}, time.Now().Unix())
			if len(f) == 5 {
				out = append(out, rStored...)
			}
			consumed += i + 1 + n + 2
		default:
			out = append(out, rError...)
			consumed += i + 1
		}
	}
}

// acceptLoop serves each connection of addr in a goroutine of its own.
func acceptLoop(addr string, serve func(*net.TCPConn)) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	for {
		c, err := ln.Accept()
		if err != nil {
			return err
		}
		go serve(c.(*net.TCPConn))
	}
}

// serveGoroutines is repcache's design: a goroutine per connection, a
// blocking read, the replies to what was read written in one call.
func serveGoroutines(addr string, p *proto) error {
	return acceptLoop(addr, func(c *net.TCPConn) {
		defer c.Close()
		var cs connState
		buf := make([]byte, 16<<10)
		for {
			n, err := c.Read(buf)
			if err != nil || cs.answer(p, c, buf[:n]) != nil {
				return
			}
		}
	})
}

// loop is the event-loop design: each loop thread waits in epoll_wait and
// serves every ready connection in turn, with no goroutine per connection.
type loop struct {
	gnet.BuiltinEventEngine
	p *proto
}

// connState is one connection's buffers.
type connState struct{ in, out, val []byte }

// answer takes what was read from c, answers the complete requests in what
// has arrived, and writes the replies to c.
func (cs *connState) answer(p *proto, c net.Conn, read []byte) error {
	cs.in = append(cs.in, read...)
	var used int
	used, cs.out, cs.val = p.serve(cs.in, cs.out[:0], cs.val)
	cs.in = append(cs.in[:0], cs.in[used:]...)
	if len(cs.out) == 0 {
		return nil
	}
	_, err := c.Write(cs.out)
	return err
}

func (l *loop) OnOpen(c gnet.Conn) ([]byte, gnet.Action) {
	c.SetContext(&connState{})
	return nil, gnet.None
}

func (l *loop) OnTraffic(c gnet.Conn) gnet.Action {
	cs := c.Context().(*connState)
	in, _ := c.Peek(-1)
	var used int
	used, cs.out, cs.val = l.p.serve(in, cs.out[:0], cs.val)
	c.Discard(used)
	if len(cs.out) > 0 {
		c.Write(cs.out)
	}
	return gnet.None
}
