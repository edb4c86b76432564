package main

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/automanaged"
	"github.com/asynkron/protoactor-go/cluster/clusterproviders/etcd"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/labstack/echo"
	"github.com/tokenserver/tokenserver/tlsio"
	clientv3 "go.etcd.io/etcd/client/v3"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
)

// etcdConfig is the flags of --provider etcd.
type etcdConfig struct {
	endpoints     []string
	prefix        string
	ca, cert, key string
}

// etcdDialTimeout bounds the first connection to etcd: a node that cannot
// reach it exits with an error instead of waiting (Proto.Actor's etcd
// provider makes its calls without a deadline).
const etcdDialTimeout = 5 * time.Second

// providerStopTimeout bounds the provider's Shutdown at exit (the etcd
// provider deletes the node's key without a deadline).
const providerStopTimeout = 2 * time.Second

// How long the other nodes take to see a node leave once its provider is
// shut down, beyond automanaged's polling interval: a margin for a loaded
// machine.
const (
	automanagedLeaveMargin = 300 * time.Millisecond
	etcdLeave              = 300 * time.Millisecond
)

// membership is a node's cluster provider and what goes with it: the
// automanaged provider's health endpoint, bound to --host; a line per
// membership change, printed after the node's "joined" line.
type membership struct {
	provider pcluster.ClusterProvider
	health   *healthEndpoint // automanaged only
	desc     string
	// leave is how long the other nodes take to see this one leave once
	// its provider is shut down.
	leave time.Duration
	sub   *eventstream.Subscription
	gone  *departed // members that left, for the log handler
	// etcd only: the client configuration and key prefix for etcdTouch,
	// and the touch once started.
	etcdCfg    *clientv3.Config
	etcdPrefix string
	touch      *etcdTouch

	mu     sync.Mutex
	print  func(line string)
	joined bool     // the node's "joined" line is out
	held   []string // lines of changes seen before it
}

func newMembership(c config, gone *departed, stderr io.Writer) (*membership, error) {
	switch c.provider {
	case "etcd":
		p, cfg, err := newEtcdProvider(c.etcd, c.logLevel, stderr)
		if err != nil {
			return nil, err
		}
		// The key goes at once; the watches tell the others within a
		// round trip.
		return &membership{provider: p, desc: "etcd at " + strings.Join(c.etcd.endpoints, ","), leave: etcdLeave, gone: gone,
			etcdCfg: &cfg, etcdPrefix: c.etcd.prefix}, nil
	default:
		h, err := listenHealth(c.host, c.healthPort, stderr)
		if err != nil {
			return nil, err
		}
		return &membership{
			provider: automanaged.NewWithTesting(c.refresh, c.healthPort, h.echo, c.peers...),
			health:   h,
			desc:     "automanaged, health endpoint on http://" + h.addr,
			// The others poll the endpoint every refresh.
			leave: c.refresh + automanagedLeaveMargin,
			gone:  gone,
		}, nil
	}
}

func (m *membership) String() string { return m.desc }

// start subscribes to the membership changes, printing (with print) one
// line for each other member that joins or leaves, then joins the cluster.
// The lines wait for joined.
func (m *membership) start(cl *pcluster.Cluster, print func(line string)) {
	if m.health != nil {
		m.health.cl = cl // before StartMember, which starts the endpoint
	}
	m.print = print
	system := cl.ActorSystem
	m.sub = system.EventStream.Subscribe(func(ev any) {
		t, ok := ev.(*pcluster.ClusterTopology)
		if !ok {
			return
		}
		self := system.Address()
		for _, mem := range t.Joined {
			if mem.Address() != self {
				m.line(fmt.Sprintf("member %s (%s) joined", mem.Address(), memberRole(mem)))
			}
		}
		for _, mem := range t.Left {
			m.gone.add(mem)
			m.line(fmt.Sprintf("member %s (%s) left", mem.Address(), memberRole(mem)))
		}
	})
	cl.StartMember()
	if m.etcdCfg != nil {
		// The provider's key for this node: prefix/cluster/cluster@system id.
		name := cl.Config.Name
		key := m.etcdPrefix + "/" + name + "/" + name + "@" + system.ID
		t, err := startEtcdTouch(*m.etcdCfg, key, func(err error) {
			cl.Logger().Warn("etcd: touching this node's key failed", slog.String("key", key), slog.Any("error", err))
		})
		if err != nil {
			cl.Logger().Warn("etcd: touching this node's key failed; a member that joins as this node starts may go unseen", slog.Any("error", err))
		} else {
			m.touch = t
		}
	}
}

