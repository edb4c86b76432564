package main

import (
	"errors"
	"io"
	"testing"

	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The flags: what is required, what is checked. The nodes themselves run as
// processes in test/cluster.
func TestParse(t *testing.T) {
	base := []string{"--health-port", "6330", "--peers", "127.0.0.1:6330", "--certs", "certs"}
	for _, bad := range [][]string{
		append([]string{"--role", "gateway"}, base...),
		{"--role", "front", "--certs", "certs"},
		{"--role", "front", "--health-port", "6330", "--peers", "127.0.0.1:6330"},
		append([]string{"--role", "bench", "--bench-conns", "1,x"}, base...),
		append([]string{"--role", "handler", "--log-level", "loud"}, base...),
		append([]string{"--role", "handler", "--metrics", "127.0.0.1:0"}, base...),
		append([]string{"--role", "front", "--metrics", "nowhere"}, base...),
		append([]string{"--role", "front", "--pprof"}, base...),
	} {
		if _, err := parse(bad, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parse(%q) = %v, want a usage error", bad, err)
		}
	}
	c, err := parse(append([]string{"--role", "handler", "--peers", "a:1, b:2"}, base[:2]...), io.Discard)
	if err == nil {
		t.Errorf("no --certs: parsed %+v", c)
	}
	c, err = parse(append([]string{"--role", "front", "--metrics", "127.0.0.1:0", "--pprof"}, base...), io.Discard)
	if err != nil || c.metrics != "127.0.0.1:0" || !c.pprof {
		t.Errorf("front --metrics --pprof: parsed %+v, %v", c, err)
	}
	c, err = parse(append([]string{"--role", "bench", "--bench-conns", "1,64"}, base...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.benchConns) != 2 || c.benchConns[1] != 64 || len(c.peers) != 1 {
		t.Errorf("parsed %+v", c)
	}
}
