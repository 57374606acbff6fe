package mcclient

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"strconv"
)

// The meta protocol subset the client speaks. Every request but mn and
// flush_all carries an opaque token O<n>; memcached answers each request
// with exactly one reply, in order, so replies are matched first-in
// first-out and the token is checked against the request at the head: a
// mismatch means the stream is out of step, and the connection is closed.
//
// Quiet mode ("q") is deliberately not used: it suppresses the success
// replies, so matching would rest on the opaque tokens alone, but
// memcached's error replies (SERVER_ERROR object too large, out of memory)
// carry no token, and behind a run of suppressed replies they could not be
// tied to their request. One reply per request keeps matching exact; the
// replies repcache gets are small (HD, EN, NF are 5–10 bytes with the token).

type op uint8

const (
	opGet    op = iota // mg <key> v c O<n>
	opStore            // ms <key> <len> T<exp> M<mode> [C<cas>] O<n>
	opDelete           // md <key> O<n>
	opNoop             // mn
	opFlush            // flush_all
)

// Mode is how a store applies (meta ms M flag).
type Mode byte

const (
	Set     Mode = 'S'
	Add     Mode = 'E'
	Replace Mode = 'R'
)

// Answers about records (not failures).
var (
	ErrCacheMiss = errors.New("memcached: cache miss")
	ErrNotStored = errors.New("memcached: not stored")
	ErrExists    = errors.New("memcached: compare-and-swap conflict")
	ErrNotFound  = errors.New("memcached: not found")
	ErrTooLarge  = errors.New("memcached: SERVER_ERROR object too large for cache")
)

// ErrMalformedKey is returned for a key memcached's text protocol cannot
// carry (empty, over 250 bytes, or with a space or control character).
var ErrMalformedKey = errors.New("memcached: malformed key")

// ProtocolError is a reply the client cannot use; the connection it came on
// is closed.
type ProtocolError struct{ Msg string }

func (e *ProtocolError) Error() string { return "memcached protocol: " + e.Msg }

const maxKeyLength = 250

// ValidKey reports whether memcached's text protocol can carry key as is.
func ValidKey(key string) bool {
	if len(key) == 0 || len(key) > maxKeyLength {
		return false
	}
	for i := 0; i < len(key); i++ {
		if c := key[i]; c <= ' ' || c == 0x7f {
			return false
		}
	}
	return true
}

// appendRequest appends c's request line (and data block) to b.
func appendRequest(b []byte, c *call, opaque uint32) []byte {
	switch c.op {
	case opGet:
		b = append(append(append(b, "mg "...), c.key...), " v c O"...)
	case opStore:
		b = append(append(append(b, "ms "...), c.key...), ' ')
		b = strconv.AppendInt(b, int64(len(c.value)), 10)
		b = strconv.AppendInt(append(b, " T"...), int64(c.exptime), 10)
		b = append(b, ' ', 'M', byte(c.mode))
		if c.cas != 0 {
			b = strconv.AppendUint(append(b, " C"...), c.cas, 10)
		}
		b = append(b, " O"...)
	case opDelete:
		b = append(append(append(b, "md "...), c.key...), " O"...)
	case opNoop:
		return append(b, "mn\r\n"...)
	case opFlush:
		return append(b, "flush_all\r\n"...)
	}
	b = append(strconv.AppendUint(b, uint64(opaque), 10), '\r', '\n')
	if c.op == opStore {
		b = append(append(b, c.value...), '\r', '\n')
	}
	return b
}

// maxValue bounds the value size a reply may announce (memcached's -I
// cannot exceed 1 GiB), so a broken peer cannot make the client allocate
// without bound.
const maxValue = 1 << 30

