package config

import (
	"errors"
	"fmt"
	"math"
	"reflect"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/go-viper/mapstructure/v2"
)

// node is one key of the config tree, derived from Config's koanf tags so the
// struct stays the single source of truth for key names and types.
type node struct {
	key      string           // full dotted key
	typ      reflect.Type     // Go type of the field
	index    []int            // field index path from Config
	children map[string]*node // nil for leaves
}

var (
	durationType    = reflect.TypeFor[time.Duration]()
	byteSizeType    = reflect.TypeFor[ByteSize]()
	stringSliceType = reflect.TypeFor[[]string]()

	root   = buildTree(reflect.TypeFor[Config](), "", nil)
	leaves = map[string]*node{} // dotted key -> leaf, filled by buildTree
)

func buildTree(t reflect.Type, key string, index []int) *node {
	n := &node{key: key, typ: t, index: index}
	if t.Kind() != reflect.Struct {
		leaves[key] = n
		return n
	}
	n.children = map[string]*node{}
	for i := range t.NumField() {
		f := t.Field(i)
		name := f.Tag.Get("koanf")
		if name == "" || name == "-" {
			continue
		}
		child := name
		if key != "" {
			child = key + "." + name
		}
		n.children[name] = buildTree(f.Type, child, append(slices.Clone(index), i))
	}
	return n
}

// defaultsMap renders Default() as a nested map for the bottom koanf layer.
func defaultsMap() map[string]any {
	d := reflect.ValueOf(Default()).Elem()
	var walk func(n *node) map[string]any
	walk = func(n *node) map[string]any {
		m := map[string]any{}
		for name, c := range n.children {
			if c.children != nil {
				m[name] = walk(c)
				continue
			}
			v := d.FieldByIndex(c.index).Interface()
			if s, ok := v.([]string); ok {
				v = slices.Clone(s)
			}
			m[name] = v
		}
		return m
	}
	return walk(root)
}

// checkTree checks one layer's nested map against the schema before it is
// merged, so errors can name the full dotted key: unknown keys, a scalar
// where a section belongs, and null leaves (which would otherwise silently
// mean "default"). Null sections ("cache:" with everything commented out)
// are allowed and removed, so they do not wipe out lower layers.
func checkTree(m map[string]any, n *node, prefix string) error {
	names := make([]string, 0, len(m))
	for name := range m {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		key := name
		if prefix != "" {
			key = prefix + "." + name
		}
		c, ok := n.children[name]
		if !ok {
			if strings.Contains(name, ".") {
				return fmt.Errorf("config: field name %q contains \".\"; nest the keys instead", key)
			}
			return fmt.Errorf("config: unknown field %q", key)
		}
		v := m[name]
		switch {
		case c.children != nil && v == nil:
			delete(m, name)
		case c.children != nil:
			sub, ok := v.(map[string]any)
			if !ok {
				return fmt.Errorf("config: %s: expected a mapping of %s.* keys, got %s", key, key, describe(v))
			}
			if err := checkTree(sub, c, key); err != nil {
				return err
			}
		case v == nil:
			return fmt.Errorf("config: %s: expected %s, got null", key, want(key, c.typ))
		}
	}
	return nil
}

// typeError is returned by decodeHook; the key is added by decodeError from
// mapstructure's DecodeError.
type typeError struct {
	typ reflect.Type
	got any
}

func (e *typeError) Error() string {
	return fmt.Sprintf("expected %s, got %s", want("", e.typ), describe(e.got))
}

// want describes what a key of type t accepts, for error messages.
func want(key string, t reflect.Type) string {
	switch {
	case key == "unix_socket_mode":
		return `a quoted octal string such as "0660"` // unquoted 0660 is the YAML integer 432
	case t == durationType:
		return `a duration such as "30s" or "5m"`
	case t == byteSizeType:
		return `a byte size such as "64MiB" or 1048576`
	case t == stringSliceType:
		return "a list of strings"
	case t.Kind() == reflect.Int:
		return "an integer"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.String:
		return "a string"
	case t.Kind() == reflect.Struct:
		return "a mapping"
	}
	return t.String()
}

// describe names a decoded value's YAML-level type and value.
func describe(v any) string {
	switch v := v.(type) {
	case nil:
		return "null"
	case bool:
		return "bool " + strconv.FormatBool(v)
	case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64:
		return fmt.Sprintf("integer %d", v)
	case float32, float64:
		return fmt.Sprintf("float %v", v)
	case string:
		return fmt.Sprintf("string %q", v)
	case []any, []string:
		return "a list"
	case map[string]any, map[any]any:
		return "a mapping"
	case time.Time:
		return "timestamp " + v.Format(time.RFC3339)
	}
	return fmt.Sprintf("%T", v)
}

