package cluster

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"reflect"
	"testing"

	"github.com/stretchr/testify/require"
)

// The key that names a session to its grain binds it to the client
// certificate's key: the same session id from another certificate is
// another session.
func TestSessionKey(t *testing.T) {
	id := "00112233445566778899aabbccddeeff"
	one := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{RawSubjectPublicKeyInfo: []byte("key one")}}}
	two := tls.ConnectionState{PeerCertificates: []*x509.Certificate{{RawSubjectPublicKeyInfo: []byte("key two")}}}
	k := sessionKey(one, id)
	require.Len(t, k, sessionKeySize)
	require.Equal(t, k, sessionKey(one, id))
	require.NotEqual(t, k, sessionKey(two, id))
	require.NotEqual(t, k, sessionKey(one, "ffeeddccbbaa99887766554433221100"))
	require.Nil(t, sessionKey(one, ""), "token/1")
	require.Nil(t, sessionKey(one, "not hex"))
}

// The replies a grain keeps for a session's next connection: numbered,
// bounded (one at least, however large), let go once delivered, and replayed
// from what the new connection's front was handed, counting those no
// longer kept as lost.
func TestGsessionKeptReplies(t *testing.T) {
	o := &GrainOptions{MaxKeptReplies: 3, MaxKeptBytes: 1 << 20}
	replies := func(from, to int) [][]byte {
		var rs [][]byte
		for i := from; i <= to; i++ {
			rs = append(rs, []byte(fmt.Sprintf("r%d", i)))
		}
		return rs
	}
	tenSent := func() *gsession {
		s := &gsession{}
		if from := s.number(replies(1, 10), o); from != 1 {
			t.Fatalf("the first reply numbered %d, want 1", from)
		}
		if s.sent != 10 || len(s.kept) != 3 || string(s.kept[0]) != "r8" {
			t.Fatalf("sent %d, kept %q; want 10 and r8 to r10", s.sent, s.kept)
		}
		return s
	}
	for _, tc := range []struct {
		name             string
		written          uint64
		replay           [][]byte
		from, lost, sent uint64
	}{
		{"handed more", 12, nil, 0, 0, 12},
		{"handed all", 10, nil, 0, 0, 10},
		{"handed some of the kept", 8, replies(9, 10), 9, 0, 10},
		{"handed up to the oldest kept", 7, replies(8, 10), 8, 0, 10},
		{"lacks some no longer kept", 5, replies(8, 10), 6, 2, 8},
	} {
		s := tenSent()
		replay, from, lost := s.moveTo("conn", nil, 0, tc.written)
		if !reflect.DeepEqual(replay, tc.replay) || from != tc.from || lost != tc.lost || s.sent != tc.sent {
			t.Errorf("%s: moveTo(written %d) = %q from %d, %d lost, sent %d; want %q from %d, %d lost, sent %d",
				tc.name, tc.written, replay, from, lost, s.sent, tc.replay, tc.from, tc.lost, tc.sent)
		}
	}

	s := tenSent()
	s.release(7) // before the oldest kept
	if len(s.kept) != 3 {
		t.Errorf("release(7) kept %q, want r8 to r10", s.kept)
	}
	s.release(8)
	if !reflect.DeepEqual(s.kept, replies(9, 10)) {
		t.Errorf("release(8) kept %q, want r9 and r10", s.kept)
	}
	s.release(20)
	if s.kept != nil || s.keptBytes != 0 {
		t.Errorf("release(20) kept %q (%d bytes), want none", s.kept, s.keptBytes)
	}

	big := &gsession{}
	big.number([][]byte{make([]byte, 100)}, &GrainOptions{MaxKeptReplies: 3, MaxKeptBytes: 10})
	if len(big.kept) != 1 {
		t.Errorf("a reply over MaxKeptBytes alone: %d kept, want it kept", len(big.kept))
	}
	big.number([][]byte{make([]byte, 100)}, &GrainOptions{MaxKeptReplies: 3, MaxKeptBytes: 10})
	if len(big.kept) != 1 || big.sent != 2 {
		t.Errorf("a second one: %d kept, sent %d; want the newest kept, 2 sent", len(big.kept), big.sent)
	}
}

// A grain's record of a session knows every number from the first it
// handled to the highest: those are repeats, and nothing else is. A number
// before the record's first (from before it expired, or before the grain
// moved) is handled and changes nothing; one after a gap starts the record
// again there.
func TestGsessionRecord(t *testing.T) {
	s := &gsession{}
	repeats := func(when string, want ...uint64) {
		t.Helper()
		var got []uint64
		for seq := uint64(1); seq <= 12; seq++ {
			if s.repeat(seq) {
				got = append(got, seq)
			}
		}
		require.Equal(t, want, got, "repeats %s", when)
	}
	repeats("before the first")
	s.took(5)
	s.took(6)
	repeats("after 5 and 6", 5, 6)
	s.took(3) // before the record's first: handled, not recorded
	repeats("after 3", 5, 6)
	s.took(7)
	repeats("after 7", 5, 6, 7)
	s.took(10) // a gap: 8 and 9 were never seen here
	repeats("after the gap to 10", 10)
}