// readReply reads one reply into c's result fields. A returned error means
// the stream can no longer be trusted (the connection must go); an answer
// about the record, or a server error message, is left in c.err.
func readReply(r *bufio.Reader, c *call, opaque uint32) error {
	line, err := r.ReadSlice('\n')
	if err != nil {
		if errors.Is(err, bufio.ErrBufferFull) {
			return &ProtocolError{Msg: "reply line too long"}
		}
		if err == io.EOF && len(line) > 0 {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	if len(line) < 2 || line[len(line)-2] != '\r' {
		return &ProtocolError{Msg: fmt.Sprintf("reply line %.40q not ended by CRLF", line)}
	}
	line = line[:len(line)-2]
	switch {
	case bytes.HasPrefix(line, []byte("SERVER_ERROR ")):
		msg := string(line[len("SERVER_ERROR "):])
		if msg == "object too large for cache" {
			c.err = ErrTooLarge
		} else {
			c.err = fmt.Errorf("memcached: SERVER_ERROR %s", msg)
		}
		return nil
	case bytes.HasPrefix(line, []byte("CLIENT_ERROR")), bytes.Equal(line, []byte("ERROR")):
		// The request was refused as malformed: repcache's requests never
		// are, so the stream is out of step.
		return &ProtocolError{Msg: fmt.Sprintf("memcached refused a request: %.80q", line)}
	}
	switch c.op {
	case opNoop:
		if string(line) != "MN" {
			return &ProtocolError{Msg: fmt.Sprintf("%.40q in reply to mn", line)}
		}
		return nil
	case opFlush:
		if string(line) != "OK" {
			return &ProtocolError{Msg: fmt.Sprintf("%.40q in reply to flush_all", line)}
		}
		return nil
	}
	if len(line) < 2 {
		return &ProtocolError{Msg: fmt.Sprintf("short reply %q", line)}
	}
	code, flags := string(line[:2]), line[2:]
	size := -1
	if code == "VA" {
		if len(flags) < 2 || flags[0] != ' ' {
			return &ProtocolError{Msg: fmt.Sprintf("VA without a size: %.40q", line)}
		}
		flags = flags[1:]
		end := bytes.IndexByte(flags, ' ')
		if end < 0 {
			end = len(flags)
		}
		n, err := strconv.Atoi(string(flags[:end]))
		if err != nil || n < 0 || n > maxValue {
			return &ProtocolError{Msg: fmt.Sprintf("VA with a bad size: %.40q", line)}
		}
		size, flags = n, flags[end:]
	}
	gotOpaque := false
	for len(flags) > 0 {
		if flags[0] != ' ' {
			return &ProtocolError{Msg: fmt.Sprintf("malformed flags in %.60q", line)}
		}
		flags = flags[1:]
		end := bytes.IndexByte(flags, ' ')
		if end < 0 {
			end = len(flags)
		}
		tok := flags[:end]
		flags = flags[end:]
		if len(tok) == 0 {
			continue
		}
		v, err := strconv.ParseUint(string(tok[1:]), 10, 64)
		switch tok[0] {
		case 'O':
			if err != nil || v != uint64(opaque) {
				return &ProtocolError{Msg: fmt.Sprintf("reply %.60q does not match request O%d", line, opaque)}
			}
			gotOpaque = true
		case 'c':
			if err != nil {
				return &ProtocolError{Msg: fmt.Sprintf("bad CAS in %.60q", line)}
			}
			c.rcas = v
		}
	}
	if !gotOpaque {
		return &ProtocolError{Msg: fmt.Sprintf("reply %.60q lacks the request's token O%d", line, opaque)}
	}
	switch {
	case c.op == opGet && code == "VA":
		c.rvalue = make([]byte, size+2)
		if _, err := io.ReadFull(r, c.rvalue); err != nil {
			if err == io.EOF {
				err = io.ErrUnexpectedEOF
			}
			return err
		}
		if c.rvalue[size] != '\r' || c.rvalue[size+1] != '\n' {
			return &ProtocolError{Msg: "value not followed by CRLF"}
		}
		c.rvalue = c.rvalue[:size:size]
	case c.op == opGet && code == "EN":
		c.err = ErrCacheMiss
	case c.op != opGet && code == "HD":
	case c.op == opStore && code == "NS":
		c.err = ErrNotStored
	case c.op == opStore && code == "EX":
		c.err = ErrExists
	case code == "NF":
		c.err = ErrNotFound
	default:
		return &ProtocolError{Msg: fmt.Sprintf("unexpected reply %.60q", line)}
	}
	return nil
}
