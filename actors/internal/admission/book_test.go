package admission

import (
	"fmt"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

// key names a socket in these tests: its prefix's letter and its number.
type key string

var prefixes = map[byte]netip.Prefix{
	'a': netip.MustParsePrefix("192.0.2.1/32"),
	'b': netip.MustParsePrefix("192.0.2.2/32"),
	'c': netip.MustParsePrefix("2001:db8::/64"),
	'u': {}, // a Unix socket peer
}

func arrive(b *Book[key], k key) []Effect[key] { return b.Arrive(k, prefixes[k[0]]) }

func eff(kind Kind, k key) Effect[key] { return Effect[key]{Kind: kind, Key: k} }

func evicted(k key, started bool) Effect[key] {
	return Effect[key]{Kind: Evict, Key: k, Started: started}
}

func TestSocketsOverTheirShareWaitTheirTurnInOrder(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 2, MaxHandshakes: 1})
	require.Equal(t, []Effect[key]{eff(Start, "a1")}, arrive(b, "a1"))
	require.Equal(t, []Effect[key]{eff(Start, "a2")}, arrive(b, "a2"))
	require.Empty(t, arrive(b, "a3"), "over its prefix's share: it waits, it is not refused")
	require.Empty(t, arrive(b, "a4"))
	require.Equal(t, []Effect[key]{eff(Start, "b1")}, arrive(b, "b1"), "another prefix has a share of its own")
	pending, waiting := b.Pending()
	require.Equal(t, [2]int{5, 2}, [2]int{pending, waiting})

	require.Equal(t, []Effect[key]{eff(Start, "a3")}, b.Leave("a2", false), "a place in the share goes to the oldest waiting")
	require.Empty(t, b.Leave("a4", false), "a waiting socket that closes just leaves the queue")
	require.Empty(t, b.Leave("a3", false), "nobody waits any more")
	pending, waiting = b.Pending()
	require.Equal(t, [2]int{2, 0}, [2]int{pending, waiting})
}

func TestHandshakeSlotsGoToPrefixesInTurn(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 10, MaxHandshakes: 1})
	for _, k := range []key{"a1", "a2", "a3", "a4", "b1", "b2"} {
		arrive(b, k)
	}
	require.Equal(t, []Effect[key]{eff(Grant, "a1")}, b.Hello("a1"))
	for _, k := range []key{"a2", "a3", "a4", "b1", "b2"} {
		require.Empty(t, b.Hello(k), "%s waits for the slot", k)
	}
	var order []key
	for next := key("a1"); ; {
		effects := b.FlightDone(next)
		if len(effects) == 0 {
			break
		}
		require.Len(t, effects, 1)
		require.Equal(t, Grant, effects[0].Kind)
		next = effects[0].Key
		order = append(order, next)
	}
	require.Equal(t, []key{"a2", "b1", "a3", "b2", "a4"}, order,
		"the crowd of a does not make b wait for all of it")
}

func TestASlotIsHeldUntilTheFlightIsWrittenOnly(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 10, MaxHandshakes: 1})
	arrive(b, "a1")
	arrive(b, "b1")
	require.Equal(t, []Effect[key]{eff(Grant, "a1")}, b.Hello("a1"))
	require.Empty(t, b.Hello("b1"))
	require.Equal(t, []Effect[key]{eff(Grant, "b1")}, b.FlightDone("a1"),
		"a1 now waits for its client, not for the CPU: b1 goes on")
	require.Empty(t, b.FlightDone("a1"), "a slot is given back once")
	ok, effects := b.Up("a1")
	require.True(t, ok)
	require.Empty(t, effects)
}

