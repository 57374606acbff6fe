package store

import "testing"

// TestSlabClass checks classes against memcached 1.6.18's "stats slabs"
// (chunk_size 96, 120, ..., 82792 for class 31, 524288 for the last).
func TestSlabClass(t *testing.T) {
	for _, c := range []struct{ size, class, chunk int }{{70, 1, 96}, {96, 1, 96}, {97, 2, 120}, {66622, 31, 82792}, {1 << 20, 40, 524288}} {
		if cl, ch := SlabClass(c.size); cl != c.class || ch != c.chunk {
			t.Errorf("SlabClass(%d) = %d, %d; want %d, %d", c.size, cl, ch, c.class, c.chunk)
		}
	}
}
