package protocol

import (
	"os"
	"runtime"
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
		s.write(rReset)
	case "detail":
		s.write(rStatsDetail)
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
	case "items", "slabs", "sizes", "conns":
		s.write(rEnd)
	default:
		s.write(rError)
	}
}

func (s *Session) generalStats() {
	c := &s.h.Stats
	now := time.Now()
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	var st store.Stats
	if r, ok := s.h.store.(store.StatsReporter); ok {
		st = r.Stats()
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
	i("curr_connections", c.CurrConnections.Load())
	i("total_connections", c.TotalConnections.Load())
	i("rejected_connections", c.RejectedConnections.Load())
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
	u("evictions", st.Evictions)
	u("reclaimed", st.Expired)
	out = append(out, rEnd...)
	s.out = out
	s.write(out)
}

func padMicro(us int64) string {
	s := strconv.FormatInt(us, 10)
	for len(s) < 6 {
		s = "0" + s
	}
	return s
}
