package protocol

// maxTokens is memcached's MAX_TOKENS: at most maxTokens-1 tokens are split
// off a line; whatever follows is left for multi-key get to re-tokenize.
const maxTokens = 24

// tokenize splits line on single spaces exactly as memcached's
// tokenize_command does: runs of spaces separate tokens, only ' ' is a
// separator, and after maxTokens-1 tokens the remainder is returned in rest
// (nil when the line was consumed). tokens must have room for maxTokens.
func tokenize(line []byte, tokens [][]byte) (n int, rest []byte) {
	s := 0
	for e := 0; e < len(line); e++ {
		if line[e] != ' ' {
			continue
		}
		if s != e {
			tokens[n] = line[s:e]
			n++
			if n == maxTokens-1 {
				if e+1 < len(line) {
					return n, line[e+1:]
				}
				return n, nil
			}
		}
		s = e + 1
	}
	if s != len(line) {
		tokens[n] = line[s:]
		n++
	}
	return n, nil
}
