package memory

import (
	"bytes"
	"sync/atomic"
)

// expiryBuffer is how many reclaimed keys may wait for Options.OnExpire.
const expiryBuffer = 4096

// expiries hands the keys of reclaimed expired items to Options.OnExpire
// from a goroutine of its own, so that what the sink does (the policy's map
// lookup and metrics) never runs under a shard lock. A key that finds the
// buffer full is not delivered, and counted.
type expiries struct {
	c       chan []byte
	stop    chan struct{}
	done    chan struct{}
	dropped atomic.Uint64
}

func newExpiries(sink func(key []byte)) *expiries {
	e := &expiries{c: make(chan []byte, expiryBuffer), stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(e.done)
		for {
			select {
			case k := <-e.c:
				sink(k)
			case <-e.stop:
				return
			}
		}
	}()
	return e
}

// add queues key (copied: it lies in a ring); it never blocks.
func (e *expiries) add(key []byte) {
	select {
	case e.c <- bytes.Clone(key):
	default:
		e.dropped.Add(1)
	}
}

// close stops the delivery; keys still queued are not delivered. The
// channel stays open, so a late add cannot panic.
func (e *expiries) close() {
	close(e.stop)
	<-e.done
}
