package main

import (
	"context"
	"io"
	"log/slog"
	"sync"

	pcluster "github.com/asynkron/protoactor-go/cluster"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Proto.Actor's log lines (this version's) that tell of members coming and
// going, not of a fault: each node prints its own line per membership
// change instead. Below --log-level debug, quietHandler leaves them out.
var membershipNoise = map[string]bool{
	// automanaged: a peer's health endpoint is not up yet, or is gone.
	"Bad connection to the node health status": true,
	// automanaged: the node's own health endpoint closing at shutdown.
	"Automanaged server stopping..!": true,
	// gossip from a member that this node's membership does not hold yet
	// (or, with etcd, ever: the etcd provider's member ids are not the
	// actor system ids that gossip uses).
	"Got gossip request from unknown member": true,
	// gossip to a member not up yet or gone (the token path does not use
	// gossip).
	"sendGossipForMember failed": true,
}

// Proto.Actor's errors about the connection to one member (by its "address"
// attribute): noise once that member has left the
// membership (this node printed its "left" line), and for a connection
// this node closed itself (codes.Canceled: it closes the connection to a
// member that left). About a member still in the membership (a node that
// crashed, before the membership shows it; a node this one cannot reach or
// whose TLS it refuses), they are shown.
var memberErrors = map[string]bool{
	"EndpointWriter lost connection":                    true,
	"EndpointWriter failed to connect":                  true,
	"EndpointWriter failed to create receive stream":    true,
	"EndpointWriter failed to send connect request":     true,
	"EndpointWriter failed to receive connect response": true,
}

// departed holds the remote addresses of the members that have left the
// membership. The membership's subscriber adds them; the log
// handler reads them.
type departed struct {
	mu   sync.Mutex
	seen map[string]bool
}

func (d *departed) add(m *pcluster.Member) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]bool{}
	}
	d.seen[m.Address()] = true
}

func (d *departed) has(addr string) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.seen[addr]
}

// newLogger is the logger of Proto.Actor, the router and the node's gRPC
// guard: text on w at level, without the records that only tell of
// membership changes unless level is debug.
func newLogger(w io.Writer, level slog.Level, gone *departed) *slog.Logger {
	h := slog.Handler(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
	if level > slog.LevelDebug {
		h = quietHandler{Handler: h, gone: gone}
	}
	return slog.New(h)
}

// quietHandler drops the records of membershipNoise, and those of
// memberErrors about a departed member or a connection this node closed.
type quietHandler struct {
	slog.Handler
	gone *departed
}

func (q quietHandler) Handle(ctx context.Context, r slog.Record) error {
	if membershipNoise[r.Message] {
		return nil
	}
	if memberErrors[r.Message] {
		drop := false
		r.Attrs(func(a slog.Attr) bool {
			switch a.Key {
			case "address":
				drop = drop || q.gone.has(a.Value.String())
			case "error":
				if err, ok := a.Value.Any().(error); ok && status.Code(err) == codes.Canceled {
					drop = true
				}
			}
			return true
		})
		if drop {
			return nil
		}
	}
	return q.Handler.Handle(ctx, r)
}

func (q quietHandler) WithAttrs(attrs []slog.Attr) slog.Handler {
	return quietHandler{Handler: q.Handler.WithAttrs(attrs), gone: q.gone}
}

func (q quietHandler) WithGroup(name string) slog.Handler {
	return quietHandler{Handler: q.Handler.WithGroup(name), gone: q.gone}
}
