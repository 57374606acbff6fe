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
		_, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1}, Now)
		wantErr(t, "incr missing", err, store.ErrNotFound)
		set(t, s, store.Set, "n", "099", 3, Now+100, 0)
		if c, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1}, Now); c.Value != 100 || err != nil {
			t.Fatalf("incr = %d, %v", c.Value, err)
		}
		if c, _ := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1, Decr: true}, Now); c.Value != 99 {
			t.Fatalf("decr = %d", c.Value)
		}
		it := mustGet(t, s, "n", Now)
		if string(it.Value) != "99 " || it.Flags != 3 || it.Deadline != Now+100 {
			t.Fatalf("shorter result: %+v; want \"99 \" padded in place", it)
		}
		if c, _ := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1000, Decr: true}, Now); c.Value != 0 {
			t.Fatalf("decr below zero = %d, want 0", c.Value)
		}
		if c, _ := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1<<64 - 1}, Now); c.Value != 1<<64-1 {
			t.Fatalf("incr to max = %d", c.Value)
		}
		if c, _ := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 2}, Now); c.Value != 1 {
			t.Fatalf("incr wrap = %d, want 1", c.Value)
		}
		set(t, s, store.Set, "n", "9", 0, 0, 0)
		s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1}, Now)
		if it := mustGet(t, s, "n", Now); string(it.Value) != "10" {
			t.Fatalf("longer result = %q, want 10", it.Value)
		}
		for _, bad := range []string{"", "abc", "12abc", "-1", "123456789012345678901"} {
			set(t, s, store.Set, "b", bad, 0, 0, 0)
			_, err := s.Incr(ctx, []byte("b"), store.IncrOptions{Delta: 1}, Now)
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
		wantErr(t, "delete missing", s.Delete(ctx, []byte("nope"), store.DeleteOptions{}, Now), store.ErrNotFound)
		if err := s.Delete(ctx, []byte("k"), store.DeleteOptions{}, Now); err != nil {
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
	// The conditional and meta operations: a tier implements each fully or
	// refuses it with store.ErrUnsupported, leaving the item as it was.
	unsupported := func(t *testing.T, s store.Store, err error, key, val string) bool {
		t.Helper()
		if !errors.Is(err, store.ErrUnsupported) {
			return false
		}
		if it := mustGet(t, s, key, Now); string(it.Value) != val {
			t.Fatalf("a refused operation changed %q to %q", key, it.Value)
		}
		return true
	}
	t.Run("ConditionalIncr", func(t *testing.T) {
		s := newStore(t)
		cas, _ := set(t, s, store.Set, "n", "5", 0, Now+100, 0)
		_, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 1, CAS: cas + 1}, Now)
		if unsupported(t, s, err, "n", "5") {
			return
		}
		wantErr(t, "incr with a wrong CAS", err, store.ErrExists)
		c, err := s.Incr(ctx, []byte("n"), store.IncrOptions{Delta: 2, CAS: cas, Touch: true, Deadline: Now + 500}, Now)
		if err != nil || c.Value != 7 || c.Deadline != Now+100 || c.Created {
			t.Fatalf("incr with the CAS and a touch = %+v, %v; want 7, deadline before the touch", c, err)
		}
		if it := mustGet(t, s, "n", Now); it.CAS != c.CAS || it.Deadline != Now+500 || string(it.Value) != "7" {
			t.Fatalf("after incr: %+v; want CAS %d, deadline %d", it, c.CAS, Now+500)
		}
		c, err = s.Incr(ctx, []byte("new"), store.IncrOptions{Delta: 1, Vivify: true, Initial: 40, VivifyDeadline: Now + 60}, Now)
		if err != nil || !c.Created || c.Value != 40 || c.Deadline != 0 {
			t.Fatalf("incr vivify = %+v, %v; want created with 40", c, err)
		}
		if it := mustGet(t, s, "new", Now); string(it.Value) != "40" || it.Deadline != Now+60 || it.CAS != c.CAS {
			t.Fatalf("vivified item %+v", it)
		}
		if c, err := s.Incr(ctx, []byte("new"), store.IncrOptions{Delta: 1, Vivify: true, Initial: 40}, Now); err != nil || c.Created || c.Value != 41 {
			t.Fatalf("incr vivify of a present item = %+v, %v", c, err)
		}
	})
	t.Run("ConditionalDelete", func(t *testing.T) {
		s := newStore(t)
		cas, _ := set(t, s, store.Set, "k", "v", 0, Now+100, 0)
		err := s.Delete(ctx, []byte("k"), store.DeleteOptions{MatchCAS: true, CAS: cas + 1}, Now)
		if unsupported(t, s, err, "k", "v") {
			return
		}
		wantErr(t, "delete with a wrong CAS", err, store.ErrExists)
		if err := s.Delete(ctx, []byte("k"), store.DeleteOptions{MatchCAS: true, CAS: cas, Invalidate: true, Touch: true, Deadline: Now + 30}, Now); err != nil {
			t.Fatalf("invalidate: %v", err)
		}
		it, st, err := s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{}, Now)
		if err != nil || string(it.Value) != "v" || it.CAS == cas || it.Deadline != Now+30 || !st.Stale || !st.Won || st.TokenSent {
			t.Fatalf("first read after invalidate: %+v %+v %v; want stale, won, new CAS, deadline %d", it, st, err, Now+30)
		}
		if _, st, _ := s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{}, Now); !st.Stale || st.Won || !st.TokenSent {
			t.Fatalf("second read after invalidate: %+v; want stale, token sent, no win", st)
		}
		// An older CAS still lands with CASStale, stale and with the
		// item's deadline; the current one stores a fresh item.
		if _, err := set(t, s, store.CASStale, "k", "old", 0, Now+999, 1); err != nil {
			t.Fatalf("stale set: %v", err)
		}
		it, st, _ = s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{}, Now)
		if string(it.Value) != "old" || it.Deadline != Now+30 || !st.Stale || !st.TokenSent {
			t.Fatalf("after a stale set: %+v %+v", it, st)
		}
		_, err = set(t, s, store.CASStale, "k", "x", 0, 0, it.CAS+1)
		wantErr(t, "stale set with a newer CAS", err, store.ErrExists)
		if _, err := set(t, s, store.CASStale, "k", "new", 0, 0, it.CAS); err != nil {
			t.Fatal(err)
		}
		if _, st, _ := s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{}, Now); st.Stale || st.TokenSent {
			t.Fatalf("after a matching set: %+v; want fresh", st)
		}
		wantErr(t, "delete with CAS 0", s.Delete(ctx, []byte("k"), store.DeleteOptions{MatchCAS: true}, Now), store.ErrExists)
		if err := s.Delete(ctx, []byte("k"), store.DeleteOptions{}, Now); err != nil {
			t.Fatal(err)
		}
		mustMiss(t, s, "k", Now)
	})
	t.Run("MetaGet", func(t *testing.T) {
		s := newStore(t)
		set(t, s, store.Set, "k", "v", 3, Now+100, 0)
		it, st, err := s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{Touch: true, Deadline: Now + 200}, Now+1)
		if err != nil || string(it.Value) != "v" || it.Flags != 3 || it.Deadline != Now+100 {
			t.Fatalf("mg T = %+v, %v; want the item before the touch", it, err)
		}
		if it := mustGet(t, s, "k", Now+1); it.Deadline != Now+200 {
			t.Fatalf("touched deadline = %d", it.Deadline)
		}
		_, _, err = s.MetaGet(ctx, []byte("viv"), nil, store.MetaGetOptions{Vivify: true, VivifyDeadline: Now + 30}, Now)
		if errors.Is(err, store.ErrUnsupported) {
			mustMiss(t, s, "viv", Now)
			return // a tier without meta state: the rest needs it
		}
		if _, st, _ := s.MetaGet(ctx, []byte("k"), nil, store.MetaGetOptions{NoBump: true}, Now+5); !st.Fetched || st.LastAccess == 0 {
			t.Fatalf("state after reads: %+v; want fetched", st)
		}
		set(t, s, store.Set, "h", "v", 0, Now+100, 0)
		if _, st, _ := s.MetaGet(ctx, []byte("h"), nil, store.MetaGetOptions{NoBump: true}, Now); st.Fetched || st.LastAccess != Now {
			t.Fatalf("a fresh item: %+v; want not fetched, last access at the write", st)
		}
		if _, st, _ := s.MetaGet(ctx, []byte("h"), nil, store.MetaGetOptions{}, Now); st.Fetched {
			t.Fatal("a read without bump marked the item fetched")
		}
		if _, st, _ := s.MetaGet(ctx, []byte("h"), nil, store.MetaGetOptions{}, Now); !st.Fetched {
			t.Fatal("a read did not mark the item fetched")
		}
		it, st, err = s.MetaGet(ctx, []byte("viv2"), nil, store.MetaGetOptions{Vivify: true, VivifyDeadline: Now + 30}, Now)
		if err != nil || !st.Created || !st.Won || st.TokenSent || len(it.Value) != 0 || it.Deadline != 0 {
			t.Fatalf("vivify = %+v %+v %v", it, st, err)
		}
		it, st, err = s.MetaGet(ctx, []byte("viv2"), nil, store.MetaGetOptions{Vivify: true, VivifyDeadline: Now + 30}, Now)
		if err != nil || st.Created || st.Won || !st.TokenSent || it.Deadline != Now+30 {
			t.Fatalf("second vivify = %+v %+v %v; want the stub, token sent", it, st, err)
		}
		// R wins once when the deadline is before the threshold.
		set(t, s, store.Set, "r", "v", 0, Now+100, 0)
		if _, st, _ := s.MetaGet(ctx, []byte("r"), nil, store.MetaGetOptions{Recache: Now + 50}, Now); st.Won {
			t.Fatal("R won with the deadline after the threshold")
		}
		if _, st, _ := s.MetaGet(ctx, []byte("r"), nil, store.MetaGetOptions{Touch: true, Deadline: Now + 10, RecacheAfterTouch: true, Recache: Now + 50}, Now); !st.Won {
			t.Fatal("R after T did not compare the touched deadline")
		}
		if _, st, _ := s.MetaGet(ctx, []byte("r"), nil, store.MetaGetOptions{Recache: Now + 50}, Now); st.Won || !st.TokenSent {
			t.Fatalf("R won twice: %+v", st)
		}
		set(t, s, store.Set, "never", "v", 0, 0, 0)
		if _, st, _ := s.MetaGet(ctx, []byte("never"), nil, store.MetaGetOptions{Recache: Now + 50}, Now); st.Won {
			t.Fatal("R won on an item that never expires")
		}
	})
}
