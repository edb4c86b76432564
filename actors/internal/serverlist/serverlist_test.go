package serverlist

import (
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// Each round tries every server once, in a random order, and a new round
// does not start with the server just tried.
func TestListOrder(t *testing.T) {
	l, err := New([]string{"a:1", "b:2", "c:3"})
	if err != nil {
		t.Fatal(err)
	}
	firsts := map[string]int{}
	prev := ""
	for range 300 {
		round := map[string]bool{}
		for i := range 3 {
			a := l.Next()
			if i == 0 {
				firsts[a]++
				if a == prev {
					t.Fatalf("a round starts with %s, the server just tried", a)
				}
			}
			round[a] = true
			prev = a
		}
		if len(round) != 3 {
			t.Fatalf("a round tried %v, want every server", round)
		}
	}
	for _, a := range []string{"a:1", "b:2", "c:3"} {
		if firsts[a] <= 30 {
			t.Errorf("%s starts %d rounds of 300", a, firsts[a])
		}
	}
	for _, bad := range []string{"nohost", "h:0", "h:65536", "h:x"} {
		if _, err := New([]string{bad}); err == nil {
			t.Errorf("New(%q) took it", bad)
		}
	}
}

// Every port from 1 to 65535 is taken, the bounds included.
func TestListTakesEveryPort(t *testing.T) {
	for _, s := range []string{"h:1", "h:65535", "[::1]:65535"} {
		if _, err := New([]string{s}); err != nil {
			t.Errorf("New(%q): %v", s, err)
		}
	}
}

// A list of one server tries that server on every attempt.
func TestListOfOneServer(t *testing.T) {
	l, err := New([]string{"only:1"})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 5 {
		if a := l.Next(); a != "only:1" {
			t.Fatalf("attempt %d tries %q, want only:1", i, a)
		}
	}
}
