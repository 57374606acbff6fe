package protocol

import (
	"encoding/base64"
	"errors"
	"strconv"

	"github.com/repcache/repcache/internal/cstrconv"
	"github.com/repcache/repcache/internal/store"
)

// Meta command limits, from memcached.
const (
	maxMetaTokens   = 20 // MFLAG_MAX_OPT_LENGTH, counted as memcached's ntokens
	maxOpaqueLength = 32
)

// Meta error replies that are built as strings (the others are in replies.go).
const (
	replyBadFormat  = "CLIENT_ERROR bad command line format"
	replyOpaqueLong = "CLIENT_ERROR opaque token too long"
)

// metaFlags is what _meta_flag_preparse learns from a meta command's flags.
// Deadlines are converted from the request's exptimes once, here.
type metaFlags struct {
	base64   bool
	value    bool
	quiet    bool
	noBump   bool // u
	stale    bool // I
	hasTTL   bool
	deadline int64 // T
	hasCAS   bool
	cas      uint64
	flags    uint32
	mode     byte
	delta    uint64
	initial  uint64
	vivify   bool
	vivDead  int64 // N
	recache  int64 // R; 0 when absent
	start    int   // first flag token
	key      []byte
	errReply string
}

// parseMetaFlags follows memcached's _meta_flag_preparse: a duplicate or
// unknown flag stops at once; a bad flag value is remembered and parsing
// goes on, so the last such error is the one reported.
func parseMetaFlags(t [][]byte, start, n int, now int64) (metaFlags, bool) {
	f := metaFlags{delta: 1, key: t[1], start: start}
	var seen [128]bool
	hasError := false
	// bad remembers a bad flag value; parsing goes on, as in memcached.
	bad := func(msg string) { f.errReply, hasError = msg, true }
	exptime := func(arg []byte) (int64, bool) {
		v, ok := cstrconv.ParseInt32(arg)
		if !ok {
			bad("CLIENT_ERROR bad token in command line format")
		}
		return ExptimeDeadline(v, now), ok
	}
	for i := start; i < n; i++ {
		tok := t[i]
		o := tok[0]
		if o >= 127 || seen[o] {
			f.errReply = "CLIENT_ERROR duplicate flag"
			return f, false
		}
		seen[o] = true
		arg := tok[1:]
		switch o {
		case 'b':
			dec, err := base64.StdEncoding.DecodeString(string(t[1]))
			if err != nil || len(dec) == 0 {
				bad("CLIENT_ERROR error decoding key")
			}
			f.key = dec
			f.base64 = true
		case 'T':
			f.deadline, f.hasTTL = exptime(arg)
		case 'N':
			f.vivDead, f.vivify = exptime(arg)
		case 'R':
			f.recache, _ = exptime(arg)
		case 'O', 'P', 'L', 'k', 's', 't', 'c', 'f', 'h', 'l':
		case 'u':
			f.noBump = true
		case 'v':
			f.value = true
		case 'q':
			f.quiet = true
		case 'I':
			f.stale = true
		case 'F':
			v, ok := cstrconv.ParseUint32(arg)
			if !ok {
				hasError = true
			}
			f.flags = v
		case 'C':
			v, ok := cstrconv.ParseUint64(arg)
			if !ok {
				bad("CLIENT_ERROR bad token in command line format")
			}
			f.cas, f.hasCAS = v, true
		case 'M':
			if len(tok) != 2 {
				bad("CLIENT_ERROR incorrect length for M token")
			} else {
				f.mode = tok[1]
			}
		case 'J':
			v, ok := cstrconv.ParseUint64(arg)
			if !ok {
				bad("CLIENT_ERROR invalid numeric initial value")
			}
			f.initial = v
		case 'D':
			v, ok := cstrconv.ParseUint64(arg)
			if !ok {
				bad("CLIENT_ERROR invalid numeric delta value")
			}
			f.delta = v
		default:
			f.errReply = "CLIENT_ERROR invalid flag"
			return f, false
		}
	}
	if hasError && f.errReply == "" {
		f.errReply = replyBadFormat
	}
	return f, !hasError
}

