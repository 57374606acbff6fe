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
	maxMetaTokens    = 20 // MFLAG_MAX_OPT_LENGTH, counted as memcached's ntokens
	maxOpaqueLength  = 32
	errDefaultFormat = "CLIENT_ERROR bad command line format"
)

// metaFlags is what _meta_flag_preparse learns from a meta command's flags.
type metaFlags struct {
	base64   bool
	value    bool
	quiet    bool
	hasTTL   bool
	ttl      int32
	hasCAS   bool
	cas      uint64
	flags    uint32
	mode     byte
	delta    uint64
	initial  uint64
	vivify   bool
	vivTTL   int32
	key      []byte // decoded key
	errReply string
}

// parseMetaFlags follows memcached's _meta_flag_preparse: a duplicate or
// unknown flag stops at once; a bad flag value is remembered and parsing
// goes on, so the last such error is the one reported. Flags memcached knows
// but repcache does not implement (N in mg, R, h, l, E, I) are answered as
// unknown flags rather than with a wrong value.
func parseMetaFlags(t [][]byte, start, n int, cmd byte) (metaFlags, bool) {
	f := metaFlags{delta: 1, key: t[1]}
	var seen [128]bool
	hasError := false
	// bad remembers a bad flag value; parsing goes on, as in memcached.
	bad := func(msg string) { f.errReply, hasError = msg, true }
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
			v, ok := cstrconv.ParseInt32(arg)
			if !ok {
				bad("CLIENT_ERROR bad token in command line format")
			}
			f.ttl, f.hasTTL = v, true
		case 'N':
			if cmd == 'g' {
				f.errReply = "CLIENT_ERROR invalid flag"
				return f, false
			}
			v, ok := cstrconv.ParseInt32(arg)
			if !ok {
				bad("CLIENT_ERROR bad token in command line format")
			}
			f.vivTTL, f.vivify = v, true
		case 'O', 'P', 'L', 'k', 's', 't', 'c', 'f', 'u':
		case 'v':
			f.value = true
		case 'q':
			f.quiet = true
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
		f.errReply = errDefaultFormat
	}
	return f, !hasError
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

// appendEcho appends the O (opaque) and k flags, in request order, as
// memcached does on every meta reply; ok is false when an opaque is too long.
func appendEcho(out []byte, t [][]byte, n int, key []byte, b64 bool) ([]byte, bool) {
	for i := 2; i < n; i++ {
		switch t[i][0] {
		case 'O':
			if len(t[i]) > maxOpaqueLength {
				return out, false
			}
			out = append(out, ' ')
			out = append(out, t[i]...)
		case 'k':
			out = appendMetaKey(out, key, b64)
		}
	}
	return out, true
}

var errOpaque = "CLIENT_ERROR opaque token too long"

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

// metaGet serves mg.
func (s *Session) metaGet(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rMgFlagsTooLong) {
		return
	}
	f, ok := parseMetaFlags(t, 2, n, 'g')
	if !ok {
		s.errLine(f.errReply)
		return
	}
	now := s.now()
	s.h.Stats.CmdGet.Add(1)
	it, err := s.h.store.Get(s.ctx, f.key, s.val[:0], now)
	s.val = it.Value
	var ce *store.ClientError
	if errors.As(err, &ce) {
		s.count("mg", f.key, "refused")
		s.write([]byte("CLIENT_ERROR " + ce.Msg + "\r\n"))
		return
	}
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			s.count("mg", f.key, "miss")
		} else {
			s.count("mg", f.key, "error")
		}
		s.h.Stats.GetMisses.Add(1)
		if !errors.Is(err, store.ErrNotFound) {
			s.h.opts.Logger.Warn("get failed", "err", err)
		}
		out, ok := appendEcho(append(s.out[:0], "EN"...), t, n, f.key, f.base64)
		if !ok {
			s.errLine(errOpaque)
			return
		}
		s.out = append(out, crlf...)
		if !f.quiet {
			s.write(s.out)
		}
		return
	}
	s.count("mg", f.key, "hit")
	s.h.Stats.GetHits.Add(1)
	out := s.out[:0]
	if f.value {
		out = append(out, "VA "...)
		out = strconv.AppendInt(out, int64(len(it.Value)), 10)
	} else {
		out = append(out, "HD"...)
	}
	deadline := it.Deadline
	for i := 2; i < n; i++ {
		switch t[i][0] {
		case 'T':
			deadline = Deadline(f.ttl, now)
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
		case 'O':
			if len(t[i]) > maxOpaqueLength {
				s.errLine(errOpaque)
				return
			}
			out = append(out, ' ')
			out = append(out, t[i]...)
		case 'k':
			out = appendMetaKey(out, f.key, f.base64)
		}
	}
	if f.hasTTL {
		s.h.Stats.CmdTouch.Add(1)
		if _, err := s.h.store.Touch(s.ctx, f.key, deadline, nil, now); err != nil && !errors.Is(err, store.ErrNotFound) {
			s.h.opts.Logger.Warn("touch failed", "err", err)
		}
	}
	out = append(out, crlf...)
	if f.value {
		out = append(out, it.Value...)
		out = append(out, crlf...)
	}
	s.out = out
	s.write(out)
}

