package memory

import (
	"math/rand/v2"
	"testing"
)

// TestIndexMatchesReference drives the index with random inserts and
// removes, many sharing hash bits, and checks it against a plain map.
func TestIndexMatchesReference(t *testing.T) {
	x := newIndex()
	ref := map[uint32]uint32{} // offset -> hash bits
	var live []uint32          // offsets in ref, to pick removals from
	r := rand.New(rand.NewPCG(1, 2))
	pool := make([]uint32, 500)
	for i := range pool {
		pool[i] = r.Uint32()
	}
	for step := 0; step < 200000; step++ {
		if len(live) > 0 && r.IntN(3) == 0 {
			i := r.IntN(len(live))
			off := live[i]
			if !x.remove(ref[off], off) {
				t.Fatalf("step %d: remove(%d, %d) found nothing", step, ref[off], off)
			}
			delete(ref, off)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
			continue
		}
		off := r.Uint32N(1 << 30)
		if _, dup := ref[off]; dup {
			continue
		}
		h := pool[r.IntN(len(pool))] // many entries share hash bits
		if r.IntN(2) == 0 {
			h = r.Uint32()
		}
		x.insert(h, off)
		ref[off] = h
		live = append(live, off)
	}
	if x.n != len(ref) {
		t.Fatalf("index holds %d, reference %d", x.n, len(ref))
	}
	for off, h := range ref {
		if !x.has(h, off) {
			t.Fatalf("entry (%d, %d) lost", h, off)
		}
	}
	if x.has(12345, 1<<31) {
		t.Fatal("has() found an entry never inserted")
	}
	// Shrinks back after removing everything.
	for off, h := range ref {
		x.remove(h, off)
	}
	if x.n != 0 || len(x.slots) != minIndexSlots {
		t.Fatalf("after removing all: n=%d slots=%d", x.n, len(x.slots))
	}
}
