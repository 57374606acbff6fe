// Package storetest is the conformance suite every store.Store must pass:
// memcached's item semantics, checked the same way against each tier.
package storetest

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/repcache/repcache/internal/store"
)

// Now is the clock the suite passes to stores; a store under test must not
// consult any other clock for expiry.
const Now = int64(1_800_000_000)

// Run runs the suite. newStore returns an empty store for each subtest.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	ctx := context.Background()
	set := func(t *testing.T, s store.Store, mode store.Mode, key, val string, flags uint32, deadline int64, cas uint64) (uint64, error) {
		t.Helper()
		return s.Store(ctx, mode, store.Item{Key: []byte(key), Value: []byte(val), Flags: flags, Deadline: deadline, CAS: cas}, Now)
	}
	mustGet := func(t *testing.T, s store.Store, key string, now int64) store.Item {
		t.Helper()
		it, err := s.Get(ctx, []byte(key), nil, now)
		if err != nil {
			t.Fatalf("Get(%q): %v", key, err)
		}
		return it
	}
	mustMiss := func(t *testing.T, s store.Store, key string, now int64) {
		t.Helper()
		if it, err := s.Get(ctx, []byte(key), nil, now); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Get(%q) = %q, %v; want ErrNotFound", key, it.Value, err)
		}
	}
	wantErr := func(t *testing.T, what string, err, want error) {
		t.Helper()
		if !errors.Is(err, want) {
			t.Fatalf("%s: err = %v, want %v", what, err, want)
		}
	}

	t.Run("SetGet", func(t *testing.T) {
		s := newStore(t)
		cas, err := set(t, s, store.Set, "k", "hello", 42, 0, 0)
		if err != nil || cas == 0 {
			t.Fatalf("Set = %d, %v", cas, err)
		}
		it := mustGet(t, s, "k", Now)
		if string(it.Value) != "hello" || it.Flags != 42 || it.Deadline != 0 || it.CAS != cas {
			t.Fatalf("Get = %+v, want hello/42/0/%d", it, cas)
		}
		buf := []byte("prefix:")
		it, _ = s.Get(ctx, []byte("k"), buf, Now)
		if string(it.Value) != "prefix:hello" {
			t.Fatalf("Get with buf = %q", it.Value)
		}
		mustMiss(t, s, "other", Now)
		cas2, _ := set(t, s, store.Set, "k", "", 0, 0, 0)
		if cas2 == cas {
			t.Fatal("overwrite kept the CAS unique")
		}
		if it := mustGet(t, s, "k", Now); len(it.Value) != 0 {
			t.Fatalf("empty value read back as %q", it.Value)
		}
	})
	t.Run("Expiry", func(t *testing.T) {
		s := newStore(t)
		set(t, s, store.Set, "k", "v", 0, Now+10, 0)
		if it := mustGet(t, s, "k", Now+9); it.Deadline != Now+10 {
			t.Fatalf("deadline = %d, want %d", it.Deadline, Now+10)
		}
		mustMiss(t, s, "k", Now+10)
		// Deadlines far past memcached's 30-day relative limit are kept as is.
		far := Now + 400*86400
		set(t, s, store.Set, "far", "v", 0, far, 0)
		if it := mustGet(t, s, "far", Now+300*86400); it.Deadline != far {
			t.Fatalf("far deadline = %d, want %d", it.Deadline, far)
		}
		// Stored already expired: accepted, never visible, and add may reuse the key.
		if _, err := set(t, s, store.Set, "past", "v", 0, Now-1, 0); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, s, "past", Now)
		if _, err := set(t, s, store.Add, "past", "new", 0, 0, 0); err != nil {
			t.Fatalf("add over expired item: %v", err)
		}
	})
	t.Run("AddReplace", func(t *testing.T) {
		s := newStore(t)
		_, err := set(t, s, store.Replace, "k", "v", 0, 0, 0)
		wantErr(t, "replace missing", err, store.ErrNotStored)
		if _, err := set(t, s, store.Add, "k", "v1", 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		_, err = set(t, s, store.Add, "k", "v2", 0, 0, 0)
		wantErr(t, "add existing", err, store.ErrNotStored)
		if _, err := set(t, s, store.Replace, "k", "v3", 0, 0, 0); err != nil {
			t.Fatal(err)
		}
		if it := mustGet(t, s, "k", Now); string(it.Value) != "v3" {
			t.Fatalf("value = %q, want v3", it.Value)
		}
	})
	t.Run("CAS", func(t *testing.T) {
		s := newStore(t)
		_, err := set(t, s, store.CAS, "k", "v", 0, 0, 1)
		wantErr(t, "cas missing", err, store.ErrNotFound)
		cas, _ := set(t, s, store.Set, "k", "v", 0, 0, 0)
		_, err = set(t, s, store.CAS, "k", "x", 0, 0, cas+1)
		wantErr(t, "cas mismatch", err, store.ErrExists)
		if _, err := set(t, s, store.CAS, "k", "y", 0, 0, cas); err != nil {
			t.Fatal(err)
		}
		if it := mustGet(t, s, "k", Now); string(it.Value) != "y" {
			t.Fatalf("value = %q, want y", it.Value)
		}
	})
	t.Run("AppendPrepend", func(t *testing.T) {
		s := newStore(t)
		_, err := set(t, s, store.Append, "k", "x", 0, 0, 0)
		wantErr(t, "append missing", err, store.ErrNotStored)
		set(t, s, store.Set, "k", "mid", 7, Now+100, 0)
		set(t, s, store.Append, "k", ">>", 9, Now+5, 0)
		set(t, s, store.Prepend, "k", "<<", 9, Now+5, 0)
		it := mustGet(t, s, "k", Now)
		if string(it.Value) != "<<mid>>" || it.Flags != 7 || it.Deadline != Now+100 {
			t.Fatalf("after append/prepend: %+v; want <<mid>> keeping flags 7 and deadline", it)
		}
	})
	t.Run("Incr", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Incr(ctx, []byte("n"), 1, false, Now)
		wantErr(t, "incr missing", err, store.ErrNotFound)
		set(t, s, store.Set, "n", "099", 3, Now+100, 0)
		if v, err := s.Incr(ctx, []byte("n"), 1, false, Now); v != 100 || err != nil {
			t.Fatalf("incr = %d, %v", v, err)
		}
		if v, _ := s.Incr(ctx, []byte("n"), 1, true, Now); v != 99 {
			t.Fatalf("decr = %d", v)
		}
		it := mustGet(t, s, "n", Now)
		if string(it.Value) != "99 " || it.Flags != 3 || it.Deadline != Now+100 {
			t.Fatalf("shorter result: %+v; want \"99 \" padded in place", it)
		}
		if v, _ := s.Incr(ctx, []byte("n"), 1000, true, Now); v != 0 {
			t.Fatalf("decr below zero = %d, want 0", v)
		}
		if v, _ := s.Incr(ctx, []byte("n"), 1<<64-1, false, Now); v != 1<<64-1 {
			t.Fatalf("incr to max = %d", v)
		}
		if v, _ := s.Incr(ctx, []byte("n"), 2, false, Now); v != 1 {
			t.Fatalf("incr wrap = %d, want 1", v)
		}
		set(t, s, store.Set, "n", "9", 0, 0, 0)
		s.Incr(ctx, []byte("n"), 1, false, Now)
		if it := mustGet(t, s, "n", Now); string(it.Value) != "10" {
			t.Fatalf("longer result = %q, want 10", it.Value)
		}
		for _, bad := range []string{"", "abc", "12abc", "-1", "123456789012345678901"} {
			set(t, s, store.Set, "b", bad, 0, 0, 0)
			_, err := s.Incr(ctx, []byte("b"), 1, false, Now)
			wantErr(t, fmt.Sprintf("incr %q", bad), err, store.ErrNonNumeric)
		}
	})
	t.Run("TouchDelete", func(t *testing.T) {
		s := newStore(t)
		_, err := s.Touch(ctx, []byte("k"), Now+5, nil, Now)
		wantErr(t, "touch missing", err, store.ErrNotFound)
		cas, _ := set(t, s, store.Set, "k", "v", 0, Now+5, 0)
		it, err := s.Touch(ctx, []byte("k"), Now+50, nil, Now)
		if err != nil || string(it.Value) != "v" || it.Deadline != Now+50 || it.CAS != cas {
			t.Fatalf("Touch = %+v, %v", it, err)
		}
		mustGet(t, s, "k", Now+20)
		wantErr(t, "delete missing", s.Delete(ctx, []byte("nope"), Now), store.ErrNotFound)
		if err := s.Delete(ctx, []byte("k"), Now); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, s, "k", Now)
	})
	t.Run("Flush", func(t *testing.T) {
		s := newStore(t)
		for i := 0; i < 100; i++ {
			set(t, s, store.Set, fmt.Sprint("k", i), "v", 0, 0, 0)
		}
		if err := s.Flush(ctx); err != nil {
			t.Fatal(err)
		}
		for i := 0; i < 100; i++ {
			mustMiss(t, s, fmt.Sprint("k", i), Now)
		}
		set(t, s, store.Set, "after", "v", 0, 0, 0)
		mustGet(t, s, "after", Now)
	})
	t.Run("BinaryKeysAndValues", func(t *testing.T) {
		s := newStore(t)
		key := "\x10\x10\x10\x10\x10\x10\x10\x10key" // memcaslap's keys
		val := "a\r\nb\x00c"
		set(t, s, store.Set, key, val, 0, 0, 0)
		if it := mustGet(t, s, key, Now); string(it.Value) != val {
			t.Fatalf("value = %q", it.Value)
		}
	})
}
