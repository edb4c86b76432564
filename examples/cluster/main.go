// Command cluster runs one node of a tokenserver cluster on Proto.Actor's
// cluster: a front node (--role front) terminates the clients' TLS and
// routes each connection's tokens to the handler grain of the client's
// identity; a handler node (--role handler) hosts those grains. The grain
// here answers each token with the token and the handler node's name
// ("hello @h1"), after --delay; with --count, also the number of tokens the
// grain has handled, this one included ("hello @h1 #7").
//
// One front and two handler nodes on loopback (the README's "Beyond one
// machine" walks through it, with the certificates of tokencat certs):
//
//	P=127.0.0.1:6330,127.0.0.1:6331,127.0.0.1:6332 # every node's health endpoint
//	cluster --role handler --name h1 --health-port 6331 --peers $P --certs certs --node-certs node-certs &
//	cluster --role handler --name h2 --health-port 6332 --peers $P --certs certs --node-certs node-certs &
//	cluster --role front --name f1 --health-port 6330 --peers $P --certs certs --node-certs node-certs --listen 127.0.0.1:7000
//
// Membership (--provider):
//   - automanaged (the default, for a quick start): every node serves a
//     health endpoint over plain HTTP on --host:--health-port and polls the
//     --peers list (the health host:port of every node, itself included)
//     every --refresh. The endpoint tells anyone who reaches it the node's
//     id, remote address, kinds and cluster name, and takes no
//     credentials: keep --host on loopback or a private network that no
//     client reaches, never facing the Internet.
//   - etcd: nodes register under --etcd-prefix in the etcd cluster at
//     --etcd-endpoints (with a lease of 3 s: a dead node leaves within about
//     that), over TLS with --etcd-ca (and a client certificate with
//     --etcd-cert and --etcd-key).
//
// Nodes talk over Proto.Actor's remote (gRPC) on --host:--remote-port with
// mutual TLS from the --node-certs directory (ca.crt, server.crt,
// server.key, client.crt, client.key, as `tokencat certs DIR` writes them):
// a CA of the nodes' own, which must not be the CA of --certs, so that no
// token client's certificate opens a node (Proto.Actor's remote takes any
// actor message from whoever it accepts). Or in plaintext with
// --plaintext-nodes on a loopback --host. A front's token server uses
// --certs (its server.crt and server.key, and ca.crt for the clients).
//
// A front with --metrics HOST:PORT serves its metrics (the token server's
// tokenserver_* and the router's tokenserver_cluster_*) at
// http://HOST:PORT/metrics in the Prometheus text format, and with --pprof
// Go's profiles at /debug/pprof/ on the same address.
//
// It prints one line per event on stdout and nothing else: "handler h1
// joined the cluster at ADDR", one line per membership change ("handler h1:
// member ADDR (front) joined", "... left"), "front f1 listening on ...",
// "front f1 metrics on http://...", "grain ... activated on h1". Proto.Actor's
// logs go to stderr at --log-level (warn by default), without the lines it
// writes while members come and go, which tell of no fault (a peer not up
// yet, gossip from a member not known yet...), unless --log-level debug.
// The node's gRPC guard (actors/cluster.ServerGuard) logs the calls it
// refuses and the panics it recovers on stderr too, through Go's default
// logger, whatever the level. It stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"runtime/pprof"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/identitylookup/disthash"
	"github.com/tokenserver/tokenserver/actors"
	tscluster "github.com/tokenserver/tokenserver/actors/cluster"
	"github.com/tokenserver/tokenserver/examples/internal/metricsserver"
	"github.com/tokenserver/tokenserver/tlsio"
	"go.opentelemetry.io/otel/metric"
)

// Kind is the cluster kind of the example's handler grains.
const Kind = "tokens"

type config struct {
	role, name, host     string
	remotePort           int
	provider             string
	healthPort           int
	peers                []string
	etcd                 etcdConfig
	listen               string
	certs, nodeCerts     string
	plaintextNodes       bool
	refresh, delay, wait time.Duration
	count                bool
	logLevel             slog.Level
	// bench role
	benchConns    []int
	benchReps     int
	benchDuration time.Duration
	cpuProfile    string
	benchWhat     string
	benchPlain    string
	grainWindow   int
	metrics       string
	pprof         bool
}

var errUsage = errors.New("usage")

