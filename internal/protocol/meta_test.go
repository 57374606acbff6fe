package protocol

import (
	"strings"
	"testing"
)

// TestMetaCommands runs the meta commands against the in-process embedded
// store, so a developer without memcached installed gets a meaningful
// failure. The same requests are in the differential corpus
// (internal/server), which proves these replies are memcached 1.6.18's.
func TestMetaCommands(t *testing.T) {
	for _, tc := range []struct{ name, req, want string }{
		{"flags in request order, hit-before and last access",
			"ms k 2 T100 F5 c\r\nhi\r\nmg k s v f t c k O1 h l\r\nmg k h\r\nmg k u h\r\nme k\r\n",
			"HD c1\r\nVA 2 s2 f5 t100 c1 kk O1 h0 l0\r\nhi\r\nHD h1\r\nHD h1\r\nME k exp=-100 la=0 cas=1 fetch=yes cls=1 size=66\r\n"},
		{"vivify: the first client wins, the next see Z",
			"mg v s c v N30 t\r\nmg v s v N30 t\r\nmg v t q k\r\n",
			"VA 0 s0 c1 t30 W\r\n\r\nVA 0 s0 t30 Z\r\n\r\nHD t30 kv Z\r\n"},
		{"recache below a remaining TTL, once",
			"ms r 2 T100\r\nhi\r\nmg r t R30\r\nmg r t R130 c\r\nmg r R130\r\nmg r T10 t\r\n",
			"HD\r\nHD t100\r\nHD t100 c1 W\r\nHD Z\r\nHD t10 Z\r\n"},
		{"invalidate, serve stale, stale set with an older CAS",
			"ms i 3 T100\r\nmoo\r\nmd i I T30 k O9\r\nmg i s t c v\r\nmg i v\r\nms i 3 I C1\r\nold\r\nmg i v t\r\nmd i C1\r\nmd nope I\r\nmd i q\r\nmg i\r\n",
			"HD\r\nHD ki O9\r\nVA 3 s3 t30 c2 X W\r\nmoo\r\nVA 3 Z X\r\nmoo\r\nHD\r\nVA 3 t30 Z X\r\nold\r\nEX\r\nNF\r\nEN\r\n"},
		{"arithmetic with CAS, decrement, vivify; q hides only a nominal reply",
			"ms n 1\r\n5\r\nma n C99\r\nma n C1 v c\r\nma n MD D9 v\r\nma z N50 J9 v t\r\nma z q\r\nma y q N0\r\nmn\r\n",
			"HD\r\nEX\r\nVA 1 c2\r\n6\r\nVA 1\r\n0\r\nVA 1 t50\r\n9\r\nHD\r\nMN\r\n"},
		{"bad flags and modes; slabs automove",
			"mg\r\nmg k Z\r\nmg k v v\r\nmg k O123456789012345678901234567890123\r\nms k 2 MX\r\nhi\r\nma k Mx\r\nslabs automove 1\r\nslabs automove 9\r\n",
			"ERROR\r\nCLIENT_ERROR invalid flag\r\nCLIENT_ERROR duplicate flag\r\nCLIENT_ERROR opaque token too long\r\nCLIENT_ERROR invalid mode for ms M token\r\nCLIENT_ERROR invalid mode for ma M token\r\nOK\r\nERROR\r\n"},
	} {
		if got := session(t, Options{}, tc.req); got != tc.want {
			t.Errorf("%s:\nrequest %q\ngot  %q\nwant %q", tc.name, tc.req, got, tc.want)
		}
	}
}

// TestSlabAndItemStats: "stats slabs" and "stats items" count items by the
// slab class memcached would keep them in (memcached's t/issue_29.t,
// issue_42.t and issue_163.t read these).
func TestSlabAndItemStats(t *testing.T) {
	now := int64(1_800_000_000)
	clock := func() int64 { return now }
	got := session(t, Options{Now: clock}, "set a 0 0 1\r\nx\r\nset b 0 0 1\r\nx\r\nstats slabs\r\nstats items\r\n")
	for _, want := range []string{"STAT 1:chunk_size 96\r\n", "STAT 1:used_chunks 2\r\n", "STAT active_slabs 1\r\n", "STAT items:1:number 2\r\n", "STAT items:1:mem_requested 122\r\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("no %q in %q", want, got)
		}
	}
}
