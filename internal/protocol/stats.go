package protocol

import (
	"cmp"
	"net"
	"os"
	"runtime"
	"slices"
	"strconv"
	"syscall"
	"time"

	"github.com/repcache/repcache/internal/store"
)

func secondsDuration(s int64) time.Duration { return time.Duration(s) * time.Second }

// stats serves "stats" and its sub-commands. Values are repcache's own; the
// names and format are memcached's, so existing tools read them.
func (s *Session) stats(t [][]byte, n int) {
	if n == 1 {
		s.generalStats()
		return
	}
	switch string(t[1]) {
	case "reset":
		s.resetStats()
		s.write(rReset)
	case "detail":
		s.statsDetail(t, n)
	case "settings":
		out := s.out[:0]
		add := func(name, v string) {
			out = append(out, "STAT "...)
			out = append(out, name...)
			out = append(out, ' ')
			out = append(out, v...)
			out = append(out, crlf...)
		}
		add("maxconns", strconv.FormatInt(s.h.maxConns.Load(), 10))
		add("item_size_max", strconv.Itoa(int(s.h.maxItem.Load())))
		add("key_max_length", strconv.Itoa(int(s.h.maxKey.Load())))
		add("evictions", "on")
		add("cas_enabled", "yes")
		s.out = append(out, rEnd...)
		s.write(s.out)
	case "slabs":
		s.slabStats()
	case "items":
		s.itemStats()
	case "conns":
		s.connStats()
	case "sizes":
		s.write(rEnd)
	default:
		s.write(rError)
	}
}

// resetStats is memcached's "stats reset": the counters start again from
// zero; what is current (connections, items, bytes) stays.
func (s *Session) resetStats() {
	s.h.Stats.reset()
	s.h.detail.reset()
	st := s.storeStats()
	_, total, rejected := s.connections()
	s.h.base.Store(&resetBase{total: total, rejected: rejected, evictions: st.Evictions, reclaimed: st.Expired})
}

// connections is the server's connection counts, if it passed them down.
func (s *Session) connections() (curr, total, rejected int64) {
	if cs := s.h.conns.Load(); cs != nil {
		return (*cs).Connections()
	}
	return 0, 0, 0
}

func (s *Session) generalStats() {
	c := &s.h.Stats
	now := time.Now()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	st := s.storeStats()
	base := s.h.base.Load()
	if base == nil {
		base = &resetBase{}
	}
	out := s.out[:0]
	u := func(name string, v uint64) {
		out = append(out, "STAT "...)
		out = append(out, name...)
		out = append(out, ' ')
		out = strconv.AppendUint(out, v, 10)
		out = append(out, crlf...)
	}
	i := func(name string, v int64) { u(name, uint64(max(v, 0))) }
	str := func(name, v string) {
		out = append(out, "STAT "...)
		out = append(out, name...)
		out = append(out, ' ')
		out = append(out, v...)
		out = append(out, crlf...)
	}
	tv := func(t syscall.Timeval) string {
		return strconv.FormatInt(t.Sec, 10) + "." + padMicro(t.Usec)
	}
	i("pid", int64(os.Getpid()))
	i("uptime", int64(now.Sub(s.h.started).Seconds()))
	i("time", now.Unix())
	str("version", s.h.opts.Version)
	i("pointer_size", 64)
	str("rusage_user", tv(ru.Utime))
	str("rusage_system", tv(ru.Stime))
	curr, total, rejected := s.connections()
	i("curr_connections", curr)
	i("total_connections", total-base.total)
	i("rejected_connections", rejected-base.rejected)
	u("cmd_get", c.CmdGet.Load())
	u("cmd_set", c.CmdSet.Load())
	u("cmd_flush", c.CmdFlush.Load())
	u("cmd_touch", c.CmdTouch.Load())
	u("cmd_meta", c.CmdMeta.Load())
	u("get_hits", c.GetHits.Load())
	u("get_misses", c.GetMisses.Load())
	u("delete_misses", c.DeleteMisses.Load())
	u("delete_hits", c.DeleteHits.Load())
	u("incr_misses", c.IncrMisses.Load())
	u("incr_hits", c.IncrHits.Load())
	u("decr_misses", c.DecrMisses.Load())
	u("decr_hits", c.DecrHits.Load())
	u("cas_misses", c.CASMisses.Load())
	u("cas_hits", c.CASHits.Load())
	u("cas_badval", c.CASBadval.Load())
	u("touch_hits", c.TouchHits.Load())
	u("touch_misses", c.TouchMisses.Load())
	u("store_too_large", c.StoreTooLarge.Load())
	u("bytes_read", c.BytesRead.Load())
	u("bytes_written", c.BytesWritten.Load())
	i("limit_maxbytes", st.Capacity)
	i("threads", int64(runtime.GOMAXPROCS(0)))
	i("bytes", st.Bytes)
	i("curr_items", st.Items)
	u("total_items", c.TotalItems.Load())
	u("evictions", st.Evictions-min(base.evictions, st.Evictions))
	u("reclaimed", st.Expired-min(base.reclaimed, st.Expired))
	out = append(out, rEnd...)
	s.out = out
	s.write(out)
}

