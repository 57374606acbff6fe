package memory

// index maps keys to ring offsets with open addressing and linear probing.
// A slot packs the key hash's high 32 bits (which place it and filter
// probes) and the entry's ring offset + 1 (0 marks an empty slot): 8 bytes a
// slot and no pointers, so it costs a fraction of a Go map and the garbage
// collector never scans it. Keys are compared in the ring, so two keys whose
// hashes collide both stay reachable. Deletion shifts later slots back
// instead of leaving tombstones, so probe chains stay short. The slots live
// outside the Go heap (see allocSlots): growing the index of millions of
// records then creates no garbage and triggers no collection.
type index struct {
	slots []uint64
	mask  uint64
	n     int
}

const minIndexSlots = 1024

func newIndex() index {
	return index{slots: allocSlots(minIndexSlots), mask: minIndexSlots - 1}
}

func slotHash(s uint64) uint32 { return uint32(s >> 32) }
func slotOff(s uint64) uint32  { return uint32(s) - 1 }

// hash32 is the part of a key hash the index uses; the low bits pick the shard.
func hash32(h uint64) uint32 { return uint32(h >> 32) }

func (x *index) home(h32 uint32) uint64 { return uint64(h32) & x.mask }

// insert adds an entry; the caller has removed any previous entry for the key.
func (x *index) insert(h32 uint32, off uint32) {
	if (x.n+1)*4 > len(x.slots)*3 {
		x.resize(len(x.slots) * 2)
	}
	i := x.home(h32)
	for x.slots[i] != 0 {
		i = (i + 1) & x.mask
	}
	x.slots[i] = uint64(h32)<<32 | uint64(off+1)
	x.n++
}

// remove deletes the entry pointing at off, if any, and reports whether it
// was there.
func (x *index) remove(h32 uint32, off uint32) bool {
	want := uint64(h32)<<32 | uint64(off+1)
	for i := x.home(h32); x.slots[i] != 0; i = (i + 1) & x.mask {
		if x.slots[i] == want {
			x.deleteAt(i)
			return true
		}
	}
	return false
}

// has reports whether the entry at off is the indexed (live) one.
func (x *index) has(h32 uint32, off uint32) bool {
	want := uint64(h32)<<32 | uint64(off+1)
	for i := x.home(h32); x.slots[i] != 0; i = (i + 1) & x.mask {
		if x.slots[i] == want {
			return true
		}
	}
	return false
}

func (x *index) deleteAt(i uint64) {
	for j := i; ; {
		j = (j + 1) & x.mask
		s := x.slots[j]
		if s == 0 {
			break
		}
		// Leave s where it is if its home lies cyclically in (i, j].
		k := x.home(slotHash(s))
		if i <= j && i < k && k <= j || i > j && (i < k || k <= j) {
			continue
		}
		x.slots[i] = s
		i = j
	}
	x.slots[i] = 0
	x.n--
	if len(x.slots) > minIndexSlots && x.n*8 < len(x.slots) {
		x.resize(len(x.slots) / 2)
	}
}

func (x *index) resize(n int) {
	old := x.slots
	defer freeSlots(old)
	x.slots, x.mask, x.n = allocSlots(n), uint64(n-1), 0
	for _, s := range old {
		if s != 0 {
			i := x.home(slotHash(s))
			for x.slots[i] != 0 {
				i = (i + 1) & x.mask
			}
			x.slots[i] = s
			x.n++
		}
	}
}

func (x *index) clear() {
	x.free()
	*x = newIndex()
}

// free releases the slots; the index is unusable until reset.
func (x *index) free() {
	freeSlots(x.slots)
	x.slots = nil
}
