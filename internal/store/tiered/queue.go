package tiered

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/repcache/repcache/internal/store"
)

// queue is the async backup queue: bounded in writes and in bytes, FIFO.
// The flusher takes a batch, applies it, and retries what failed with
// backoff until it lands, so a short backup stall costs nothing but queue
// space; writes are dropped only when the bound is reached (counted, and
// logged once per episode) or at shutdown past its deadline.
type queue struct {
	s        *Store
	mu       sync.Mutex
	ops      []queued
	head     int
	bytes    int64 // bytes queued or being applied
	maxOps   int
	maxBytes int64
	wake     chan struct{}
	closing  bool
	dropping bool   // in a drop episode (logged once, at its start)
	dropped  uint64 // drops in this episode
	// keys counts the writes queued or being applied per key: while a key
	// has one, the backup is behind the cache for it and must not answer
	// for it (a queued delete would come back from the backup).
	keys   map[string]int
	stop   context.Context
	cancel context.CancelFunc
	done   chan struct{}
}

// queued is an async backup write and the flush generation it was issued in.
type queued struct {
	op  store.Op
	gen uint64
}

func opBytes(op store.Op) int64 { return int64(len(op.Item.Key) + len(op.Item.Value) + 64) }

func newQueue(s *Store, maxOps int, maxBytes int64) *queue {
	q := &queue{s: s, maxOps: maxOps, maxBytes: maxBytes, wake: make(chan struct{}, 1), done: make(chan struct{}), keys: map[string]int{}}
	q.stop, q.cancel = context.WithCancel(context.Background())
	return q
}

// closeNow is for a Store without a backup: nothing will ever be queued.
func (q *queue) closeNow() {
	q.closing = true
	close(q.done)
}

func (q *queue) signal() {
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// push queues op (copied), or drops it when the queue is full or closing.
func (q *queue) push(op store.Op) {
	op.Item.Key = append([]byte(nil), op.Item.Key...)
	op.Item.Value = append([]byte(nil), op.Item.Value...)
	n := opBytes(op)
	q.mu.Lock()
	if q.closing || len(q.ops)-q.head >= q.maxOps || q.bytes+n > q.maxBytes {
		q.s.Counts.AsyncDropped.Add(1)
		q.dropped++
		start := !q.dropping && !q.closing
		q.dropping = true
		pending, bytes := len(q.ops)-q.head, q.bytes
		q.mu.Unlock()
		if start {
			q.s.o.Logger.Error("async backup queue full: dropping backup writes until it drains (the cache still has them)",
				"queued", pending, "bytes", bytes, "max_writes", q.maxOps, "max_bytes", q.maxBytes)
		}
		return
	}
	q.ops = append(q.ops, queued{op, q.s.flushGen.Load()})
	q.bytes += n
	q.keys[string(op.Item.Key)]++
	q.mu.Unlock()
	q.signal()
}

// take removes up to n writes, waiting for one; nil once closing and empty.
func (q *queue) take(n int) []queued {
	for {
		q.mu.Lock()
		if avail := len(q.ops) - q.head; avail > 0 {
			k := min(n, avail)
			batch := append([]queued(nil), q.ops[q.head:q.head+k]...)
			clear(q.ops[q.head : q.head+k])
			q.head += k
			if q.head == len(q.ops) {
				q.ops, q.head = q.ops[:0], 0
			} else if q.head > 4096 && q.head > len(q.ops)/2 {
				q.ops, q.head = append(q.ops[:0], q.ops[q.head:]...), 0
			}
			q.mu.Unlock()
			return batch
		}
		closing := q.closing
		q.mu.Unlock()
		if closing {
			return nil
		}
		<-q.wake
	}
}

// behind reports whether key has an async write queued or being applied.
func (q *queue) behind(key []byte) bool {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.keys[string(key)] > 0
}

// applied releases a batch's bytes and keys (written or given up); an
// empty queue ends a drop episode.
func (q *queue) applied(batch []queued) {
	var n int64
	for _, b := range batch {
		n += opBytes(b.op)
	}
	q.mu.Lock()
	q.bytes -= n
	for _, b := range batch {
		k := string(b.op.Item.Key)
		if q.keys[k]--; q.keys[k] <= 0 {
			delete(q.keys, k)
		}
	}
	ended := q.dropping && len(q.ops) == q.head
	dropped := q.dropped
	if ended {
		q.dropping, q.dropped = false, 0
	}
	q.mu.Unlock()
	if ended {
		q.s.o.Logger.Warn("async backup queue drained: backup writes accepted again", "dropped", dropped)
	}
}

// length is the number of writes waiting (not yet taken).
func (q *queue) length() int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return len(q.ops) - q.head
}

