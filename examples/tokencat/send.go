package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/tokenserver/tokenserver/actors"
	"github.com/tokenserver/tokenserver/wire"
)

// sendWindow bounds the encoded bytes of tokens sent and not yet answered,
// so that a long input never pushes the client's outbound queue (or the
// server's) past its high-water mark. One token is always let through.
const sendWindow = 1 << 20

// sendOptions are the flags of send.
type sendOptions struct {
	addr     string
	protocol protocolFlag
	tls      tlsFlags
	timeout  time.Duration
}

// newSendCommand returns "tokencat send".
func newSendCommand(e *env) *cobra.Command {
	var o sendOptions
	cmd := &cobra.Command{
		Use:   "send --addr HOST:PORT --ca FILE (--cert FILE --key FILE | --pfx FILE) [flags] [TOKEN ...]",
		Short: "send tokens to a server and print the replies",
		Long: `Connect to a token server with a client certificate, send each TOKEN argument
as a token (or, with no TOKEN arguments, each line of stdin, read to the end
first, without its newline), and print each reply on its own line: the raw
bytes, then a newline (a reply that contains newlines prints as-is).
Use -- before tokens that start with a dash.

--addr unix:PATH connects over a Unix domain socket (Node's path option); the
server certificate must then be valid for localhost, as Node checks it.
--allow-common-name accepts a server certificate without subjectAltName whose
Common Name names the host, such as those of token-server's extra/cert-gen.sh.

` + tlsHelp + `

Exits 0 when one reply per token came back within --timeout (counted from the
start, connecting included), 1 when any did not or the connection failed.`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error { return runSend(e, cmd.Flags(), &o, args) },
	}
	f := cmd.Flags()
	addProtocolFlag(f, &o.protocol)
	f.StringVar(&o.addr, "addr", "", "`HOST:PORT` of the server, or unix:PATH for a Unix domain socket")
	addTLSFlags(f, &o.tls, "client")
	f.DurationVar(&o.timeout, "timeout", 5*time.Second, "give up when the replies have not all come back after `D`")
	return cmd
}

// runSend checks the flags f parsed into o, sends tokensArgs (or the lines
// of stdin) and prints the replies.
func runSend(e *env, f *pflag.FlagSet, o *sendOptions, tokensArgs []string) error {
	if err := requireFlags(f, "addr"); err != nil {
		return err
	}
	if err := o.tls.check(f); err != nil {
		return err
	}
	if o.timeout <= 0 {
		return usageErrorf("--timeout must be positive")
	}
	addr, err := parseAddr("addr", o.addr)
	if err != nil {
		return err
	}
	if addr.path == "" && addr.port == 0 {
		return usageErrorf("--addr %q: port 0", o.addr)
	}
	tlsOpts, err := o.tls.load()
	if err != nil {
		return err
	}
	var tokens [][]byte
	if len(tokensArgs) > 0 {
		for _, a := range tokensArgs {
			tokens = append(tokens, []byte(a))
		}
	} else if tokens, err = readLines(e.stdin); err != nil {
		return fmt.Errorf("reading stdin: %w", err)
	}

	ctx, cancel := context.WithTimeout(e.ctx, o.timeout)
	defer cancel()
	connected := make(chan struct{}, 1)
	closed := make(chan struct{})
	replies := make(chan []byte, 64)
	var lastErr error // written by OnError, read after closed
	client, err := actors.NewClient(actors.ClientOptions{
		Host:      addr.host,
		Port:      addr.port,
		Path:      addr.path,
		TLS:       tlsOpts,
		Protocols: o.protocol.protocols,
		OnConnect: func() { notify(connected) },
		OnToken: func(token []byte, _ *actors.Connection) {
			select { // blocks the client actor only while stdout is slow
			case replies <- token:
			case <-ctx.Done():
			}
		},
		OnRemoteClose: func(c *actors.Connection) { c.Close() },
		OnError:       func(err error) { lastErr = err },
		OnClose:       func(bool) { close(closed) },
	})
	if err != nil {
		return o.tls.explainPassphraseError(err, tlsOpts.Passphrase)
	}
	defer func() {
		cancel() // unblocks OnToken, so Shutdown cannot wait on it
		sctx, scancel := context.WithTimeout(context.Background(), actors.DefaultCloseTimeout+time.Second)
		defer scancel()
		_ = client.Shutdown(sctx)
	}()

	out := bufio.NewWriter(e.stdout)
	defer out.Flush()
	got := 0
	emit := func(reply []byte) {
		out.Write(reply)
		out.WriteByte('\n')
		got++
	}
	// fail explains why not every reply came back.
	fail := func(why string) error {
		out.Flush()
		return fmt.Errorf("%d of %d replies received: %s", got, len(tokens), why)
	}
	closedWhy := func() string {
		// lastErr is set before OnClose, in the client actor, which closed
		// closed after it.
		if lastErr != nil {
			return explainTLSError(lastErr, o.tls.allowCommonName).Error()
		}
		return "connection closed by the server"
	}

	select {
	case <-connected:
	case <-closed:
		return fail(closedWhy())
	case <-ctx.Done():
		return fail(fmt.Sprintf("not connected after %v", o.timeout))
	}

	outstanding := 0 // encoded bytes sent and not answered
	sizes := make([]int, 0, len(tokens))
	next := 0
	for got < len(tokens) {
		for next < len(tokens) && outstanding < sendWindow {
			if !client.Send(tokens[next]) {
				return fail("the connection did not take token " + fmt.Sprint(next+1))
			}
			n := wire.EncodedLen(tokens[next])
			sizes = append(sizes, n)
			outstanding += n
			next++
		}
		select {
		case r := <-replies:
			if got < len(sizes) {
				outstanding -= sizes[got]
			}
			emit(r)
			if got%256 == 0 {
				out.Flush()
			}
		case <-closed:
			drainReplies(replies, emit)
			if got >= len(tokens) {
				return nil
			}
			return fail(closedWhy())
		case <-ctx.Done():
			drainReplies(replies, emit)
			if got >= len(tokens) {
				return nil
			}
			return fail(fmt.Sprintf("timed out after %v", o.timeout))
		}
	}
	return nil
}

// drainReplies prints the replies already received.
func drainReplies(replies chan []byte, emit func([]byte)) {
	for {
		select {
		case r := <-replies:
			emit(r)
		default:
			return
		}
	}
}

// readLines returns each line of r without its newline; a last line without
// a newline counts too, an empty input has no lines.
func readLines(r io.Reader) ([][]byte, error) {
	data, err := io.ReadAll(r)
	if err != nil {
		return nil, err
	}
	if len(data) == 0 {
		return nil, nil
	}
	data = bytes.TrimSuffix(data, []byte{'\n'})
	lines := bytes.Split(data, []byte{'\n'})
	return lines, nil
}
