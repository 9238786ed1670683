// Package nilcheck tells a nil value stored in an interface from a real
// one, for the constructors' wiring checks.
package nilcheck

import "reflect"

// IsNil reports whether v is nil, or an interface holding a nil pointer,
// map, slice, channel or func: a `var pool *pgxpool.Pool` passed as an
// interface is not == nil, yet panics on first use.
func IsNil(v any) bool {
	if v == nil {
		return true
	}
	switch rv := reflect.ValueOf(v); rv.Kind() {
	case reflect.Pointer, reflect.Map, reflect.Slice, reflect.Chan, reflect.Func, reflect.Interface, reflect.UnsafePointer:
		return rv.IsNil()
	default: // the other kinds cannot be nil
		return false
	}
}
