// Package importer loads an existing Postfix cache into repcache: it reads
// `postmap -s TYPE:TABLE` output (key, white space, value per line), skips
// records that are already dead by the map's rules and lines that are not
// records of the map's kind (each reported with its line number), and
// writes the rest through a running repcache, which gives each record its
// derived lifetime. Writes are plain sets, so importing twice is harmless.
package importer

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/repcache/repcache/internal/policy"
)

// Summary counts what happened to the lines.
type Summary struct {
	Lines     int // lines read
	Imported  int // stored by repcache
	Expired   int // dead by the map's rules: skipped
	Malformed int // not "key value", or not a valid record: skipped
	Refused   int // answered with an error by repcache
	Skipped   int // the cleanup marker, empty lines
}

func (s Summary) String() string {
	return fmt.Sprintf("%d lines: %d imported, %d expired (skipped), %d malformed (skipped), %d refused by repcache, %d other skipped",
		s.Lines, s.Imported, s.Expired, s.Malformed, s.Refused, s.Skipped)
}

// Options configure Run.
type Options struct {
	Map      *policy.Map
	Now      int64
	Problem  func(line int, msg string) // told about each skipped or refused line
	Progress func(Summary)              // called every 1000 lines
	Batch    int                        // sets in flight at once (default 100)
}

type pending struct {
	line int
	key  string
}

// Run imports r through conn (a memcache connection to repcache).
func Run(r io.Reader, conn io.ReadWriter, o Options) (Summary, error) {
	if o.Batch <= 0 {
		o.Batch = 100
	}
	if o.Problem == nil {
		o.Problem = func(int, string) {}
	}
	var sum Summary
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	w := bufio.NewWriter(conn)
	replies := bufio.NewReader(conn)
	var inflight []pending
	flush := func() error {
		if err := w.Flush(); err != nil {
			return err
		}
		for _, p := range inflight {
			l, err := replies.ReadString('\n')
			if err != nil {
				return fmt.Errorf("reading repcache's reply for line %d: %w", p.line, err)
			}
			if l = strings.TrimRight(l, "\r\n"); l == "STORED" {
				sum.Imported++
			} else {
				sum.Refused++
				o.Problem(p.line, fmt.Sprintf("repcache refused %s: %s", p.key, l))
			}
		}
		inflight = inflight[:0]
		return nil
	}
	for sc.Scan() {
		sum.Lines++
		n := sum.Lines
		line := bytes.TrimRight(sc.Bytes(), "\r")
		if len(bytes.TrimSpace(line)) == 0 {
			sum.Skipped++
			continue
		}
		i := bytes.IndexAny(line, " \t")
		if i <= 0 {
			sum.Malformed++
			o.Problem(n, fmt.Sprintf("not \"key value\": %q", clip(line)))
			continue
		}
		key, value := string(line[:i]), bytes.TrimLeft(line[i:], " \t")
		if key == policy.CleanupKey {
			sum.Skipped++
			continue
		}
		if _, keep, err := o.Map.Rule.Deadline(value, 0, o.Now); err != nil {
			sum.Malformed++
			o.Problem(n, fmt.Sprintf("%s: %v", key, err))
			continue
		} else if !keep {
			sum.Expired++
			continue
		}
		fmt.Fprintf(w, "set %s%s 0 0 %d\r\n%s\r\n", o.Map.Prefix, key, len(value), value)
		inflight = append(inflight, pending{n, key})
		if len(inflight) >= o.Batch {
			if err := flush(); err != nil {
				return sum, err
			}
		}
		if o.Progress != nil && n%1000 == 0 {
			o.Progress(sum)
		}
	}
	if err := sc.Err(); err != nil {
		flush()
		return sum, fmt.Errorf("reading line %d: %w", sum.Lines+1, err)
	}
	return sum, flush()
}

func clip(b []byte) string {
	if len(b) > 60 {
		return string(b[:60]) + "..."
	}
	return string(b)
}