func TestAClosedAskerIsDeniedAndItsSlotPassesOn(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 10, MaxHandshakes: 1})
	for _, k := range []key{"a1", "a2", "a3"} {
		arrive(b, k)
		b.Hello(k)
	}
	require.Equal(t, []Effect[key]{eff(Deny, "a2")}, b.Leave("a2", false))
	require.Equal(t, []Effect[key]{eff(Grant, "a3")}, b.Leave("a1", false), "a slot holder that fails gives it back")
	require.Equal(t, []Effect[key]{eff(Deny, "zz")}, b.Hello("zz"), "an unknown socket gets no slot")
}

func TestTheOldestSilentSocketOfTheBiggestPrefixMakesRoom(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 5, MaxPerPrefix: 2, MaxHandshakes: 1})
	for _, k := range []key{"a1", "a2", "a3", "b1", "b2"} {
		arrive(b, k)
	}
	b.Hello("a1") // not silent any more: never evicted
	// a and b hold 2 silent sockets each (a2 in its handshake, a3 waiting;
	// b1, b2): b reached 2 first, so a newcomer of c takes b's oldest place.
	require.Equal(t, []Effect[key]{evicted("b1", true), eff(Start, "c1")}, arrive(b, "c1"))
	// Now a holds the most (2): its oldest silent goes, and its waiting
	// one gets the place in its share.
	require.Equal(t, []Effect[key]{evicted("a2", true), eff(Start, "a3"), eff(Start, "c2")}, arrive(b, "c2"))
	// A newcomer of c counts itself: c would hold 3, the most, so c's own
	// oldest silent socket makes room.
	require.Equal(t, []Effect[key]{evicted("c1", true), eff(Start, "c3")}, arrive(b, "c3"))
	pending, _ := b.Pending()
	require.Equal(t, 5, pending, "the queue stays full, never over")
}

func TestAWaitingSocketIsEvictedUnread(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 3, MaxPerPrefix: 1, MaxHandshakes: 1})
	for _, k := range []key{"a1", "a2", "a3"} {
		arrive(b, k)
	}
	b.Hello("a1")
	require.Equal(t, []Effect[key]{evicted("a2", false), eff(Start, "b1")}, arrive(b, "b1"))
}

func TestANewcomerIsRefusedOnlyWhenNothingSilentCanMakeRoom(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 2, MaxPerPrefix: 2, MaxHandshakes: 1})
	arrive(b, "a1")
	arrive(b, "b1")
	b.Hello("a1")
	b.Hello("b1")
	require.Equal(t, []Effect[key]{eff(Refuse, "c1")}, arrive(b, "c1"))
	require.Equal(t, []Effect[key]{eff(Refuse, "a2")}, arrive(b, "a2"))
	pending, _ := b.Pending()
	require.Equal(t, 2, pending)
	require.Equal(t, []Effect[key]{eff(Start, "c2")}, func() []Effect[key] { b.Leave("a1", false); return arrive(b, "c2") }())
}

func TestSixteenPrefixesOfSilentSocketsDoNotLockOutASeventeenth(t *testing.T) {
	b := New[netip.Prefix](Config{MaxConns: 10, MaxPending: 1024, MaxPerPrefix: 64, MaxHandshakes: 1})
	var oldest netip.Prefix
	for i := range 16 {
		for j := range 64 {
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 0, 1}), 32)
			k := netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(i), 1, byte(j)}), 32) // a key per socket
			if i == 0 && j == 0 {
				oldest = k
			}
			require.Equal(t, []Effect[netip.Prefix]{{Kind: Start, Key: k}}, b.Arrive(k, p))
		}
	}
	newcomer := netip.MustParsePrefix("10.99.0.1/32")
	effects := b.Arrive(newcomer, newcomer)
	require.Equal(t, []Effect[netip.Prefix]{{Kind: Evict, Key: oldest, Started: true}, {Kind: Start, Key: newcomer}}, effects)
	require.Equal(t, []Effect[netip.Prefix]{{Kind: Grant, Key: newcomer}}, b.Hello(newcomer),
		"silent sockets hold no handshake slot")
}