func parse(args []string, stderr io.Writer) (config, error) {
	var c config
	fs := flag.NewFlagSet("cluster", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&c.role, "role", "", "front, handler, or bench (a front that measures round trips through a remote grain, then exits)")
	fs.StringVar(&c.name, "name", "", "node name (default: role and remote port)")
	fs.StringVar(&c.host, "host", "127.0.0.1", "address of this node's remote (gRPC) server, as the other nodes dial it; automanaged: also of its health endpoint")
	fs.IntVar(&c.remotePort, "remote-port", 0, "port of the remote server (0: any free port)")
	fs.StringVar(&c.provider, "provider", "automanaged", "membership: automanaged (--health-port, --peers; a quick start) or etcd (--etcd-endpoints)")
	fs.IntVar(&c.healthPort, "health-port", 0, "automanaged: port of the health endpoint, on --host, plain HTTP: it tells anyone who reaches it this node's id, address and kinds, so it must not face a network that clients or the Internet reach")
	peers := fs.String("peers", "", "automanaged: comma-separated health host:port of every node, this one included")
	endpoints := fs.String("etcd-endpoints", "", "etcd: comma-separated client URLs of the etcd cluster (https://... with --etcd-ca)")
	fs.StringVar(&c.etcd.prefix, "etcd-prefix", "/tokenserver", "etcd: key prefix of the membership")
	fs.StringVar(&c.etcd.ca, "etcd-ca", "", "etcd: CA file to verify etcd's server certificate (TLS to etcd)")
	fs.StringVar(&c.etcd.cert, "etcd-cert", "", "etcd: client certificate file for etcd (with --etcd-key)")
	fs.StringVar(&c.etcd.key, "etcd-key", "", "etcd: client key file for etcd (with --etcd-cert)")
	fs.StringVar(&c.listen, "listen", "127.0.0.1:7000", "front: address of the token server")
	fs.StringVar(&c.certs, "certs", "", "directory of the token server's and clients' certificates: ca.crt server.crt server.key client.crt client.key (tokencat certs DIR)")
	fs.StringVar(&c.nodeCerts, "node-certs", "", "directory of the nodes' own certificates, the same five files from a CA of their own, not the CA of --certs (tokencat certs DIR)")
	fs.BoolVar(&c.plaintextNodes, "plaintext-nodes", false, "no TLS between nodes (only with a loopback --host), instead of --node-certs")
	fs.DurationVar(&c.refresh, "refresh", 2*time.Second, "automanaged: how often the provider polls the peers (membership changes show after it)")
	fs.DurationVar(&c.delay, "delay", 0, "handler: time a grain spends on each token")
	fs.BoolVar(&c.count, "count", false, "handler: end each answer with \" #N\", N the number of tokens the grain has handled, this one included (a repeat the grain drops is not handled: a token handled twice shows as two numbers)")
	fs.DurationVar(&c.wait, "wait", 20*time.Second, "front: give up when no handler node joined after this")
	conns := fs.String("bench-conns", "1,64", "bench: numbers of concurrent connections to measure")
	fs.IntVar(&c.benchReps, "bench-reps", 3, "bench: measurements of each kind per concurrency (the median counts)")
	fs.DurationVar(&c.benchDuration, "bench-duration", 2*time.Second, "bench: length of one measurement")
	fs.IntVar(&c.grainWindow, "grain-window", 0, "front: messages to one grain awaiting their answer (0: the default)")
	fs.StringVar(&c.benchWhat, "bench-what", "both", "bench: both, tokens or proto (one side only, for profiling)")
	fs.StringVar(&c.benchPlain, "bench-plain", "", "bench: HOST:PORT of a plain crypto/tls echo of token/1 frames (tokencat baseline --protocol token/1, trusting --certs' CA) to measure with the same load, in turn with the others: the bound that TLS alone sets")
	fs.StringVar(&c.cpuProfile, "cpuprofile", "", "write a CPU profile of the run to this file")
	fs.StringVar(&c.metrics, "metrics", "", "front: serve the front's metrics at http://HOST:PORT/metrics (Prometheus text format; port 0 picks a free port)")
	fs.BoolVar(&c.pprof, "pprof", false, "front: with --metrics, also serve Go's profiles (net/http/pprof) at /debug/pprof/")
	level := fs.String("log-level", "warn", "Proto.Actor's and the router's log level on stderr (debug, info, warn, error); below debug, Proto.Actor's lines about members coming and going are left out")
	if err := fs.Parse(args); err != nil {
		return c, fmt.Errorf("%w: %w", errUsage, err)
	}
	if c.role != "front" && c.role != "handler" && c.role != "bench" {
		return c, fmt.Errorf("%w: --role must be front, handler or bench", errUsage)
	}
	for _, n := range strings.Split(*conns, ",") {
		v, err := strconv.Atoi(strings.TrimSpace(n))
		if err != nil || v <= 0 {
			return c, fmt.Errorf("%w: --bench-conns: %q is not a positive number", errUsage, n)
		}
		c.benchConns = append(c.benchConns, v)
	}
	if c.benchPlain != "" {
		if _, _, err := net.SplitHostPort(c.benchPlain); err != nil {
			return c, fmt.Errorf("%w: --bench-plain: %w", errUsage, err)
		}
	}
	if c.benchReps <= 0 || c.benchDuration <= 0 {
		return c, fmt.Errorf("%w: --bench-reps and --bench-duration must be positive", errUsage)
	}
	c.peers = splitList(*peers)
	c.etcd.endpoints = splitList(*endpoints)
	switch c.provider {
	case "automanaged":
		if c.healthPort <= 0 || len(c.peers) == 0 {
			return c, fmt.Errorf("%w: --provider automanaged needs --health-port and --peers", errUsage)
		}
		if len(c.etcd.endpoints) > 0 {
			return c, fmt.Errorf("%w: --etcd-endpoints is for --provider etcd", errUsage)
		}
	case "etcd":
		if len(c.etcd.endpoints) == 0 {
			return c, fmt.Errorf("%w: --provider etcd needs --etcd-endpoints", errUsage)
		}
		if c.healthPort != 0 || len(c.peers) > 0 {
			return c, fmt.Errorf("%w: --health-port and --peers are for --provider automanaged", errUsage)
		}
		if (c.etcd.cert == "") != (c.etcd.key == "") {
			return c, fmt.Errorf("%w: --etcd-cert and --etcd-key go together", errUsage)
		}
	default:
		return c, fmt.Errorf("%w: --provider must be automanaged or etcd", errUsage)
	}
	if c.certs == "" {
		return c, fmt.Errorf("%w: --certs is required (tokencat certs DIR writes one)", errUsage)
	}
	if c.plaintextNodes == (c.nodeCerts != "") {
		return c, fmt.Errorf("%w: give either --node-certs (a CA of the nodes' own: tokencat certs DIR) or --plaintext-nodes", errUsage)
	}
	if c.metrics != "" {
		if c.role == "handler" {
			return c, fmt.Errorf("%w: --metrics is for a front (or bench) node", errUsage)
		}
		if _, _, err := net.SplitHostPort(c.metrics); err != nil {
			return c, fmt.Errorf("%w: --metrics: %w", errUsage, err)
		}
	}
	if c.pprof && c.metrics == "" {
		return c, fmt.Errorf("%w: --pprof needs --metrics", errUsage)
	}
	if err := c.logLevel.UnmarshalText([]byte(*level)); err != nil {
		return c, fmt.Errorf("%w: --log-level: %w", errUsage, err)
	}
	return c, nil
}

