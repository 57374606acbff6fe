//go:build repcache

package main

import (
	"context"

	"github.com/repcache/repcache/internal/store"
	"github.com/repcache/repcache/internal/store/memory"
)

// repcache's own store: built only with -tags repcache (run.sh adds the tag
// when ../../internal/store/memory builds), because the package is being
// written concurrently. The nested module may import it: its path
// github.com/repcache/repcache/bench/storecompare is inside the tree rooted
// at github.com/repcache/repcache, so Go's internal-package rule allows it.

type repcacheA struct {
	s   *memory.Store
	ctx context.Context
}

func init() {
	register(factory{
		name:   "repcache",
		module: "github.com/repcache/repcache/internal/store/memory",
		notes:  "memory.New(memory.Options{MaxBytes: budget}) with defaults (MaxItemSize 1 MiB, sweeper 1 s / 60 passes); store.Store API: Store(ctx, store.Set, Item{Key, Value: 18-byte record, Flags, Deadline}, now), Get(ctx, key, buf, now); flags/CAS/deadline kept natively, re-encoded by the adapter after Get",
		new: func(n int, budget int64) (adapter, error) {
			s, err := memory.New(memory.Options{MaxBytes: budget})
			if err != nil {
				return nil, err
			}
			return &repcacheA{s: s, ctx: context.Background()}, nil
		},
	})
}

func (a *repcacheA) set(key []byte, flags uint32, cas uint64, deadline int64, data []byte, now int64) error {
	_, err := a.s.Store(a.ctx, store.Set, store.Item{Key: key, Value: data, Flags: flags, Deadline: deadline}, now)
	return err
}

func (a *repcacheA) get(key, buf []byte, now int64) ([]byte, bool) {
	// The value is appended to the tail of buf so the header can be encoded
	// in front without a second copy of the data.
	if cap(buf) < hdrLen {
		buf = make([]byte, 0, 256)
	}
	it, err := a.s.Get(a.ctx, key, buf[hdrLen:hdrLen], now)
	if err != nil {
		return nil, false
	}
	if len(it.Value) > 0 && cap(buf) >= hdrLen+len(it.Value) && &it.Value[0] == &buf[:hdrLen+1][hdrLen] {
		// The value landed in buf behind the header room: encode in front.
		encode(buf[:0], it.Flags, it.CAS, it.Deadline, nil)
		return buf[:hdrLen+len(it.Value)], true
	}
	// buf was too small and Get reallocated: build the encoding anew.
	return encode(make([]byte, 0, hdrLen+len(it.Value)), it.Flags, it.CAS, it.Deadline, it.Value), true
}

func (a *repcacheA) settle() {}
func (a *repcacheA) evictions() int64 {
	return int64(a.s.Stats().Evictions)
}
func (a *repcacheA) close() { _ = a.s.Close() }
