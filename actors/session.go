package actors

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"encoding/hex"
	"errors"
	"time"

	"github.com/tokenserver/tokenserver/wire"
)

// token/2 sessions (wire/TOKEN2.md): acknowledged, resumable delivery between
// tokenserver peers. This file holds what a session is as it moves between a
// connection actor and its owner; conn_session.go what a connection actor
// does with it (numbering, acknowledgements, the clean end, the greeting on
// each side), server_sessions.go the server's sessions, and client_actor.go
// keeps the client's between its connections.
//
// Who holds a session:
//   - on a server, the connection actor of the connection that opened it,
//     for the session's whole life: when its socket breaks it stays up
//     without one (phaseSuspended), keeping its handle, its PID, the frames
//     not yet acknowledged and its read debts, until a new connection of the
//     same client hands it its socket (adopt) or the server ends it (the
//     session timeout, Close). A handler's replies to its PID and the
//     handle's Sends go on meanwhile, into its queue;
//   - on a client, the client actor between two connection actors: each
//     incarnation gets it before it dials (sessionGiven) and gives it back
//     in connDown.

// Session errors.
var (
	// ErrSessionExpired is why a token/2 session ended when its client did
	// not come back within ServerOptions.SessionTimeout: its connection's
	// error event, and the reason of the tokens sent to it and never
	// acknowledged (TokensDropped, OnDropped).
	ErrSessionExpired = errors.New("tokenserver: session expired before its client came back")
	// ErrSessionRefused reports a token/2 connection refused because the
	// session it asked to resume belongs to a client of another identity
	// (certificate): on the server, its error event; on the client, the
	// cause of its failed connect, which also wraps wire.ErrRefused with
	// the server's reason.
	ErrSessionRefused = errors.New("tokenserver: session refused")
)

// Defaults and constants of token/2.
const (
	// DefaultSessionTimeout is how long a server keeps a token/2 session
	// whose connection broke, for its client to come back and resume it.
	DefaultSessionTimeout = 60 * time.Second

	// ackEveryTokens, ackEveryBytes and ackDelay: a receiver sends an ACK
	// once this many tokens, or bytes of tokens, were taken since the last
	// one, or at most this long after a token it has not acknowledged, and
	// with any write it makes anyway (TOKEN2.md, section 6). The delay's
	// timer is started by a token taken while none runs and is not stopped
	// when a write carries the ACK: one timer per delay and connection at
	// most, not one per token. When it fires, an ACK is written alone only
	// if a token has waited for one the whole delay (onAckTimer).
	ackEveryTokens = 256
	ackEveryBytes  = 256 << 10
	ackDelay       = 10 * time.Millisecond
)

// sessionState is a token/2 session's state as it moves between a
// connection actor and its owner: its id, the data frames of our direction
// not acknowledged yet (encoded, numbered from first), and how far the
// other direction got.
type sessionState struct {
	id wire.SessionID
	// first is the number of the first frame of frames: the oldest not
	// acknowledged, or the next new one when frames is empty.
	first uint64
	// last is the highest number written before (or in a write that
	// failed): the frames up to it may have reached the peer.
	last uint64
	// frames are the DATA frames not acknowledged, in order, tokens of
	// them, size bytes.
	frames []byte
	tokens int
	// recv is the number of the last frame received from the peer.
	recv uint64
}

// size is what the frames count for in a queue or a buffer.
func (s *sessionState) size() int {
	if s == nil {
		return 0
	}
	return len(s.frames)
}

// hello is the HELLO of a client that resumes (or opens) s.
func (s *sessionState) hello() wire.Hello {
	return wire.Hello{Session: s.id, Recv: s.recv, First: s.first, Last: s.last}
}

// newSessionState is the state of a new session: a random id, nothing sent,
// nothing received.
func newSessionState() *sessionState {
	s := &sessionState{first: 1}
	if _, err := rand.Read(s.id[:]); err != nil { // crypto/rand does not fail on Linux
		panic(err)
	}
	return s
}

// sessionIdentity is the identity a server binds a session to: the hex
// SHA-256 of the client certificate's SubjectPublicKeyInfo, or "" when the
// client gave none (TOKEN2.md, section 4).
func sessionIdentity(st tls.ConnectionState) string {
	if len(st.PeerCertificates) == 0 {
		return ""
	}
	sum := sha256.Sum256(st.PeerCertificates[0].RawSubjectPublicKeyInfo)
	return hex.EncodeToString(sum[:])
}

// dataFrames appends the DATA frames of encoded token/2 frames b to dst (the
// ACK, CLOSE and END between them are left out) and returns it, with the
// number of frames appended.
func dataFrames(dst, b []byte) ([]byte, int) {
	n := 0
	for len(b) > 0 {
		t, size, ok := wire.NextFrame2(b)
		if !ok {
			break
		}
		if t == wire.TypeData {
			dst = append(dst, b[:size]...)
			n++
		}
		b = b[size:]
	}
	return dst, n
}

// skipFrames returns b without its first k DATA frames (b holds DATA frames
// only).
func skipFrames(b []byte, k uint64) []byte {
	for ; k > 0 && len(b) > 0; k-- {
		_, size, ok := wire.NextFrame2(b)
		if !ok {
			return nil
		}
		b = b[size:]
	}
	return b
}