func (q *queue) size() int64 {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.bytes
}

// flusher applies queued backup writes in batches until the queue is
// closed and empty, or drain gives up.
func (q *queue) flusher() {
	defer close(q.done)
	s := q.s
	failing := false
	for {
		batch := q.take(s.o.BatchSize)
		if batch == nil {
			return
		}
		if q.stop.Err() != nil { // drain gave up: what is left is dropped
			s.Counts.AsyncDropped.Add(uint64(len(batch)))
			q.applied(batch)
			continue
		}
		taken := batch // released once written or given up
		ops := make([]store.Op, 0, len(batch))
		for attempt := 0; ; attempt++ {
			s.applyMu.Lock()
			gen := s.flushGen.Load()
			ops = ops[:0]
			for _, b := range batch {
				if b.gen == gen { // older ones were wiped by a flush_all
					ops = append(ops, b.op)
				}
			}
			var err error
			if len(ops) > 0 {
				ops, err = s.apply(ops)
			}
			s.applyMu.Unlock()
			if len(ops) == 0 {
				if failing {
					failing = false
					s.o.Logger.Warn("async backup writes succeed again", "retries", attempt)
				}
				break
			}
			if !failing {
				failing = true
				s.o.Logger.Warn("async backup writes failing: kept in the queue and retried", "failed", len(ops), "err", detail(err))
			}
			s.Counts.AsyncRetries.Add(1)
			if s.o.Retry.Sleep(q.stop, attempt) != nil {
				s.Counts.AsyncDropped.Add(uint64(len(ops)))
				break
			}
			// Only the failed writes are retried (apply dropped those that
			// a later write of the same key in the batch supersedes).
			batch = make([]queued, 0, len(ops))
			for _, op := range ops {
				batch = append(batch, queued{op, gen}) // a flush_all meanwhile supersedes them
			}
		}
		q.applied(taken)
	}
}

// apply writes ops to the backup and returns those that failed (to retry)
// with the first failure. A failed write that a later one of the same key
// in the batch succeeded over is not retried: it would undo the later one.
func (s *Store) apply(ops []store.Op) ([]store.Op, error) {
	ctx, cancel := context.WithTimeout(context.Background(), s.o.BatchTimeout)
	defer cancel()
	now := time.Now().Unix()
	var errs []error
	if b, ok := s.backup.(interface {
		ApplyBatch(ctx context.Context, ops []store.Op, now int64) []error
	}); ok {
		errs = b.ApplyBatch(ctx, ops, now)
	} else {
		errs = make([]error, len(ops))
		for i, op := range ops {
			if op.Delete {
				errs[i] = s.backup.Delete(ctx, op.Item.Key, store.DeleteOptions{}, now)
			} else {
				_, errs[i] = s.backup.Store(ctx, store.Set, op.Item, now)
			}
		}
	}
	var (
		retry []store.Op
		first error
		later = map[string]bool{}
	)
	for i := len(ops) - 1; i >= 0; i-- {
		k := string(ops[i].Item.Key)
		if failed(errs[i]) {
			if first == nil {
				first = errs[i]
			}
			if !later[k] {
				retry = append(retry, ops[i])
			}
		}
		later[k] = true
	}
	for i, j := 0, len(retry)-1; i < j; i, j = i+1, j-1 {
		retry[i], retry[j] = retry[j], retry[i]
	}
	ok := len(ops) - countFailed(errs)
	s.Counts.AsyncWritten.Add(uint64(ok))
	s.backupWrite("async", true, ok)
	s.backupWrite("async", false, countFailed(errs))
	if first != nil {
		s.Counts.BackupErrors.Add(uint64(countFailed(errs)))
	}
	return retry, first
}

func countFailed(errs []error) int {
	n := 0
	for _, err := range errs {
		if failed(err) {
			n++
		}
	}
	return n
}

// drain stops accepting writes and waits until the queued ones are written
// or ctx ends; then what is left is dropped and counted.
func (q *queue) drain(ctx context.Context) error {
	q.mu.Lock()
	q.closing = true
	q.mu.Unlock()
	q.signal()
	select {
	case <-q.done:
		return nil
	case <-ctx.Done():
		q.cancel()
		<-q.done
		n := q.length()
		q.s.Counts.AsyncDropped.Add(uint64(n))
		return fmt.Errorf("backup queue not drained: %d writes left: %w", n, ctx.Err())
	}
}