// decodeHook converts every leaf strictly itself, so mapstructure (run
// without WeaklyTypedInput) never applies its own lax conversions: no
// integer-as-duration, no bool-as-int, no number-as-string.
func decodeHook(from, to reflect.Type, data any) (any, error) {
	bad := &typeError{typ: to, got: data}
	switch {
	case to == durationType:
		switch v := data.(type) {
		case time.Duration: // from flags
			return v, nil
		case string:
			d, err := time.ParseDuration(v)
			if err != nil {
				return nil, fmt.Errorf(`cannot parse %q as a duration (want Go syntax such as "30s" or "5m")`, v)
			}
			return d, nil
		}
		return nil, bad

	case to == byteSizeType:
		switch v := data.(type) {
		case ByteSize:
			return v, nil
		case string: // from env, flags and quoted YAML
			return ParseByteSize(v)
		}
		n, ok := toInt64(data)
		if !ok || n < 0 {
			return nil, bad
		}
		return ByteSize(n), nil

	case to == stringSliceType:
		switch v := data.(type) {
		case []string:
			return v, nil
		case []any:
			out := make([]string, len(v))
			for i, e := range v {
				s, ok := e.(string)
				if !ok {
					return nil, fmt.Errorf("expected a list of strings, got %s at index %d", describe(e), i)
				}
				out[i] = s
			}
			return out, nil
		}
		return nil, bad

	case to.Kind() == reflect.Int:
		if s, ok := data.(string); ok { // from env, and quoted YAML
			n, err := strconv.Atoi(s)
			if errors.Is(err, strconv.ErrRange) {
				return nil, fmt.Errorf("%q is out of range for int", s)
			}
			if err != nil {
				return nil, fmt.Errorf("cannot parse %q as int", s)
			}
			return n, nil
		}
		n, ok := toInt64(data)
		if !ok {
			return nil, bad
		}
		if n < math.MinInt || n > math.MaxInt {
			return nil, fmt.Errorf("%d is out of range for int", n)
		}
		return int(n), nil

	case to.Kind() == reflect.String:
		if _, ok := data.(string); !ok {
			return nil, bad
		}
		return data, nil

	case to.Kind() == reflect.Bool:
		switch v := data.(type) {
		case bool:
			return v, nil
		case string: // from env
			b, err := strconv.ParseBool(v)
			if err != nil {
				return nil, fmt.Errorf("cannot parse %q as a boolean (true or false)", v)
			}
			return b, nil
		}
		return nil, bad

	case to.Kind() == reflect.Struct:
		if _, ok := data.(map[string]any); !ok && data != nil {
			return nil, bad
		}
	}
	return data, nil
}

// toInt64 accepts the integer types YAML and flags produce.
func toInt64(v any) (int64, bool) {
	switch v := v.(type) {
	case int:
		return int64(v), true
	case int8:
		return int64(v), true
	case int16:
		return int64(v), true
	case int32:
		return int64(v), true
	case int64:
		return v, true
	case uint:
		return int64(v), uint64(v) <= math.MaxInt64
	case uint8:
		return int64(v), true
	case uint16:
		return int64(v), true
	case uint32:
		return int64(v), true
	case uint64:
		return int64(v), v <= math.MaxInt64
	}
	return 0, false
}

// fieldError is an error about one dotted key.
type fieldError struct {
	key string
	err error
}

// decodeError turns mapstructure's (possibly joined, nested) errors into one
// "config: key: problem" error, choosing the smallest key for determinism.
func decodeError(err error) error {
	var found []fieldError
	var collect func(error)
	collect = func(err error) {
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				collect(e)
			}
			return
		}
		var de *mapstructure.DecodeError
		if errors.As(err, &de) {
			inner := de.Unwrap()
			var nested *mapstructure.DecodeError
			if _, isJoin := inner.(interface{ Unwrap() []error }); isJoin || errors.As(inner, &nested) {
				collect(inner)
				return
			}
			var te *typeError
			if errors.As(inner, &te) {
				inner = fmt.Errorf("expected %s, got %s", want(de.Name(), te.typ), describe(te.got))
			}
			found = append(found, fieldError{de.Name(), inner})
			return
		}
		found = append(found, fieldError{"", err})
	}
	collect(err)
	if len(found) == 0 {
		return fmt.Errorf("config: %w", err)
	}
	return firstError(found)
}

// firstError returns the error with the smallest key, formatted.
func firstError(errs []fieldError) error {
	slices.SortStableFunc(errs, func(a, b fieldError) int { return strings.Compare(a.key, b.key) })
	e := errs[0]
	if e.key == "" {
		return fmt.Errorf("config: %w", e.err)
	}
	return fmt.Errorf("config: %s: %w", e.key, e.err)
}