// appendTTL writes the remaining lifetime as memcached's mg t flag does: -1
// for an item that never expires.
func appendTTL(out []byte, deadline, now int64) []byte {
	if deadline == 0 {
		return append(out, '-', '1')
	}
	return strconv.AppendInt(out, deadline-now, 10)
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
	f, ok := parseMetaFlags(t, 3, n, 's')
	if !ok {
		return fail(f.errReply)
	}
	if f.vivify {
		return fail("CLIENT_ERROR invalid flag")
	}
	for i := 3; i < n; i++ {
		if t[i][0] == 'O' && len(t[i]) > maxOpaqueLength {
			return fail(errOpaque)
		}
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
	}
	now := s.now()
	s.h.Stats.CmdSet.Add(1)
	if store.ItemSize(len(f.key), int(vlen), f.flags) > int(s.h.maxItem.Load()) {
		s.h.Stats.StoreTooLarge.Add(1)
		s.h.store.Delete(s.ctx, f.key, now)
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
		deadline = Deadline(f.ttl, now)
	}
	item := store.Item{Key: f.key, Value: s.val, Flags: f.flags, Deadline: deadline}
	if f.hasCAS && mode != store.Add {
		item.CAS = f.cas
	}
	cas, err := s.h.store.Store(s.ctx, mode, item, now)
	s.count("ms", f.key, statusOf(err))
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
		switch t[i][0] {
		case 'O':
			out = append(out, ' ')
			out = append(out, t[i]...)
		case 'k':
			out = appendMetaKey(out, f.key, f.base64)
		case 'c':
			out = append(out, ' ', 'c')
			out = strconv.AppendUint(out, cas, 10)
		}
	}
	s.out = append(out, crlf...)
	s.write(s.out)
	return nil
}

// metaDelete serves md.
func (s *Session) metaDelete(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rFlagsTooLong) {
		return
	}
	f, ok := parseMetaFlags(t, 2, n, 'd')
	if !ok || f.vivify {
		s.write(rBadMetaFlag)
		return
	}
	out, ok := appendEcho(s.out[:0], t, n, f.key, f.base64)
	if !ok {
		s.errLine(errOpaque)
		return
	}
	now := s.now()
	status := "HD"
	if f.hasCAS {
		it, err := s.h.store.Get(s.ctx, f.key, s.val[:0], now)
		s.val = it.Value
		if err == nil && it.CAS != f.cas {
			status = "EX"
		}
	}
	if status == "HD" {
		if err := s.h.store.Delete(s.ctx, f.key, now); err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				s.storeError(err)
				return
			}
			s.h.Stats.DeleteMisses.Add(1)
			status = "NF"
		} else {
			s.h.Stats.DeleteHits.Add(1)
		}
	}
	s.count("md", f.key, metaStatus(status))
	if f.quiet && status == "HD" {
		return // quiet mode hides only the nominal reply
	}
	s.out = append(append([]byte(status), out...), crlf...)
	s.write(s.out)
}

