package main

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/tlsio"
)

// selfServer is bench --self: the project's actors.Server, in this process,
// on 127.0.0.1 and a free port, echoing every token.
type selfServer struct {
	server *actors.Server
	addr   string
}

func startSelfServer(certs *tlsio.DevCerts) (*selfServer, error) {
	listening := make(chan struct{}, 1)
	failed := make(chan error, 1)
	server, err := actors.NewServer(actors.ServerOptions{
		Host:      "127.0.0.1",
		TLS:       certs.ServerOptions(), // client certificates required
		OnConnect: func() { notify(listening) },
		OnError: func(err error) {
			select {
			case failed <- err:
			default:
			}
		},
		// The tokens of one read, lent, sent back in one message (SendBatch
		// copies them): the fast path.
		OnTokens:   func(tokens [][]byte, c *actors.Connection) { c.SendBatch(tokens) },
		LendTokens: true,
	})
	if err != nil {
		return nil, err
	}
	s := &selfServer{server: server}
	select {
	case <-listening:
		s.addr = server.Addr().String()
		return s, nil
	case err := <-failed:
		return nil, errors.Join(err, s.close())
	case <-time.After(10 * time.Second):
		return nil, errors.Join(errors.New("in-process server did not start listening"), s.close())
	}
}

func (s *selfServer) close() error {
	ctx, cancel := context.WithTimeout(context.Background(), actors.DefaultCloseTimeout+shutdownGrace)
	defer cancel()
	if err := s.server.Shutdown(ctx); err != nil {
		return fmt.Errorf("in-process server shutdown: %w", err)
	}
	return nil
}
