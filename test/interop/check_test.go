package interop

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// check holds the few assertions these tests need; each fails the test at
// once (t.Fatal), so it must be called from the test's own goroutine.
var check checker

type checker struct{}

func msg(msgAndArgs []any) string {
	if len(msgAndArgs) == 0 {
		return ""
	}
	if f, ok := msgAndArgs[0].(string); ok {
		return ": " + fmt.Sprintf(f, msgAndArgs[1:]...)
	}
	return ": " + fmt.Sprint(msgAndArgs...)
}

func (checker) True(t *testing.T, ok bool, msgAndArgs ...any) {
	t.Helper()
	if !ok {
		t.Fatalf("want true%s", msg(msgAndArgs))
	}
}

func (checker) False(t *testing.T, ok bool, msgAndArgs ...any) {
	t.Helper()
	if ok {
		t.Fatalf("want false%s", msg(msgAndArgs))
	}
}

func (checker) Equal(t *testing.T, want, got any, msgAndArgs ...any) {
	t.Helper()
	if !reflect.DeepEqual(want, got) {
		t.Fatalf("want %#v, got %#v%s", want, got, msg(msgAndArgs))
	}
}

func (checker) NotEqual(t *testing.T, notWant, got any, msgAndArgs ...any) {
	t.Helper()
	if reflect.DeepEqual(notWant, got) {
		t.Fatalf("got %#v%s", got, msg(msgAndArgs))
	}
}

func (checker) NoError(t *testing.T, err error, msgAndArgs ...any) {
	t.Helper()
	if err != nil {
		t.Fatalf("unexpected error %v%s", err, msg(msgAndArgs))
	}
}

func (checker) ErrorIs(t *testing.T, err, target error, msgAndArgs ...any) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("error %v does not match %v%s", err, target, msg(msgAndArgs))
	}
}

func (checker) Len(t *testing.T, x any, n int, msgAndArgs ...any) {
	t.Helper()
	if l := reflect.ValueOf(x).Len(); l != n {
		t.Fatalf("want length %d, got %d%s", n, l, msg(msgAndArgs))
	}
}

func (checker) Empty(t *testing.T, x any, msgAndArgs ...any) {
	t.Helper()
	if l := reflect.ValueOf(x).Len(); l != 0 {
		t.Fatalf("want empty, got length %d%s", l, msg(msgAndArgs))
	}
}

func (checker) NotEmpty(t *testing.T, x any, msgAndArgs ...any) {
	t.Helper()
	if reflect.ValueOf(x).Len() == 0 {
		t.Fatalf("want not empty%s", msg(msgAndArgs))
	}
}

func (checker) Contains(t *testing.T, s, sub string, msgAndArgs ...any) {
	t.Helper()
	if !strings.Contains(s, sub) {
		t.Fatalf("%q not found in %q%s", sub, s, msg(msgAndArgs))
	}
}

func (checker) Less(t *testing.T, a, b interface{ Nanoseconds() int64 }, msgAndArgs ...any) {
	t.Helper()
	if a.Nanoseconds() >= b.Nanoseconds() {
		t.Fatalf("want %v < %v%s", a, b, msg(msgAndArgs))
	}
}