// opaqueTooLong is the one check of O tokens' length; memcached makes it
// while building each reply, before anything of the reply is sent.
func opaqueTooLong(t [][]byte, start, n int) bool {
	for i := start; i < n; i++ {
		if t[i][0] == 'O' && len(t[i]) > maxOpaqueLength {
			return true
		}
	}
	return false
}

// createdDeadline is the deadline an item created by N ends up with:
// memcached creates it never-expiring and applies N and T in request order,
// so the later of the two wins.
func (f *metaFlags) createdDeadline(t [][]byte, n int) int64 {
	d := int64(0)
	for i := f.start; i < n; i++ {
		switch t[i][0] {
		case 'N':
			d = f.vivDead
		case 'T':
			d = f.deadline
		}
	}
	return d
}

// appendMetaKey writes " k<key>", base64-encoded with " b" when the client
// sent it so.
func appendMetaKey(out, key []byte, b64 bool) []byte {
	out = append(out, ' ', 'k')
	if !b64 {
		return append(out, key...)
	}
	out = base64.StdEncoding.AppendEncode(out, key)
	return append(out, ' ', 'b')
}

// appendEcho appends what every meta reply echoes for flag token tok: the
// opaque (O) and the key (k). Other flags append nothing here.
func appendEcho(out, tok []byte, f *metaFlags) []byte {
	switch tok[0] {
	case 'O':
		out = append(out, ' ')
		out = append(out, tok...)
	case 'k':
		out = appendMetaKey(out, f.key, f.base64)
	}
	return out
}

// metaStatusLine writes a status code and the echoed flags: the whole reply
// of a meta command that found nothing to report on.
func (s *Session) metaStatusLine(code string, t [][]byte, n int, f *metaFlags) {
	out := append(s.out[:0], code...)
	for i := f.start; i < n; i++ {
		out = appendEcho(out, t[i], f)
	}
	s.out = append(out, crlf...)
	s.write(s.out)
}

func (s *Session) errLine(msg string) {
	s.write([]byte(msg + "\r\n"))
}

// metaCheck applies the checks memcached makes first on every meta command,
// in its order; tooMany is the command's own reply to too many flags.
func (s *Session) metaCheck(t [][]byte, nt int, tooMany []byte) bool {
	switch {
	case nt < 3:
		s.write(rError)
	case s.keyTooLong(t[1]):
		s.write(rBadFormat)
	case nt > maxMetaTokens:
		s.write(tooMany)
	default:
		return true
	}
	return false
}

// appendTTL writes the remaining lifetime as memcached's t flag does: -1
// for an item that never expires.
func appendTTL(out []byte, deadline, now int64) []byte {
	if deadline == 0 {
		return append(out, '-', '1')
	}
	return strconv.AppendInt(out, deadline-now, 10)
}

