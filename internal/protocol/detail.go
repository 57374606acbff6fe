package protocol

import (
	"bytes"
	"cmp"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"

	"github.com/spaolacci/murmur3"
)

// prefixDelimiter ends a key's prefix for "stats detail" (memcached's -D
// default).
const prefixDelimiter = ':'

// prefixStats are memcached's "stats detail" counters: per key prefix (the
// key up to its first ':'; keys without one are not counted), the gets,
// hits, sets and deletes of the classic text commands, collected while
// "stats detail on" is in force. Handlers of one family share them.
type prefixStats struct {
	on   atomic.Bool
	mu   sync.Mutex
	m    map[string]*prefixCounts
	seen uint64 // prefixes created so far: their order
}

type prefixCounts struct{ seq, gets, hits, sets, dels uint64 }

// record counts one command on key when collection is on; the counter to
// move is chosen by the caller.
func (p *prefixStats) record(key []byte, count func(*prefixCounts)) {
	if !p.on.Load() {
		return
	}
	i := bytes.IndexByte(key, prefixDelimiter)
	if i < 0 {
		return
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	c := p.m[string(key[:i])]
	if c == nil {
		if p.m == nil {
			p.m = map[string]*prefixCounts{}
		}
		p.seen++
		c = &prefixCounts{seq: p.seen}
		p.m[string(key[:i])] = c
	}
	count(c)
}

func (p *prefixStats) get(key []byte, hit bool) {
	p.record(key, func(c *prefixCounts) {
		c.gets++
		if hit {
			c.hits++
		}
	})
}

func (p *prefixStats) set(key []byte)    { p.record(key, func(c *prefixCounts) { c.sets++ }) }
func (p *prefixStats) delete(key []byte) { p.record(key, func(c *prefixCounts) { c.dels++ }) }

// reset forgets every prefix ("stats reset").
func (p *prefixStats) reset() {
	p.mu.Lock()
	p.m = nil
	p.mu.Unlock()
}

// prefixBuckets is the size of memcached's prefix hash table: its dump
// lists the prefixes by bucket (murmur3, its default hash, of the prefix),
// the newest first within one.
const prefixBuckets = 256

func prefixBucket(name string) uint32 { return murmur3.Sum32([]byte(name)) % prefixBuckets }

// dump appends memcached's "stats detail dump" reply, in memcached's order.
func (p *prefixStats) dump(out []byte) []byte {
	p.mu.Lock()
	defer p.mu.Unlock()
	names := make([]string, 0, len(p.m))
	for name := range p.m {
		names = append(names, name)
	}
	slices.SortFunc(names, func(a, b string) int {
		if c := cmp.Compare(prefixBucket(a), prefixBucket(b)); c != 0 {
			return c
		}
		return cmp.Compare(p.m[b].seq, p.m[a].seq)
	})
	for _, name := range names {
		c := p.m[name]
		out = append(out, "PREFIX "...)
		out = append(out, name...)
		for _, f := range [...]struct {
			name string
			v    uint64
		}{{" get ", c.gets}, {" hit ", c.hits}, {" set ", c.sets}, {" del ", c.dels}} {
			out = append(out, f.name...)
			out = strconv.AppendUint(out, f.v, 10)
		}
		out = append(out, crlf...)
	}
	return append(out, rEnd...)
}

// statsDetail serves "stats detail on|off|dump".
func (s *Session) statsDetail(t [][]byte, n int) {
	p := &s.h.detail
	sub := ""
	if n >= 3 {
		sub = string(t[2])
	}
	switch sub {
	case "on", "off":
		p.on.Store(sub == "on")
		s.write(rOK)
	case "dump":
		s.out = p.dump(s.out[:0])
		s.write(s.out)
	default:
		s.write(rStatsDetail)
	}
}
