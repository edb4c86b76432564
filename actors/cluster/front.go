package cluster

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/asynkron/protoactor-go/actor"
	pcluster "github.com/asynkron/protoactor-go/cluster"
	"github.com/asynkron/protoactor-go/eventstream"
	"github.com/tokenserver/tokenserver/actors"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/metric"
)

// Defaults of FrontOptions.
const (
	// DefaultMaxBatch is the most tokens in one TokenBatch.
	DefaultMaxBatch = 256
	// DefaultMaxBatchBytes is the most token bytes in one TokenBatch (a
	// single larger token still goes, alone).
	DefaultMaxBatchBytes = 256 << 10
	// DefaultWindow is how many batches of a connection may await their
	// Credit.
	DefaultWindow = 4
	// DefaultGrainWindow is how many messages to one grain may await their
	// answer.
	DefaultGrainWindow = 2
	// DefaultAckTimeout is how long a batch may await its Credit before the
	// grain is looked up again and the batch sent again.
	DefaultAckTimeout = 5 * time.Second
	// DefaultRetryDelay is the wait between failed lookups.
	DefaultRetryDelay = 250 * time.Millisecond
)

// ErrInvalidFront: FrontOptions that cannot work.
var ErrInvalidFront = errors.New("cluster: invalid front options")

// FrontOptions configures a front node's router.
type FrontOptions struct {
	// Cluster is this node's Proto.Actor cluster, started with StartMember
	// (registering no handler kind: a front hosts no grains) or StartClient.
	Cluster *pcluster.Cluster
	// Kind is the cluster kind of the handler grains (see NewKind).
	Kind string
	// Identity gives a connection's grain identity (default
	// DefaultIdentity). A connection without one is closed.
	Identity IdentityFunc
	// MaxBatch and MaxBatchBytes bound one TokenBatch (defaults
	// DefaultMaxBatch tokens, DefaultMaxBatchBytes bytes).
	MaxBatch      int
	MaxBatchBytes int
	// Window is how many batches of one connection may wait for their
	// Credit (default DefaultWindow). Tokens that arrive meanwhile wait on
	// the front and leave in one batch; the connection's own read window
	// (actors.Limits.ReadWindow) bounds them, since they are credited only
	// when the grain has processed them.
	Window int
	// GrainWindow is how many messages to one grain may await their answer
	// (default DefaultGrainWindow). Batches made meanwhile, of all the
	// grain's connections, leave together in one TokenBatches when an
	// answer comes: under load, the remote path carries many tokens per
	// message; at low load, nothing waits.
	GrainWindow int
	// AckTimeout: batches without a Credit for this long make the front look
	// the grain up again and send them again (default DefaultAckTimeout).
	// Failures the cluster sees (the node left, the grain stopped) act at
	// once; this catches what it does not.
	AckTimeout time.Duration
	// RetryDelay is the wait between failed lookups of a grain (default
	// DefaultRetryDelay); a change of the cluster's membership retries at
	// once.
	RetryDelay time.Duration
	// Logger receives the router's logs (default: none).
	Logger *slog.Logger
	// OnFailover, if set, is called (from the router's goroutine; it must
	// not block) when a grain that had batches outstanding is reached again
	// after its node or activation was lost: lost is when the loss was seen.
	OnFailover func(identity string, lost time.Duration)
	// MeterProvider, if set, receives the counts of Stats as OpenTelemetry
	// metrics (tokenserver.cluster.*, in the meter MeterName), read from
	// the router's counters when the provider collects; Stop unregisters
	// them. Give the front's server the same provider
	// (actors.Runtime.MeterProvider) for its connections and tokens. Nil
	// (the default): no metrics, and nothing is done for them.
	MeterProvider metric.MeterProvider
	// MetricAttributes are added to every metric of this front, to tell
	// apart fronts that share a MeterProvider.
	MetricAttributes []attribute.KeyValue
}

// FrontStats counts what a front's router did: the remote path of the
// observability counters, also reported as metrics with
// FrontOptions.MeterProvider.
type FrontStats struct {
	Connections int64 // connections routed
	Forwarded   int64 // tokens sent to grains (resends not counted)
	Batches     int64 // batches sent (resends not counted; a token/2 connection's first has no tokens)
	Messages    int64 // messages sent to grains (a TokenBatches holds several batches)
	Resent      int64 // batches sent again after a loss
	Replies     int64 // reply tokens handed to connections
	Duplicates  int64 // Credits dropped as already seen
	Lookups     int64 // grain lookups started
	Failovers   int64 // grains lost with batches outstanding, then reached again
}