// metaGet serves mg: one store call does the read and every side effect.
func (s *Session) metaGet(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rMgFlagsTooLong) {
		return
	}
	now := s.now()
	f, ok := parseMetaFlags(t, 2, n, now)
	if !ok {
		s.errLine(f.errReply)
		return
	}
	if opaqueTooLong(t, 2, n) {
		s.errLine(replyOpaqueLong)
		return
	}
	o := store.MetaGetOptions{Touch: f.hasTTL, Deadline: f.deadline, Recache: f.recache, NoBump: f.noBump}
	if f.vivify {
		o.Vivify, o.VivifyDeadline = true, f.createdDeadline(t, n)
	}
	for i := 2; i < n && f.hasTTL; i++ {
		if t[i][0] == 'R' {
			break
		}
		if t[i][0] == 'T' {
			o.RecacheAfterTouch = true
		}
	}
	it, st, err := s.h.store.MetaGet(s.ctx, f.key, s.val[:0], o, now)
	s.val = it.Value
	if _, refused := clientError(err); refused {
		s.count("mg", f.key, "refused")
		s.storeError(err)
		return
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.count("mg", f.key, "miss")
			s.watchGet(f.key, nil)
		} else {
			s.count("mg", f.key, "error")
			s.h.opts.Logger.Warn("get failed", "err", err)
		}
		if f.hasTTL {
			s.h.Stats.CmdTouch.Add(1)
			s.h.Stats.TouchMisses.Add(1)
		} else {
			s.h.Stats.CmdGet.Add(1)
			s.h.Stats.GetMisses.Add(1)
		}
		if !f.quiet {
			s.metaStatusLine("EN", t, n, &f)
		}
		return
	}
	s.count("mg", f.key, "hit")
	s.watchGet(f.key, &it)
	if f.hasTTL {
		s.h.Stats.CmdTouch.Add(1)
		s.h.Stats.TouchHits.Add(1)
	} else {
		s.h.Stats.CmdGet.Add(1)
		s.h.Stats.GetHits.Add(1)
	}
	out := s.out[:0]
	if f.value {
		out = append(out, "VA "...)
		out = strconv.AppendInt(out, int64(len(it.Value)), 10)
	} else {
		out = append(out, "HD"...)
	}
	// Flags are applied and reported in request order, as memcached does:
	// a t before T reports the lifetime before the touch.
	deadline := it.Deadline
	for i := 2; i < n; i++ {
		switch t[i][0] {
		case 'T':
			deadline = f.deadline
		case 'N':
			if st.Created {
				deadline = f.vivDead
			}
		case 's':
			out = append(out, ' ', 's')
			out = strconv.AppendInt(out, int64(len(it.Value)), 10)
		case 't':
			out = append(out, ' ', 't')
			out = appendTTL(out, deadline, now)
		case 'c':
			out = append(out, ' ', 'c')
			out = strconv.AppendUint(out, it.CAS, 10)
		case 'f':
			out = append(out, ' ', 'f')
			out = strconv.AppendUint(out, uint64(it.Flags), 10)
		case 'l':
			out = append(out, ' ', 'l')
			out = strconv.AppendInt(out, max(now-st.LastAccess, 0), 10)
		case 'h':
			out = append(out, ' ', 'h', '0')
			if st.Fetched {
				out[len(out)-1] = '1'
			}
		default:
			out = appendEcho(out, t[i], &f)
		}
	}
	// Z before X before W, and never W with Z, as memcached writes them.
	if st.TokenSent {
		out = append(out, " Z"...)
	}
	if st.Stale {
		out = append(out, " X"...)
	}
	if st.Won {
		out = append(out, " W"...)
	}
	out = append(out, crlf...)
	s.out = out
	s.write(out)
	if f.value {
		s.writeValue(it.Value)
	}
}

// metaSet serves ms.
func (s *Session) metaSet(t [][]byte, n, nt int) error {
	if !s.metaCheck(t, nt, rFlagsTooLong) {
		return nil
	}
	if nt == 3 {
		s.write(rBadFormat) // no data length
		return nil
	}
	vlen, ok := cstrconv.ParseInt32(t[2])
	if !ok || vlen < 0 || vlen > 1<<31-1-2 {
		s.write(rBadFormat)
		return nil
	}
	fail := func(msg string) error {
		s.errLine(msg)
		return s.swallow(int(vlen) + 2)
	}
	now := s.now()
	f, ok := parseMetaFlags(t, 3, n, now)
	if !ok {
		return fail(f.errReply)
	}
	if opaqueTooLong(t, 3, n) {
		return fail(replyOpaqueLong)
	}
	var mode store.Mode
	switch f.mode {
	case 0, 'S':
		mode = store.Set
	case 'E':
		mode = store.Add
	case 'A':
		mode = store.Append
	case 'P':
		mode = store.Prepend
	case 'R':
		mode = store.Replace
	default:
		return fail("CLIENT_ERROR invalid mode for ms M token")
	}
	if f.hasCAS && (mode == store.Set || mode == store.Replace) {
		mode = store.CAS
		if f.stale {
			mode = store.CASStale
		}
	}
	s.h.Stats.CmdSet.Add(1)
	if store.ItemSize(len(f.key), int(vlen), f.flags) > int(s.h.maxItem.Load()) {
		s.h.Stats.StoreTooLarge.Add(1)
		s.h.store.Delete(s.ctx, f.key, store.DeleteOptions{}, now)
		return fail("SERVER_ERROR object too large for cache")
	}
	okData, err := s.readData(int(vlen))
	if err != nil {
		return err
	}
	if !okData {
		s.write(rBadDataChunk) // meta set reports a bad chunk even when quiet
		return nil
	}
	var deadline int64
	if f.hasTTL {
		deadline = f.deadline
	}
	item := store.Item{Key: f.key, Value: s.val, Flags: f.flags, Deadline: deadline}
	if f.hasCAS && mode != store.Add {
		item.CAS = f.cas
	}
	old := s.watchLookup(f.key, mode == store.Append || mode == store.Prepend, now)
	cas, err := s.h.store.Store(s.ctx, mode, item, now)
	s.count("ms", f.key, statusOf(err))
	s.watchStore(mode, item, err, old, now)
	s.countStore(mode, err)
	out := s.out[:0]
	switch {
	case err == nil:
		if f.quiet {
			return nil
		}
		out = append(out, "HD"...)
	case errors.Is(err, store.ErrExists):
		out = append(out, "EX"...)
	case errors.Is(err, store.ErrNotFound):
		out = append(out, "NF"...)
	case errors.Is(err, store.ErrNotStored):
		out = append(out, "NS"...)
	default:
		s.storeError(err)
		return nil
	}
	for i := 3; i < n; i++ {
		if t[i][0] == 'c' {
			out = append(out, ' ', 'c')
			out = strconv.AppendUint(out, cas, 10)
			continue
		}
		out = appendEcho(out, t[i], &f)
	}
	s.out = append(out, crlf...)
	s.write(s.out)
	return nil
}