func TestUnixPeersHaveNoShare(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 1, MaxHandshakes: 1})
	for i := range 5 {
		k := key(fmt.Sprintf("u%d", i))
		require.Equal(t, []Effect[key]{eff(Start, k)}, arrive(b, k))
	}
}

func TestUpCountsAuthenticatedConnections(t *testing.T) {
	b := New[key](Config{MaxConns: 1, MaxPending: 100, MaxPerPrefix: 1, MaxHandshakes: 1})
	arrive(b, "a1")
	arrive(b, "a2")
	b.Hello("a1")
	ok, effects := b.Up("a1")
	require.True(t, ok)
	require.Equal(t, []Effect[key]{eff(Start, "a2")}, effects, "the place in the share passes on")
	b.Hello("a2")
	ok, _ = b.Up("a2")
	require.False(t, ok, "over MaxConns")
	require.Equal(t, 1, b.Live())
	b.Leave("a2", false)
	b.Leave("a1", true)
	require.Zero(t, b.Live())
	pending, _ := b.Pending()
	require.Zero(t, pending)
}

func TestDropWaitingForgetsOnlyTheWaiting(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 1, MaxHandshakes: 1})
	for _, k := range []key{"a1", "a2", "a3", "b1"} {
		arrive(b, k)
	}
	require.ElementsMatch(t, []key{"a2", "a3"}, b.DropWaiting())
	pending, waiting := b.Pending()
	require.Equal(t, [2]int{2, 0}, [2]int{pending, waiting})
	require.Empty(t, b.Leave("a1", false), "nothing waits: nobody starts")
}

func TestAPrefixKeepsItsShareWhenOneOfItsSocketsLeaves(t *testing.T) {
	b := New[key](Config{MaxConns: 10, MaxPending: 100, MaxPerPrefix: 1, MaxHandshakes: 1})
	arrive(b, "a1")
	require.Empty(t, arrive(b, "a2"))
	require.Empty(t, arrive(b, "a3"))
	require.Equal(t, []Effect[key]{eff(Start, "a2")}, b.Leave("a1", false))
	require.Empty(t, arrive(b, "a4"), "a2 holds the share of a: a4 waits behind a3")
	require.Equal(t, []Effect[key]{eff(Start, "a3")}, b.Leave("a2", false), "the oldest waiting goes first")
}

// A server meets millions of addresses over its life: once every socket is
// gone, whatever way it went, the Book keeps nothing of it or its prefix.
func TestTheBookForgetsWhatLeft(t *testing.T) {
	b := New[key](Config{MaxConns: 2, MaxPending: 6, MaxPerPrefix: 2, MaxHandshakes: 1})
	for round := range 3 {
		var alive []key
		gone := map[key]bool{}
		for _, p := range "abcu" {
			for i := range 3 {
				k := key(fmt.Sprintf("%c%d.%d", p, round, i))
				alive = append(alive, k)
				for _, e := range arrive(b, k) { // over MaxPending: some are evicted or refused
					if e.Kind == Evict || e.Kind == Refuse {
						gone[e.Key] = true
					}
				}
			}
		}
		for _, k := range b.DropWaiting() {
			gone[k] = true
		}
		for i, k := range alive {
			if gone[k] {
				continue
			}
			b.Hello(k)
			b.FlightDone(k)
			if i%2 == 1 {
				b.Leave(k, false) // its handshake failed
				continue
			}
			ok, _ := b.Up(k)
			b.Leave(k, ok)
		}
		pending, waiting := b.Pending()
		require.Equal(t, [3]int{0, 0, 0}, [3]int{pending, waiting, b.Live()}, "round %d", round)
		require.Empty(t, b.socks, "round %d: sockets kept", round)
		require.Empty(t, b.prefixes, "round %d: prefixes kept", round)
		require.Empty(t, b.bySilent, "round %d: prefixes kept by their silent sockets", round)
		require.Zero(t, b.ring.n, "round %d: prefixes kept in the ring", round)
		require.Zero(t, b.slots, "round %d: slots held", round)
	}
}