// metaArithmetic serves ma.
func (s *Session) metaArithmetic(t [][]byte, n, nt int) {
	if !s.metaCheck(t, nt, rFlagsTooLong) {
		return
	}
	f, ok := parseMetaFlags(t, 2, n, 'a')
	if !ok {
		s.write(rBadMetaFlag)
		return
	}
	decr := false
	switch f.mode {
	case 0, 'I', '+':
	case 'D', '-':
		decr = true
	default:
		s.errLine("CLIENT_ERROR invalid mode for ma M token")
		return
	}
	now := s.now()
	status := ""
	var v uint64
	it, err := s.h.store.Get(s.ctx, f.key, s.val[:0], now)
	s.val = it.Value
	switch {
	case errors.Is(err, store.ErrNotFound) && f.vivify:
		v = f.initial
		num := strconv.AppendUint(nil, v, 10)
		item := store.Item{Key: f.key, Value: num, Deadline: Deadline(f.vivTTL, now)}
		if _, err := s.h.store.Store(s.ctx, store.Add, item, now); err != nil {
			status = "NS"
		}
	case errors.Is(err, store.ErrNotFound):
		status = "NF"
	case err != nil:
		s.storeError(err)
		return
	case f.hasCAS && it.CAS != f.cas:
		status = "EX"
	default:
		v, err = s.h.store.Incr(s.ctx, f.key, f.delta, decr, now)
		if errors.Is(err, store.ErrNonNumeric) {
			s.write(rNonNumeric)
			return
		} else if errors.Is(err, store.ErrNotFound) {
			status = "NF"
		} else if err != nil {
			s.storeError(err)
			return
		}
	}
	if status != "" {
		out, ok := appendEcho(append(s.out[:0], status...), t, n, f.key, f.base64)
		if !ok {
			s.errLine(errOpaque)
			return
		}
		s.out = append(out, crlf...)
		s.write(s.out)
		return
	}
	if f.quiet {
		return
	}
	if f.hasTTL {
		s.h.store.Touch(s.ctx, f.key, Deadline(f.ttl, now), nil, now)
	}
	cur, _ := s.h.store.Get(s.ctx, f.key, s.val[:0], now)
	s.val = cur.Value
	num := strconv.AppendUint(nil, v, 10)
	out := s.out[:0]
	if f.value {
		out = append(out, "VA "...)
		out = strconv.AppendInt(out, int64(len(num)), 10)
	} else {
		out = append(out, "HD"...)
	}
	for i := 2; i < n; i++ {
		switch t[i][0] {
		case 'c':
			out = append(out, ' ', 'c')
			out = strconv.AppendUint(out, cur.CAS, 10)
		case 't':
			out = append(out, ' ', 't')
			out = appendTTL(out, cur.Deadline, now)
		case 'O':
			if len(t[i]) > maxOpaqueLength {
				s.errLine(errOpaque)
				return
			}
			out = append(out, ' ')
			out = append(out, t[i]...)
		case 'k':
			out = appendMetaKey(out, f.key, f.base64)
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

// metaDebug serves me. Fields memcached derives from its slab allocator
// (la, cls) have no equivalent here and are reported as 0 and 1.
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
	it, err := s.h.store.Get(s.ctx, key, s.val[:0], now)
	s.val = it.Value
	if err != nil {
		s.write(rEN)
		return
	}
	exp := int64(-1)
	if it.Deadline != 0 {
		exp = now - it.Deadline
	}
	out := append(s.out[:0], "ME "...)
	out = append(out, t[1]...)
	out = append(out, " exp="...)
	out = strconv.AppendInt(out, exp, 10)
	out = append(out, " la=0 cas="...)
	out = strconv.AppendUint(out, it.CAS, 10)
	out = append(out, " fetch=no cls=1 size="...)
	out = strconv.AppendInt(out, int64(store.ItemSize(len(key), len(it.Value), it.Flags)), 10)
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
