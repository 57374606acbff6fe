// Package backoff is repcache's one retry-delay rule: exponential growth
// from Base to Max with full jitter, and a sleep that ends with its context.
//
// It is a few lines rather than github.com/cenkalti/backoff because every
// caller here needs only "the delay before attempt n" (accept loops, a
// transaction retry, a server's re-probe, the async backup queue), not that
// library's stateful BackOff objects or its Retry closure shape.
package backoff

import (
	"context"
	"math/rand/v2"
	"time"
)

// Policy is an exponential backoff: attempt 0 waits up to Base, each later
// attempt up to twice as long, never more than Max.
type Policy struct {
	Base, Max time.Duration
}

// Ceiling is the longest delay attempt n may wait.
func (p Policy) Ceiling(n int) time.Duration {
	d := p.Base
	for i := 0; i < n && d < p.Max; i++ {
		d *= 2
	}
	return min(d, p.Max)
}

// Delay is attempt n's delay: uniformly random up to Ceiling(n) ("full
// jitter"), so that many clients retrying at once spread out.
func (p Policy) Delay(n int) time.Duration {
	c := p.Ceiling(n)
	if c <= 0 {
		return 0
	}
	return rand.N(c) + 1
}

// Sleep waits attempt n's delay, or until ctx ends, whose error it returns.
func (p Policy) Sleep(ctx context.Context, n int) error {
	t := time.NewTimer(p.Delay(n))
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