func splitList(s string) []string {
	var l []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			l = append(l, p)
		}
	}
	return l
}

func main() {
	c, err := parse(os.Args[1:], os.Stderr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(2)
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if c.cpuProfile != "" {
		f, err := os.Create(c.cpuProfile)
		if err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(1)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fmt.Fprintln(os.Stderr, "cluster:", err)
			os.Exit(1)
		}
		defer pprof.StopCPUProfile()
	}
	if err := run(ctx, c, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "cluster:", err)
		os.Exit(1)
	}
}

// out prints event lines; the tests read them.
type out struct {
	mu sync.Mutex
	w  io.Writer
}

func (o *out) printf(format string, args ...any) {
	o.mu.Lock()
	defer o.mu.Unlock()
	fmt.Fprintf(o.w, format+"\n", args...)
}

func run(ctx context.Context, c config, stdout, stderr io.Writer) error {
	o := &out{w: stdout}
	gone := &departed{}
	log := newLogger(stderr, c.logLevel, gone)
	serverTLS, err := tlsio.LoadFiles(filepath.Join(c.certs, "server.key"), filepath.Join(c.certs, "server.crt"), filepath.Join(c.certs, "ca.crt"))
	if err != nil {
		return err
	}
	serverTLS.RequestCert = true
	nodeTLS, err := loadNodeTLS(c)
	if err != nil {
		return err
	}
	rc, err := tscluster.RemoteConfig(c.host, c.remotePort, nodeTLS)
	if err != nil {
		return err
	}
	system := actor.NewActorSystem(actor.WithLoggerFactory(func(*actor.ActorSystem) *slog.Logger { return log }))
	if c.name == "" {
		c.name = c.role + "-" + system.ID[:8]
	}
	var kinds []*pcluster.Kind
	if c.role == "handler" {
		kinds = append(kinds, tscluster.NewKind(Kind, func(identity string) tscluster.Handler {
			return &echoGrain{c: c, o: o, identity: identity}
		}))
	}
	m, err := newMembership(c, gone, stderr)
	if err != nil {
		return err
	}
	cfg := pcluster.Configure("tokenserver", m.provider, disthash.New(), rc, pcluster.WithKinds(kinds...))
	cl := pcluster.New(system, cfg)
	m.start(cl, func(line string) { o.printf("%s %s: %s", c.role, c.name, line) })
	defer m.stop(cl)
	o.printf("%s %s joined the cluster at %s (%s)", c.role, c.name, system.Address(), m)
	m.hasJoined()
	if c.role == "handler" {
		<-ctx.Done()
		o.printf("handler %s stopping", c.name)
		return nil
	}
	return runFront(ctx, c, o, log, cl, serverTLS)
}

