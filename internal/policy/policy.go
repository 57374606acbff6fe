// Package policy decides, for every request, which map its key belongs to
// and what that map's rules make of it: the lifetime a record gets (through
// package ttl), whether its value is a valid record of the map's kind,
// whether the listener may read or write it, and under which key the store
// keeps it. A Layer applies a Policy in front of a store.Store, so the
// protocol layer above it sees memcached semantics and the tiers below it
// see only valid records with absolute deadlines.
package policy

import (
	"bytes"
	"slices"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/ttl"
)

// CleanupKey is the key dict_cache writes after a full cleanup pass, after
// the map's prefix. It is not a record and is stored as the client sent it.
const CleanupKey = "_LAST_CACHE_CLEANUP_COMPLETED_"

// Map is one configured map.
type Map struct {
	Name   string
	Prefix string
	Rule   ttl.Rule
	// MaxKeyLength is the longest key accepted on this map. Keys longer than
	// the policy's store limit are kept under a fixed-length digest.
	MaxKeyLength int
	// Route is what the layers below the policy learn of a request of this
	// map (its name and backup rule); New sets Route.Map to Name.
	Route store.Route
}

// Typed reports whether the map reads its records (postscreen, verify).
func (m *Map) Typed() bool { return m.Rule.Kind == ttl.Postscreen || m.Rule.Kind == ttl.Verify }

// Policy is the set of maps and what to do with keys outside them.
type Policy struct {
	metrics       *Metrics
	maps          []*Map // longest prefix first
	rejectUnknown bool
	storeKeyLimit int
}

// Options configure a Policy.
type Options struct {
	// RejectUnknown refuses keys that match no map (unknown_keys: reject);
	// otherwise they are served with memcached semantics.
	RejectUnknown bool
	// StoreKeyLimit is the longest key stored as is (memcached's 250); map
	// keys beyond it are stored under a digest.
	StoreKeyLimit int
	// Metrics, when not nil, receive what the policy observes (see
	// NewMetrics); the policy creates its maps' series there.
	Metrics *Metrics
}

// New builds a Policy. The maps come from a validated configuration
// (config.Validate checks names, prefixes and rules, once, in the
// operator's terms).
func New(maps []Map, o Options) *Policy {
	if o.StoreKeyLimit <= 0 {
		o.StoreKeyLimit = 250
	}
	p := &Policy{rejectUnknown: o.RejectUnknown, storeKeyLimit: o.StoreKeyLimit, metrics: o.Metrics}
	for _, m := range maps {
		m.MaxKeyLength = max(m.MaxKeyLength, o.StoreKeyLimit)
		m.Route.Map = m.Name
		p.maps = append(p.maps, &m)
	}
	slices.SortStableFunc(p.maps, func(a, b *Map) int { return len(b.Prefix) - len(a.Prefix) })
	if p.metrics != nil {
		p.metrics.addSeries(p)
	}
	return p
}

// Maps returns the maps, longest prefix first.
func (p *Policy) Maps() []*Map { return p.maps }

// Lookup returns the map whose prefix key starts with, or nil.
func (p *Policy) Lookup(key []byte) *Map {
	for _, m := range p.maps {
		if bytes.HasPrefix(key, []byte(m.Prefix)) {
			return m
		}
	}
	return nil
}

// Map returns the map named name, or nil.
func (p *Policy) Map(name string) *Map {
	for _, m := range p.maps {
		if m.Name == name {
			return m
		}
	}
	return nil
}

// storageKey is the key the store keeps: the client's key, or for keys over
// the store limit the map's prefix and a digest of the whole key, so every
// backend (memcached's is 250 bytes) accepts it and keys stay distinct.
func (p *Policy) storageKey(m *Map, key []byte, buf []byte) []byte {
	if len(key) <= p.storeKeyLimit {
		return key
	}
	return store.AppendDigest(append(buf[:0], m.Prefix...), key)
}

// prefixOf names an unknown key's prefix for error messages: up to and
// including its first ':', else the first 32 bytes.
func prefixOf(key []byte) string {
	if i := bytes.IndexByte(key, ':'); i >= 0 {
		return string(key[:i+1])
	}
	return string(key[:min(len(key), 32)])
}
