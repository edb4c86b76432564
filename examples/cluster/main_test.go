package main

import (
	"errors"
	"io"
	"path/filepath"
	"testing"

	"github.com/tokenserver/tokenserver/tlsio"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The flags: what is required, what is checked. The nodes themselves run as
// processes in test/cluster.
func TestParse(t *testing.T) {
	certs := []string{"--certs", "certs", "--node-certs", "node-certs"}
	base := append([]string{"--health-port", "6330", "--peers", "127.0.0.1:6330"}, certs...)
	etcd := append([]string{"--provider", "etcd", "--etcd-endpoints", "http://127.0.0.1:2379"}, certs...)
	for _, bad := range [][]string{
		append([]string{"--role", "gateway"}, base...),
		{"--role", "front", "--certs", "certs", "--node-certs", "node-certs"},
		{"--role", "front", "--health-port", "6330", "--peers", "127.0.0.1:6330", "--node-certs", "node-certs"},
		{"--role", "front", "--health-port", "6330", "--peers", "127.0.0.1:6330", "--certs", "certs"},
		append([]string{"--role", "front", "--plaintext-nodes"}, base...),
		append([]string{"--role", "bench", "--bench-conns", "1,x"}, base...),
		append([]string{"--role", "bench", "--bench-plain", "nowhere"}, base...),
		append([]string{"--role", "handler", "--log-level", "loud"}, base...),
		append([]string{"--role", "handler", "--metrics", "127.0.0.1:0"}, base...),
		append([]string{"--role", "front", "--metrics", "nowhere"}, base...),
		append([]string{"--role", "front", "--pprof"}, base...),
		append([]string{"--role", "front", "--provider", "consul"}, base...),
		append([]string{"--role", "front", "--provider", "etcd"}, base...),
		append([]string{"--role", "front", "--etcd-endpoints", "http://127.0.0.1:2379"}, base...),
		append([]string{"--role", "front", "--health-port", "6330"}, etcd...),
		append([]string{"--role", "front", "--etcd-cert", "c.crt"}, etcd...),
	} {
		if _, err := parse(bad, io.Discard); !errors.Is(err, errUsage) {
			t.Errorf("parse(%q) = %v, want a usage error", bad, err)
		}
	}
	c, err := parse(append([]string{"--role", "front", "--metrics", "127.0.0.1:0", "--pprof"}, base...), io.Discard)
	if err != nil || c.metrics != "127.0.0.1:0" || !c.pprof {
		t.Errorf("front --metrics --pprof: parsed %+v, %v", c, err)
	}
	c, err = parse(append([]string{"--role", "bench", "--bench-conns", "1,64", "--bench-plain", "127.0.0.1:7001"}, base...), io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if len(c.benchConns) != 2 || c.benchConns[1] != 64 || len(c.peers) != 1 || c.provider != "automanaged" || c.benchPlain != "127.0.0.1:7001" {
		t.Errorf("parsed %+v", c)
	}
	c, err = parse([]string{"--role", "handler", "--provider", "etcd", "--etcd-endpoints", "https://a:2379, https://b:2379",
		"--etcd-ca", "ca.crt", "--etcd-cert", "c.crt", "--etcd-key", "c.key", "--certs", "certs", "--plaintext-nodes", "--count"}, io.Discard)
	if err != nil || len(c.etcd.endpoints) != 2 || c.etcd.endpoints[1] != "https://b:2379" || c.etcd.prefix != "/tokenserver" || !c.plaintextNodes || !c.count {
		t.Errorf("etcd: parsed %+v, %v", c, err)
	}
}

// The nodes' certificates must come from a CA of their own: the same CA as
// the token clients' is refused before the node starts.
func TestNodeCertsNeedTheirOwnCA(t *testing.T) {
	dir := t.TempDir()
	for _, d := range []string{"certs", "node-certs"} {
		certs, err := tlsio.GenerateDevCerts()
		if err != nil {
			t.Fatal(err)
		}
		if err := certs.WriteFiles(filepath.Join(dir, d), false); err != nil {
			t.Fatal(err)
		}
	}
	c := config{certs: filepath.Join(dir, "certs"), nodeCerts: filepath.Join(dir, "certs")}
	if _, err := loadNodeTLS(c); !errors.Is(err, errSharedCA) {
		t.Errorf("--node-certs = --certs: %v, want errSharedCA", err)
	}
	c.nodeCerts = filepath.Join(dir, "node-certs")
	n, err := loadNodeTLS(c)
	if err != nil || !n.OwnCA || !n.Server.RequestCert {
		t.Errorf("a CA of their own: %+v, %v", n, err)
	}
	if _, err := n.RemoteOptions(); err != nil {
		t.Error(err)
	}
	c.plaintextNodes = true
	if n, err := loadNodeTLS(c); n != nil || err != nil {
		t.Errorf("--plaintext-nodes: %+v, %v", n, err)
	}
}

// medianRatio pairs the runs of one round, not the medians of each side.
func TestMedianRatio(t *testing.T) {
	a := []benchResult{{rps: 10}, {rps: 30}, {rps: 40}}
	b := []benchResult{{rps: 20}, {rps: 20}, {rps: 10}}
	got := medianRatio(a, b, func(x, y benchResult) float64 { return x.rps / y.rps })
	if got != 1.5 { // ratios 0.5, 1.5 and 4
		t.Errorf("median of 0.5, 1.5 and 4 = %v", got)
	}
	b[1].rps = 60 // ratios 0.5, 0.5, 4: median 0.5; medians 30 and 20 would give 1.5
	if got := medianRatio(a, b, func(x, y benchResult) float64 { return x.rps / y.rps }); got != 0.5 {
		t.Errorf("median of 0.5, 0.5 and 4 = %v", got)
	}
}