// Front routes the connections of a front node's token server to their
// handler grains. Make one with NewFront, then pass the server's options
// through Front.ServerOptions.
type Front struct {
	opts    FrontOptions
	system  *actor.ActorSystem
	pid     *actor.PID
	sub     *eventstream.Subscription
	stats   frontCounters
	once    sync.Once
	done    chan struct{}
	metrics *frontMetrics // nil without a MeterProvider
}

type frontCounters struct {
	connections, forwarded, batches, messages, resent, replies, duplicates, lookups, failovers atomic.Int64
}

// NewFront starts the router of a front node.
func NewFront(opts FrontOptions) (*Front, error) {
	if opts.Cluster == nil || opts.Kind == "" {
		return nil, fmt.Errorf("%w: Cluster and Kind are required", ErrInvalidFront)
	}
	if opts.Identity == nil {
		opts.Identity = DefaultIdentity
	}
	opts.MaxBatch = positiveOr(opts.MaxBatch, DefaultMaxBatch)
	opts.MaxBatchBytes = positiveOr(opts.MaxBatchBytes, DefaultMaxBatchBytes)
	opts.Window = positiveOr(opts.Window, DefaultWindow)
	opts.GrainWindow = positiveOr(opts.GrainWindow, DefaultGrainWindow)
	opts.AckTimeout = positiveOr(opts.AckTimeout, DefaultAckTimeout)
	opts.RetryDelay = positiveOr(opts.RetryDelay, DefaultRetryDelay)
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	f := &Front{opts: opts, system: opts.Cluster.ActorSystem, done: make(chan struct{})}
	if err := f.startMetrics(); err != nil {
		return nil, err
	}
	r := newRouter(f)
	// Inline, as the connection actors: the router never blocks and runs no
	// user code but OnFailover, so it runs on the goroutine that sends to it
	// (the server actor, the remote reader), one message at a time, which
	// saves a wake-up per token each way.
	f.pid = f.system.Root.Spawn(actor.PropsFromProducer(func() actor.Actor { return r },
		actor.WithDispatcher(actor.NewSynchronizedDispatcher(300))))
	root, pid := f.system.Root, f.pid
	f.sub = f.system.EventStream.Subscribe(func(ev any) {
		if t, ok := ev.(*pcluster.ClusterTopology); ok {
			root.Send(pid, t)
		}
	})
	return f, nil
}

// positiveOr is v, or def when v is not positive: an option's default.
func positiveOr[T int | time.Duration](v, def T) T {
	if v <= 0 {
		return def
	}
	return v
}

// PID is the router's PID: the reply_to of every TokenBatch this front
// sends, where grains send Credit, ReplyBatch and CloseRequest.
func (f *Front) PID() *actor.PID { return f.pid }

// ServerOptions returns opts set up to route through this front: Handler is
// the router (it must be nil in opts) and OnConnection also tells the router
// of the connection and its identity. Give the result to actors.NewServer,
// with the front's actor system in opts.Runtime.System.
func (f *Front) ServerOptions(opts actors.ServerOptions) (actors.ServerOptions, error) {
	if opts.Handler != nil {
		return opts, fmt.Errorf("%w: ServerOptions.Handler is the front's router; leave it nil", ErrInvalidFront)
	}
	if opts.Runtime.System != nil && opts.Runtime.System != f.system {
		return opts, fmt.Errorf("%w: the server must run in the cluster's actor system", ErrInvalidFront)
	}
	opts.Runtime.System = f.system
	opts.Handler = f.pid
	user := opts.OnConnection
	root, pid, identity := f.system.Root, f.pid, f.opts.Identity
	opts.OnConnection = func(c *actors.Connection) {
		open := connOpened{c: c, received: c.PeerReceived()}
		if st, ok := c.TLSState(); ok {
			open.identity, open.err = identity(st)
			open.sessionKey = sessionKey(st, c.Session())
		} else {
			open.err = ErrNoIdentity
		}
		// Sent before the server actor sends Connected and the tokens of c
		// to the router: the router knows c before its first token.
		root.Send(pid, open)
		if user != nil {
			user(c)
		}
	}
	return opts, nil
}

// Stats returns the router's counters.
func (f *Front) Stats() FrontStats {
	s := &f.stats
	return FrontStats{
		Connections: s.connections.Load(), Forwarded: s.forwarded.Load(), Batches: s.batches.Load(), Messages: s.messages.Load(),
		Resent: s.resent.Load(), Replies: s.replies.Load(), Duplicates: s.duplicates.Load(),
		Lookups: s.lookups.Load(), Failovers: s.failovers.Load(),
	}
}

// Stop stops the router (after the server, whose events it receives) and
// unregisters its metrics. It is safe to call more than once.
func (f *Front) Stop() {
	f.once.Do(func() {
		f.stopMetrics()
		f.system.EventStream.Unsubscribe(f.sub)
		_ = f.system.Root.StopFuture(f.pid).Wait()
		close(f.done)
	})
}