func runFront(ctx context.Context, c config, o *out, log *slog.Logger, cl *pcluster.Cluster, serverTLS tlsio.Options) error {
	// The metrics server first, so that it stops last: after the token
	// server and the router, which unregister their metrics.
	var provider metric.MeterProvider // nil: no metrics
	if c.metrics != "" {
		ms, err := metricsserver.Start(metricsserver.Options{Addr: c.metrics, Pprof: c.pprof})
		if err != nil {
			return fmt.Errorf("--metrics: %w", err)
		}
		defer func() {
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			if err := ms.Shutdown(sctx); err != nil {
				log.Warn("metrics server shutdown", "err", err)
			}
		}()
		provider = ms.MeterProvider()
		o.printf("front %s metrics on %s", c.name, ms.URL())
	}
	// Wait until a member hosts the kind, so that the first lookups find one.
	deadline := time.Now().Add(c.wait)
	for !hasKind(cl) {
		if time.Now().After(deadline) {
			return fmt.Errorf("no handler node joined within %v", c.wait)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(50 * time.Millisecond):
		}
	}
	front, err := tscluster.NewFront(tscluster.FrontOptions{
		Cluster: cl, Kind: Kind, Logger: log, AckTimeout: 5 * time.Second, RetryDelay: c.refresh / 4,
		GrainWindow: c.grainWindow, MeterProvider: provider,
		OnFailover: func(identity string, lost time.Duration) {
			o.printf("failover of grain %s: reached again %v after the loss was seen", short(identity), lost.Round(time.Millisecond))
		},
	})
	if err != nil {
		return err
	}
	defer front.Stop()
	host, portStr, err := net.SplitHostPort(c.listen)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	port, err := strconv.Atoi(portStr)
	if err != nil {
		return fmt.Errorf("--listen: %w", err)
	}
	up := make(chan struct{}, 1)
	failed := make(chan error, 1)
	opts, err := front.ServerOptions(actors.ServerOptions{
		Host: host, Port: port, TLS: serverTLS,
		Runtime:   actors.Runtime{System: cl.ActorSystem, Logger: log, MeterProvider: provider},
		OnConnect: func() { up <- struct{}{} },
		OnError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
	})
	if err != nil {
		return err
	}
	server, err := actors.NewServer(opts)
	if err != nil {
		return err
	}
	defer func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = server.Shutdown(sctx)
	}()
	select {
	case <-up:
	case err := <-failed:
		return err
	case <-ctx.Done():
		return nil
	}
	o.printf("front %s listening on %s", c.name, server.Addr())
	if c.role == "bench" {
		return runBench(ctx, c, o, cl, &frontNode{addr: server.Addr().String(), f: front})
	}
	<-ctx.Done()
	s := front.Stats()
	o.printf("front %s stopping: %d connections, %d tokens forwarded in %d batches (%d messages), %d resent, %d replies, %d lookups, %d failovers",
		c.name, s.Connections, s.Forwarded, s.Batches, s.Messages, s.Resent, s.Replies, s.Lookups, s.Failovers)
	return nil
}

// frontNode is what the bench needs of the front.
type frontNode struct {
	addr string
	f    *tscluster.Front
}

// identityOf is DefaultIdentity of the certificate in o.Cert: the grain of
// a client presenting it.
func identityOf(o tlsio.Options) (string, error) {
	blk, _ := pem.Decode(o.Cert)
	if blk == nil {
		return "", fmt.Errorf("client certificate: no PEM block")
	}
	leaf, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return "", fmt.Errorf("client certificate: %w", err)
	}
	sum := sha256.Sum256(leaf.RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:]), nil
}

func hasKind(cl *pcluster.Cluster) bool {
	for _, m := range cl.MemberList.Members().Members() {
		if m.HasKind(Kind) {
			return true
		}
	}
	return false
}

func short(identity string) string {
	if len(identity) > 12 {
		return identity[:12]
	}
	return identity
}

// echoGrain answers each token with the token and the node's name, and
// with --count the number of tokens it has handled.
type echoGrain struct {
	c         config
	o         *out
	identity  string
	announced bool
	handled   int
}

func (g *echoGrain) Token(t *tscluster.Token) {
	if !g.announced {
		g.announced = true
		g.o.printf("grain %s activated on %s", short(g.identity), g.c.name)
	}
	if g.c.delay > 0 {
		time.Sleep(g.c.delay)
	}
	g.handled++
	reply := append(t.Data, " @"+g.c.name...)
	if g.c.count {
		reply = fmt.Appendf(reply, " #%d", g.handled)
	}
	t.Reply(reply)
}
