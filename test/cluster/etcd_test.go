//go:build linux

package cluster

import (
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tokenserver/tokenserver/tlsio"
)

// The etcd membership: a real etcd server (go.etcd.io/etcd/server/v3,
// embedded in test/cluster/etcdserver, a module of its own so that etcd's
// dependencies stay out of the main module's), one process per test, the
// nodes its clients over mutual TLS (--etcd-ca, --etcd-cert, --etcd-key),
// as a deployment would point them at an existing etcd.

var etcdProgram = &program{
	name: "etcdserver", dir: "etcdserver", pkg: ".",
	env: []string{"GOWORK=off"}, // its own go.mod, whatever the environment
}

// etcdServer is the etcd process of an env.
type etcdServer struct {
	*node
	url     string // client URL (https)
	certs   string // directory of ca.crt, client.crt, client.key for the nodes
	version string // etcd's version, from its "ready" line
}

// flags are the nodes' flags to use it.
func (s *etcdServer) flags() []string {
	return []string{
		"--provider", "etcd", "--etcd-endpoints", s.url,
		"--etcd-ca", filepath.Join(s.certs, "ca.crt"),
		"--etcd-cert", filepath.Join(s.certs, "client.crt"), "--etcd-key", filepath.Join(s.certs, "client.key"),
	}
}

// newEtcdEnv is an env whose nodes find each other through an etcd server
// of its own, started and ready when it returns.
func newEtcdEnv(t *testing.T) *env {
	t.Helper()
	e := newEnv(t, 0)
	certs, err := tlsio.GenerateDevCerts()
	if err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(e.dir, "etcd-certs")
	if err := certs.WriteFiles(dir, false); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	url := "https://127.0.0.1:" + strconv.Itoa(ports[0])
	began := time.Now()
	n := e.run("etcd", etcdProgram.build(t),
		"--dir", filepath.Join(e.dir, "etcd-data"),
		"--client-url", url, "--peer-url", "http://127.0.0.1:"+strconv.Itoa(ports[1]),
		"--cert", filepath.Join(dir, "server.crt"), "--key", filepath.Join(dir, "server.key"),
		"--ca", filepath.Join(dir, "ca.crt"))
	e.etcd = &etcdServer{node: n, url: url, certs: dir}
	line := n.waitLine(t, " ready on ", 60*time.Second)
	e.etcd.version = strings.Fields(line)[1]
	t.Logf("etcd %s ready on %s in %v", e.etcd.version, url, time.Since(began).Round(time.Millisecond))
	return e
}

// providers runs f once per membership provider: automanaged (a peer list
// of nodes health endpoints), and etcd.
func providers(t *testing.T, nodes int, f func(t *testing.T, e *env)) {
	t.Run("automanaged", func(t *testing.T) { f(t, newEnv(t, nodes)) })
	t.Run("etcd", func(t *testing.T) { f(t, newEtcdEnv(t)) })
}
