package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenserver/tokenserver/tlsio"
	"github.com/tokenserver/tokenserver/wire"
)

// baselineOptions are the flags of the baseline command.
type baselineOptions struct {
	listen     string
	tls        tlsFlags
	protocol   protocolFlag
	cpuProfile string
}

// newBaselineCommand returns "tokencat baseline".
func newBaselineCommand(e *env) *cobra.Command {
	var o baselineOptions
	cmd := &cobra.Command{
		Use:   "baseline --listen HOST:PORT --ca FILE --cert FILE --key FILE [flags]",
		Short: "run the plain crypto/tls echo loop (no actors), the reference point of compare",
		Long: `Run the baseline of compare as a server: a plain crypto/tls echo loop with the
framing of the protocol the client speaks and no actors, one goroutine per
connection, that writes every frame back as it came. Clients must present a
certificate signed by --ca.

It selects token/2 by ALPN when the client offers it (--protocol token/1 or
token/2 selects only that one), and token/1 otherwise, the loop compare
measures each protocol's server against. On token/1 it echoes each frame up to
its newline, escapes and all. On token/2 it answers the client's HELLO with a
WELCOME to a new session, echoes each DATA frame, header and payload as they
came, acknowledges what it echoed with each write it makes (and every 256
frames or 256 KiB), ignores the client's ACKs, and answers END with END. The
first line on stdout is "listening on HOST:PORT", as with serve, so
--listen 127.0.0.1:0 works. It has none of the server's limits, events or flow
control: it is what the same machine does with TLS alone.

SIGINT or SIGTERM closes every connection and tokencat exits 0. --cpuprofile
FILE writes a CPU profile (runtime/pprof) to FILE then.`,
		Args: noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return runBaseline(e, cmd.Flags(), &o) },
	}
	f := cmd.Flags()
	f.StringVar(&o.listen, "listen", "", "`HOST:PORT` to listen on (port 0 picks a free port)")
	addTLSFlags(f, &o.tls, "server")
	addProtocolFlag(f, &o.protocol)
	f.StringVar(&o.cpuProfile, "cpuprofile", "", "write a CPU profile to `FILE` on exit (go tool pprof)")
	return cmd
}

// runBaseline checks the flags f parsed into o, then echoes until a signal.
func runBaseline(e *env, f *pflag.FlagSet, o *baselineOptions) (err error) {
	if err := requireFlags(f, "listen", "ca", "cert", "key"); err != nil {
		return err
	}
	if _, _, err := splitHostPort("listen", o.listen); err != nil {
		return err
	}
	opts, err := o.tls.load()
	if err != nil {
		return err
	}
	opts.RequestCert = true // mutual TLS, as serve
	cfg, err := tlsio.ServerConfig(opts)
	if err != nil {
		return err
	}
	stopProfile, err := startCPUProfile(o.cpuProfile)
	if err != nil {
		return err
	}
	defer func() { err = errors.Join(err, stopProfile()) }()

	ctx, stop := signal.NotifyContext(e.ctx, os.Interrupt, syscall.SIGTERM)
	defer stop()
	s, err := listenBaseline(o.listen, cfg, o.protocol.protocols)
	if err != nil {
		return err
	}
	fmt.Fprintf(e.stdout, "listening on %s\n", s.addr())
	<-ctx.Done()
	return s.close()
}

// baselineServer is bench --baseline and tokencat baseline: a plain
// crypto/tls echo loop with the framing of the protocol ALPN chose and no
// actors, one goroutine per connection, as the reference point for the
// actors server on the same machine in the same run, for each protocol.
// Echo is byte-identical, so frames go back as they came, escapes and all,
// without decoding (baseline_token2.go has token/2's loop).
type baselineServer struct {
	ln  net.Listener
	cfg *tls.Config
	wg  sync.WaitGroup

	mu     sync.Mutex
	conns  map[net.Conn]struct{}
	closed bool
}

// startBaselineServer starts the baseline on 127.0.0.1 and a free port; it
// speaks both protocols.
func startBaselineServer(cfg *tls.Config) (*baselineServer, error) {
	return listenBaseline("127.0.0.1:0", cfg, nil)
}

// listenBaseline starts the baseline on addr (HOST:PORT) with the server
// configuration cfg, selecting by ALPN the first of protocols the client
// offers (nil: token/2, then token/1).
func listenBaseline(addr string, cfg *tls.Config, protocols []string) (*baselineServer, error) {
	ln, err := tlsio.Listen(context.Background(), addr, tlsio.ListenConfig{})
	if err != nil {
		return nil, err
	}
	cfg = cfg.Clone()
	cfg.NextProtos = offered(protocols)
	s := &baselineServer{ln: ln, cfg: cfg, conns: map[net.Conn]struct{}{}}
	s.wg.Go(s.acceptLoop)
	return s, nil
}

func (s *baselineServer) addr() string { return s.ln.Addr().String() }

func (s *baselineServer) acceptLoop() {
	for {
		raw, err := s.ln.Accept()
		if err != nil {
			return // closed
		}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			raw.Close()
			return
		}
		s.conns[raw] = struct{}{}
		s.wg.Go(func() { s.serve(raw) })
		s.mu.Unlock()
	}
}

// serve echoes the frames of one connection in the protocol its handshake
// chose.
func (s *baselineServer) serve(raw net.Conn) {
	defer func() {
		s.mu.Lock()
		delete(s.conns, raw)
		s.mu.Unlock()
		raw.Close()
	}()
	tc := tls.Server(raw, s.cfg)
	if err := tlsio.Handshake(context.Background(), tc, 0); err != nil {
		return
	}
	defer tc.Close()
	r := bufio.NewReaderSize(tc, 64<<10)
	w := bufio.NewWriterSize(tc, 64<<10)
	if protocolOf(tc.ConnectionState()) == wire.ProtocolToken2 {
		_ = echoToken2(r, w, tc.CloseWrite)
		return
	}
	echoToken1(r, w)
}

// echoToken1 echoes token/1 frames: read up to each newline, write the frame
// back through w, flush when no more input is already buffered.
func echoToken1(r *bufio.Reader, w *bufio.Writer) {
	for {
		frame, err := r.ReadSlice('\n')
		if len(frame) > 0 {
			if _, werr := w.Write(frame); werr != nil {
				return
			}
		}
		if errors.Is(err, bufio.ErrBufferFull) {
			continue // a frame longer than the buffer: the rest follows
		}
		if err != nil {
			_ = w.Flush()
			return
		}
		if r.Buffered() == 0 {
			if err := w.Flush(); err != nil {
				return
			}
		}
	}
}

// close stops accepting, closes every connection and waits for their
// goroutines.
func (s *baselineServer) close() error {
	s.mu.Lock()
	s.closed = true
	for c := range s.conns {
		c.Close()
	}
	s.mu.Unlock()
	err := s.ln.Close()
	s.wg.Wait()
	return err
}
