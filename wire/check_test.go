package wire

import (
	"errors"
	"fmt"
	"reflect"
	"testing"
)

// check holds small fail-fast assertions in the style of testify's require.
// The module's go.sum does not list testify's own dependencies, so the tests
// of this package use these instead and need nothing beyond goleak.
var check checker

type checker struct{}

func fail(t testing.TB, msg []any, format string, args ...any) {
	t.Helper()
	s := fmt.Sprintf(format, args...)
	if len(msg) > 0 {
		if f, ok := msg[0].(string); ok {
			s += ": " + fmt.Sprintf(f, msg[1:]...)
		} else {
			s += ": " + fmt.Sprint(msg...)
		}
	}
	t.Fatal(s)
}

func (checker) NoError(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err != nil {
		fail(t, msg, "unexpected error: %v", err)
	}
}

func (checker) Error(t testing.TB, err error, msg ...any) {
	t.Helper()
	if err == nil {
		fail(t, msg, "expected an error")
	}
}

func (checker) ErrorIs(t testing.TB, err, target error, msg ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		fail(t, msg, "error %v is not %v", err, target)
	}
}

func (checker) Equal(t testing.TB, want, got any, msg ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		fail(t, msg, "not equal:\nwant %#v\ngot  %#v", want, got)
	}
}

func (checker) True(t testing.TB, ok bool, msg ...any) {
	t.Helper()
	if !ok {
		fail(t, msg, "expected true")
	}
}

func (checker) False(t testing.TB, ok bool, msg ...any) {
	t.Helper()
	if ok {
		fail(t, msg, "expected false")
	}
}

func (checker) Len(t testing.TB, v any, n int, msg ...any) {
	t.Helper()
	if l := reflect.ValueOf(v).Len(); l != n {
		fail(t, msg, "length %d, want %d", l, n)
	}
}

func (checker) Empty(t testing.TB, v any, msg ...any) {
	t.Helper()
	if rv := reflect.ValueOf(v); v != nil && rv.Len() != 0 {
		fail(t, msg, "expected empty, got length %d", rv.Len())
	}
}

func (checker) NotEmpty(t testing.TB, v any, msg ...any) {
	t.Helper()
	if v == nil || reflect.ValueOf(v).Len() == 0 {
		fail(t, msg, "expected non-empty")
	}
}

func (checker) Nil(t testing.TB, v []byte, msg ...any) {
	t.Helper()
	if v != nil {
		fail(t, msg, "expected nil, got %x", v)
	}
}

func (checker) NotNil(t testing.TB, v []byte, msg ...any) {
	t.Helper()
	if v == nil {
		fail(t, msg, "expected non-nil")
	}
}

func (checker) LessOrEqual(t testing.TB, a, b int, msg ...any) {
	t.Helper()
	if a > b {
		fail(t, msg, "%d > %d", a, b)
	}
}

func (checker) Zero(t testing.TB, a int, msg ...any) {
	t.Helper()
	if a != 0 {
		fail(t, msg, "expected 0, got %d", a)
	}
}
