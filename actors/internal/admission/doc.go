// Package admission is the bookkeeping of a server's admission control: who
// may begin a TLS handshake now, who waits for a turn, who runs the CPU-heavy
// part of a handshake, who makes room when the server holds all the sockets
// it can, and how many authenticated connections there are. It does no I/O
// and knows nothing of actors or sockets: the server actor owns one [Book],
// tells it every event of a socket (accepted, client hello arrived, server
// flight written, handshake done, closed) and carries out the [Effect]s each
// call returns (start a handshake, grant a slot, evict or refuse a socket).
// A Book is not safe for concurrent use; its one owner is the server actor.
//
// # The rules
//
//   - Every socket accepted and not yet through its handshake is pending,
//     and counts against MaxPending, whatever it is doing.
//   - Pending sockets are accounted by the prefix of their address
//     ([PrefixOf]): one IPv4 address, or one IPv6 /64. At most MaxPerPrefix
//     of one prefix are in their handshake at once (read from their
//     socket); the others wait their turn, in the order they came, unread:
//     a crowd from one address queues instead of being refused, and costs
//     a descriptor and a few hundred bytes per socket while it waits.
//   - A socket that has not delivered its whole client hello is silent.
//     A silent socket holds no handshake slot; once its hello has arrived it
//     asks for one, and at most MaxHandshakes sockets hold a slot at once.
//     Slots go to prefixes in turn (round robin), each prefix's askers in
//     order, so one prefix's crowd cannot starve another's single client.
//   - When MaxPending are held and another socket comes, the prefix holding
//     the most silent sockets (counting the newcomer in its own prefix)
//     loses its oldest silent one to make room. Only when that would be the
//     newcomer itself (nothing silent anywhere else) is the newcomer
//     refused. Sockets that are in the middle of a real handshake are never
//     evicted.
//
// Why a prefix and not an address: over IPv6 one host owns a whole /64,
// and could otherwise take a share per address. Over IPv4 the prefix is
// the single address, not a /24: addresses are scarce, so one host rarely
// holds many, while many independent hosts (a data centre subnet, an office)
// share a /24, and the clients of a token server are mostly such fleets.
// What closes the "many addresses" attack is the eviction rule, which does
// not depend on the prefix length: sixteen addresses that each hold their
// share of silent sockets lose them to a newcomer from a seventeenth.
package admission