func (m *membership) line(l string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.joined {
		m.held = append(m.held, l)
		return
	}
	m.print(l)
}

// hasJoined is called once the node's "joined" line is out: the lines held
// until then follow it.
func (m *membership) hasJoined() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.joined = true
	for _, l := range m.held {
		m.print(l)
	}
	m.held = nil
}

// stop leaves the cluster: the provider first (the health endpoint
// closes; the etcd key goes), then, once the other nodes have seen the
// leave (m.leave), the remote, so that they have closed their connections
// to this node and log no lost connection; then Shutdown(false) (graceful
// sleeps 2 s, and does not shut the provider down).
func (m *membership) stop(cl *pcluster.Cluster) {
	cl.ActorSystem.EventStream.Unsubscribe(m.sub)
	if m.touch != nil {
		m.touch.close()
	}
	done := make(chan struct{})
	go func() {
		_ = m.provider.Shutdown(false)
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(providerStopTimeout):
	}
	time.Sleep(m.leave)
	cl.Shutdown(false)
}

func memberRole(m *pcluster.Member) string {
	if m.HasKind(Kind) {
		return "handler"
	}
	return "front"
}

// healthEndpoint is the automanaged provider's health endpoint, served on
// --host only (the provider itself would listen on 0.0.0.0): the same JSON
// as the provider's own, what its peers poll.
type healthEndpoint struct {
	echo *echo.Echo
	addr string
	port int
	cl   *pcluster.Cluster
}

func listenHealth(host string, port int, stderr io.Writer) (*healthEndpoint, error) {
	ln, err := net.Listen("tcp", net.JoinHostPort(host, strconv.Itoa(port)))
	if err != nil {
		return nil, fmt.Errorf("--health-port: %w", err)
	}
	h := &healthEndpoint{echo: echo.New(), addr: ln.Addr().String(), port: port}
	h.echo.Listener = ln     // echo serves it instead of listening itself
	h.echo.HideBanner = true // no banner,
	h.echo.HidePort = true   // no "⇨ http server started" on stdout
	h.echo.Logger.SetOutput(stderr)
	h.echo.GET("/_health", h.serve)
	return h, nil
}

func (h *healthEndpoint) serve(ctx echo.Context) error {
	host, port, err := h.cl.ActorSystem.GetHostPort()
	if err != nil {
		return err
	}
	return ctx.JSON(http.StatusOK, automanaged.NewNode(h.cl.Config.Name, h.cl.ActorSystem.ID, host, port, h.port, h.cl.GetClusterKinds()))
}

// newEtcdProvider connects to etcd (within etcdDialTimeout) for
// Proto.Actor's etcd provider. Its client logs (zap) go to stderr at the
// level of --log-level.
func newEtcdProvider(c etcdConfig, level slog.Level, stderr io.Writer) (*etcd.Provider, clientv3.Config, error) {
	zl := zap.New(zapcore.NewCore(zapcore.NewConsoleEncoder(zap.NewDevelopmentEncoderConfig()),
		zapcore.AddSync(stderr), zapcore.Level(level/4))) // slog's levels are 4 apart, zap's 1
	cfg := clientv3.Config{
		Endpoints:   c.endpoints,
		DialTimeout: etcdDialTimeout,
		DialOptions: []grpc.DialOption{grpc.WithBlock()},
		Logger:      zl,
	}
	if c.ca != "" || c.cert != "" {
		o, err := tlsio.LoadFiles(c.key, c.cert, c.ca)
		if err != nil {
			return nil, cfg, fmt.Errorf("TLS to etcd: %w", err)
		}
		if cfg.TLS, err = tlsio.ClientConfig(o); err != nil {
			return nil, cfg, fmt.Errorf("TLS to etcd: %w", err)
		}
	}
	p, err := etcd.NewWithConfig(c.prefix, cfg)
	if err != nil {
		return nil, cfg, fmt.Errorf("etcd at %s: %w", strings.Join(c.endpoints, ","), err)
	}
	return p, cfg, nil
}
