package store

import "math"

// Expired reports whether an item with deadline is dead at now (0 never dies).
func Expired(deadline, now int64) bool { return deadline != 0 && deadline <= now }

// ClampDeadline keeps a deadline within 32 bits, the range every tier keeps
// exactly (the embedded store's field, Lua numbers, PEXPIREAT milliseconds):
// later ones are the end of 2106, negative ones long past.
func ClampDeadline(d int64) int64 {
	switch {
	case d > math.MaxUint32:
		return math.MaxUint32
	case d < 0:
		return 1
	}
	return d
}

var modeNames = [...]string{Set: "set", Add: "add", Replace: "replace", Append: "append", Prepend: "prepend", CAS: "cas", CASStale: "cas"}

// String is the memcached command that has m's semantics.
func (m Mode) String() string {
	if int(m) < len(modeNames) {
		return modeNames[m]
	}
	return "unknown"
}
