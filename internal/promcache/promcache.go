// Package promcache keeps the children of a three-label counter vector that
// a request path asks for again and again. client_golang hashes and
// validates the label values on every WithLabelValues and takes a lock;
// its documentation advises keeping the returned Counter instead, which
// this does for label sets not known in advance (map names come from the
// configuration, and a reload may add some).
package promcache

import (
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
)

// Counters caches the children of a CounterVec with three labels. Lookups
// take no lock: the cache is an immutable map replaced on each new label
// set, and label sets are few (maps x commands x statuses).
type Counters struct {
	vec *prometheus.CounterVec
	mu  sync.Mutex // serialises additions
	m   atomic.Pointer[map[[3]string]prometheus.Counter]
}

// New caches the children of vec, which must have three labels.
func New(vec *prometheus.CounterVec) *Counters {
	c := &Counters{vec: vec}
	c.m.Store(&map[[3]string]prometheus.Counter{})
	return c
}

// With returns the child for the label values a, b, d, in vec's order.
func (c *Counters) With(a, b, d string) prometheus.Counter {
	k := [3]string{a, b, d}
	if ctr, ok := (*c.m.Load())[k]; ok {
		return ctr
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	old := *c.m.Load()
	if ctr, ok := old[k]; ok {
		return ctr
	}
	next := make(map[[3]string]prometheus.Counter, len(old)+1)
	for key, ctr := range old {
		next[key] = ctr
	}
	ctr := c.vec.WithLabelValues(a, b, d)
	next[k] = ctr
	c.m.Store(&next)
	return ctr
}