// metaDelete serves md: one conditional store call.
func (s *Session) metaDelete(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rFlagsTooLong) {
		return
	}
	now := s.now()
	f, ok := parseMetaFlags(t, 2, n, now)
	if !ok {
		s.write(rBadMetaFlag)
		return
	}
	if opaqueTooLong(t, 2, n) {
		s.errLine(replyOpaqueLong)
		return
	}
	o := store.DeleteOptions{Invalidate: f.stale, MatchCAS: f.hasCAS, CAS: f.cas}
	if f.stale && f.hasTTL {
		o.Touch, o.Deadline = true, f.deadline
	}
	status := "HD"
	s.watchLookup(f.key, false, now)
	switch err := s.h.store.Delete(s.ctx, f.key, o, now); {
	case err == nil:
		if !f.stale {
			s.h.Stats.DeleteHits.Add(1)
		}
	case errors.Is(err, store.ErrNotFound):
		s.h.Stats.DeleteMisses.Add(1)
		status = "NF"
	case errors.Is(err, store.ErrExists):
		s.h.Stats.DeleteMisses.Add(1)
		status = "EX"
	default:
		s.count("md", f.key, statusOf(err))
		s.storeError(err)
		return
	}
	s.count("md", f.key, metaStatus(status))
	if f.quiet && status == "HD" {
		return // quiet mode hides only the nominal reply
	}
	s.metaStatusLine(status, t, n, &f)
}