// connStats answers "stats conns": memcached's four lines per listener and
// connection, by id.
func (s *Session) connStats() {
	cs := s.h.conns.Load()
	if cs == nil {
		s.write(rEnd)
		return
	}
	var all []ConnInfo
	(*cs).EachConnection(func(c ConnInfo) { all = append(all, c) })
	slices.SortFunc(all, func(a, b ConnInfo) int { return cmp.Compare(a.ID, b.ID) })
	now := time.Now()
	out := s.out[:0]
	stat := func(id int, name, v string) {
		out = append(out, "STAT "...)
		out = strconv.AppendInt(out, int64(id), 10)
		out = append(out, ':')
		out = append(out, name...)
		out = append(out, ' ')
		out = append(out, v...)
		out = append(out, crlf...)
	}
	for _, c := range all {
		stat(c.ID, "addr", connAddr(c.Addr))
		if c.State != ConnListening {
			stat(c.ID, "listen_addr", connAddr(c.Listen))
		}
		stat(c.ID, "state", connStateNames[c.State])
		stat(c.ID, "secs_since_last_cmd", strconv.FormatInt(int64(now.Sub(c.LastCommand)/time.Second), 10))
	}
	s.out = append(out, rEnd...)
	s.write(s.out)
}

// connAddr is an address as memcached writes it: tcp:1.2.3.4:5,
// tcp6:[::1]:5, unix:/path.
func connAddr(a net.Addr) string {
	switch a := a.(type) {
	case *net.TCPAddr:
		if a.IP.To4() == nil {
			return "tcp6:[" + a.IP.String() + "]:" + strconv.Itoa(a.Port)
		}
		return "tcp:" + a.IP.String() + ":" + strconv.Itoa(a.Port)
	case *net.UnixAddr:
		return "unix:" + a.Name
	case nil:
		return "<null>"
	}
	return a.Network() + ":" + a.String()
}

func padMicro(us int64) string {
	s := strconv.FormatInt(us, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}

// storeStats is the store's snapshot, zero for a store that keeps none.
func (s *Session) storeStats() store.Stats {
	if r, ok := s.h.store.(store.StatsReporter); ok {
		return r.Stats()
	}
	return store.Stats{}
}

// slabPage is memcached's slab page size: chunks are carved from 1 MiB pages.
const slabPage = 1 << 20

// appendClassStat appends one per-class line, "<lead><class>:<name> <v>".
func appendClassStat(out []byte, lead string, c int, name string, v int64) []byte {
	out = append(out, lead...)
	out = strconv.AppendInt(out, int64(c), 10)
	out = append(out, ':')
	out = append(out, name...)
	out = append(out, ' ')
	out = strconv.AppendInt(out, v, 10)
	return append(out, crlf...)
}

// slabStats answers "stats slabs" in memcached's format for the classes
// that hold items. repcache keeps no slabs: chunk counts are what memcached
// would use for the same items (store.SlabClass), so tools and tests that
// read them see the same numbers.
func (s *Session) slabStats() {
	st := s.storeStats()
	out := s.out[:0]
	stat := func(c int, name string, v int64) { out = appendClassStat(out, "STAT ", c, name, v) }
	active, pagesTotal := 0, int64(0)
	for c := 1; c <= store.SlabClasses; c++ {
		cs := st.Classes[c]
		if cs.Items <= 0 {
			continue
		}
		chunk := store.SlabChunk(c)
		perPage := int64(max(slabPage/chunk, 1))
		pages := (cs.Items + perPage - 1) / perPage
		active++
		pagesTotal += pages
		stat(c, "chunk_size", int64(chunk))
		stat(c, "chunks_per_page", perPage)
		stat(c, "total_pages", pages)
		stat(c, "total_chunks", pages*perPage)
		stat(c, "used_chunks", cs.Items)
		stat(c, "free_chunks", pages*perPage-cs.Items)
		stat(c, "free_chunks_end", 0)
	}
	out = append(out, "STAT active_slabs "...)
	out = strconv.AppendInt(out, int64(active), 10)
	out = append(out, "\r\nSTAT total_malloced "...)
	out = strconv.AppendInt(out, pagesTotal*slabPage, 10)
	out = append(out, crlf...)
	s.out = append(out, rEnd...)
	s.write(s.out)
}

// itemStats answers "stats items" in memcached's format for the classes
// that hold items.
func (s *Session) itemStats() {
	st := s.storeStats()
	out := s.out[:0]
	stat := func(c int, name string, v int64) { out = appendClassStat(out, "STAT items:", c, name, v) }
	for c := 1; c <= store.SlabClasses; c++ {
		cs := st.Classes[c]
		if cs.Items <= 0 {
			continue
		}
		stat(c, "number", cs.Items)
		stat(c, "mem_requested", cs.Requested)
		stat(c, "evicted", int64(cs.Evicted))
		stat(c, "reclaimed", int64(cs.Reclaimed))
	}
	s.out = append(out, rEnd...)
	s.write(s.out)
}