// metaArithmetic serves ma: one store call does the condition, the
// arithmetic, the vivify and the touch.
func (s *Session) metaArithmetic(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rFlagsTooLong) {
		return
	}
	now := s.now()
	f, ok := parseMetaFlags(t, 2, n, now)
	if !ok {
		s.write(rBadMetaFlag)
		return
	}
	o := store.IncrOptions{Delta: f.delta, Touch: f.hasTTL, Deadline: f.deadline}
	switch f.mode {
	case 0, 'I', '+':
	case 'D', '-':
		o.Decr = true
	default:
		s.errLine("CLIENT_ERROR invalid mode for ma M token")
		return
	}
	if opaqueTooLong(t, 2, n) {
		s.errLine(replyOpaqueLong)
		return
	}
	if f.hasCAS {
		o.CAS = f.cas
	}
	if f.vivify {
		o.Vivify, o.Initial, o.VivifyDeadline = true, f.initial, f.createdDeadline(t, n)
	}
	hits, misses := &s.h.Stats.IncrHits, &s.h.Stats.IncrMisses
	if o.Decr {
		hits, misses = &s.h.Stats.DecrHits, &s.h.Stats.DecrMisses
	}
	s.watchLookup(f.key, false, now)
	c, err := s.h.store.Incr(s.ctx, f.key, o, now)
	switch {
	case err == nil:
	case errors.Is(err, store.ErrNotFound):
		misses.Add(1)
		s.count("ma", f.key, "not_found")
		s.metaStatusLine("NF", t, n, &f)
		return
	case errors.Is(err, store.ErrExists):
		s.count("ma", f.key, "exists")
		s.metaStatusLine("EX", t, n, &f)
		return
	case errors.Is(err, store.ErrNotStored):
		s.count("ma", f.key, "not_stored")
		s.metaStatusLine("NS", t, n, &f)
		return
	default:
		s.count("ma", f.key, statusOf(err))
		s.storeError(err)
		return
	}
	s.count("ma", f.key, "hit")
	if !c.Created {
		hits.Add(1)
		if f.quiet {
			return // memcached hides a nominal reply, but not a vivify's
		}
	}
	num := strconv.AppendUint(s.val[:0], c.Value, 10)
	s.val = num
	if c.Created {
		// As memcached reports a vivify: the lookup again, then the add.
		s.watchGet(f.key, nil)
		s.watchStore(store.Add, store.Item{Key: f.key, Value: num, Deadline: c.Deadline}, nil, 0, now)
	}
	out := s.out[:0]
	if f.value {
		out = append(out, "VA "...)
		out = strconv.AppendInt(out, int64(len(num)), 10)
	} else {
		out = append(out, "HD"...)
	}
	deadline := c.Deadline
	for i := 2; i < n; i++ {
		switch t[i][0] {
		case 'c':
			out = append(out, ' ', 'c')
			out = strconv.AppendUint(out, c.CAS, 10)
		case 't':
			out = append(out, ' ', 't')
			out = appendTTL(out, deadline, now)
		case 'T':
			deadline = f.deadline
		case 'N':
			if c.Created {
				deadline = f.vivDead
			}
		default:
			out = appendEcho(out, t[i], &f)
		}
	}
	out = append(out, crlf...)
	if f.value {
		out = append(out, num...)
		out = append(out, crlf...)
	}
	s.out = out
	s.write(out)
}

// metaDebug serves me: the item's metadata, read without counting as an
// access. cls is the slab class memcached would keep the item in
// (store.SlabClass).
func (s *Session) metaDebug(t [][]byte, n, nt int) {
	if nt < 3 || s.keyTooLong(t[1]) {
		s.write(rBadFormat)
		return
	}
	key := t[1]
	if nt >= 4 && string(t[2]) == "b" {
		dec, err := base64.StdEncoding.DecodeString(string(key))
		if err != nil || len(dec) == 0 {
			s.write(rBadFormat)
			return
		}
		key = dec
	}
	now := s.now()
	it, st, err := s.h.store.MetaGet(s.ctx, key, s.val[:0], store.MetaGetOptions{NoBump: true, Peek: true}, now)
	s.val = it.Value
	if err != nil {
		s.watchGet(key, nil)
		s.write(rEN)
		return
	}
	s.watchGet(key, &it)
	exp := int64(-1)
	if it.Deadline != 0 {
		// memcached prints current_time - exptime: the remaining lifetime,
		// negated. Kept as it is so that tools reading it agree.
		exp = now - it.Deadline
	}
	size := store.ItemSize(len(key), len(it.Value), it.Flags)
	out := append(s.out[:0], "ME "...)
	out = append(out, t[1]...)
	out = append(out, " exp="...)
	out = strconv.AppendInt(out, exp, 10)
	out = append(out, " la="...)
	out = strconv.AppendInt(out, max(now-st.LastAccess, 0), 10)
	out = append(out, " cas="...)
	out = strconv.AppendUint(out, it.CAS, 10)
	out = append(out, " fetch="...)
	if st.Fetched {
		out = append(out, "yes"...)
	} else {
		out = append(out, "no"...)
	}
	out = append(out, " cls="...)
	class, _ := store.SlabClass(size)
	out = strconv.AppendInt(out, int64(class), 10)
	out = append(out, " size="...)
	out = strconv.AppendInt(out, int64(size), 10)
	s.out = append(out, crlf...)
	s.write(s.out)
}

// metaStatus names a meta reply code for the commands metric.
func metaStatus(code string) string {
	switch code {
	case "HD":
		return "deleted"
	case "NF":
		return "not_found"
	case "EX":
		return "exists"
	}
	return "error"
}
