package admission

import "net/netip"

// Config holds the limits of a Book. Each must be at least 1.
type Config struct {
	// MaxConns is the limit of authenticated connections (see Book.Up).
	MaxConns int
	// MaxPending is how many sockets may be pending (accepted and not yet
	// through their handshake, in it or waiting for their turn), in all.
	MaxPending int
	// MaxPerPrefix is how many pending sockets of one prefix may be in
	// their handshake at once; the others wait their turn. The zero Prefix
	// has no such limit.
	MaxPerPrefix int
	// MaxHandshakes is how many sockets may hold a handshake slot (run the
	// CPU-heavy part of their handshake) at once.
	MaxHandshakes int
}

// Kind says what an Effect asks of the Book's owner.
type Kind uint8

// The effects a Book asks for.
const (
	// Start: begin the socket's handshake now (read its client hello).
	Start Kind = iota + 1
	// Grant: the socket holds a handshake slot; its handshake goes on.
	Grant
	// Deny: the socket asked for a slot and gets none: it is gone from the
	// Book (closed, evicted, or never known).
	Deny
	// Evict: close the socket to make room for a newcomer. Started says
	// whether its handshake had begun (else it was waiting its turn,
	// unread).
	Evict
	// Refuse: close the newcomer: every pending place is held, and none
	// by a silent socket that could make room.
	Refuse
)

// Effect is one thing the owner must do, in the order given.
type Effect[K comparable] struct {
	Kind Kind
	Key  K
	// Started: for Evict, the socket's handshake had begun.
	Started bool
}

// Book is the admission state of one server. K identifies a socket (the
// server's handle of its connection). Every method returns the effects of
// the event, in order, in a slice of its own (nil if none).
type Book[K comparable] struct {
	cfg      Config
	socks    map[K]*sock[K]
	prefixes map[netip.Prefix]*prefix[K]
	pending  int
	live     int
	slots    int // handshake slots held
	// ring holds the prefixes with a socket that asks for a slot, in turn.
	ring list[*prefix[K]]
	// bySilent holds the prefixes by their number of silent sockets (> 0),
	// each bucket in the order the prefixes reached that number, and
	// maxSilent is the largest such number: the next eviction's prefix is
	// the front of bySilent[maxSilent], found without a scan.
	bySilent  map[int]*list[*prefix[K]]
	maxSilent int
	out       []Effect[K]
}

// sock is one pending socket. It is in its prefix's silent list until its
// client hello has arrived, in its waiting list until it starts, in its
// asking list while it waits for a slot.
type sock[K comparable] struct {
	key     K
	pre     *prefix[K]
	started bool
	slot    bool // holds a handshake slot
	silent  *elem[*sock[K]]
	waiting *elem[*sock[K]]
	asking  *elem[*sock[K]]
}

// prefix is the pending sockets of one prefix.
type prefix[K comparable] struct {
	key     netip.Prefix
	pending int // all its pending sockets
	started int // of those, in their handshake
	silent  list[*sock[K]]
	waiting list[*sock[K]]
	asking  list[*sock[K]]
	inRing  *elem[*prefix[K]]
	bucket  *elem[*prefix[K]]
}

// New returns an empty Book with the limits of cfg.
func New[K comparable](cfg Config) *Book[K] {
	return &Book[K]{
		cfg: cfg, socks: map[K]*sock[K]{}, prefixes: map[netip.Prefix]*prefix[K]{},
		bySilent: map[int]*list[*prefix[K]]{},
	}
}

// Arrive takes a socket just accepted from prefix p. If MaxPending are held,
// the oldest silent socket of the prefix with the most silent ones is
// evicted first, or k is refused if that would be k itself. An admitted
// socket starts now if its prefix has room in its share, else it waits.
func (b *Book[K]) Arrive(k K, p netip.Prefix) []Effect[K] {
	b.out = nil
	if _, dup := b.socks[k]; dup {
		panic("admission: a socket arrived twice")
	}
	pre := b.prefixes[p]
	if b.pending >= b.cfg.MaxPending {
		victim := b.victim(pre)
		if victim == nil {
			return b.emit(Refuse, k)
		}
		b.emitEvict(victim)
		b.remove(victim)
		pre = b.prefixes[p] // the victim's removal may have emptied it
	}
	if pre == nil {
		pre = &prefix[K]{key: p}
		b.prefixes[p] = pre
	}
	s := &sock[K]{key: k, pre: pre}
	b.socks[k] = s
	pre.pending++
	b.pending++
	s.silent = pre.silent.push(s)
	b.silentChanged(pre, pre.silent.n-1)
	s.waiting = pre.waiting.push(s)
	b.startTurns(pre)
	return b.out
}

// victim returns the socket to evict so that a newcomer of pre (nil: a new
// prefix) gets a place, or nil if the newcomer itself would be the one.
func (b *Book[K]) victim(pre *prefix[K]) *sock[K] {
	mine := 1 // the newcomer is silent
	if pre != nil {
		mine += pre.silent.n
	}
	if mine > b.maxSilent {
		if mine == 1 {
			return nil
		}
		return pre.silent.front()
	}
	return b.bySilent[b.maxSilent].front().silent.front()
}

// Hello records that k's client hello has arrived: k is no longer silent and
// asks for a handshake slot. It gets one now (Grant) or in its prefix's turn;
// an unknown k (evicted, closed) is denied.
func (b *Book[K]) Hello(k K) []Effect[K] {
	b.out = nil
	s := b.socks[k]
	if s == nil || !s.started || s.silent == nil {
		return b.emit(Deny, k)
	}
	b.unsilence(s)
	pre := s.pre
	s.asking = pre.asking.push(s)
	if pre.inRing == nil {
		pre.inRing = b.ring.push(pre)
	}
	b.grantSlots()
	return b.out
}

// FlightDone records that k's server flight is written: the CPU-heavy part
// of its handshake is over, and its slot goes to the next prefix in turn.
func (b *Book[K]) FlightDone(k K) []Effect[K] {
	b.out = nil
	if s := b.socks[k]; s != nil && s.slot {
		s.slot = false
		b.slots--
		b.grantSlots()
	}
	return b.out
}

// Up records that k's handshake is done: k is no longer pending, and counts
// as an authenticated connection unless MaxConns are (ok false: k is not
// counted, and must be closed; Leave it with live false).
func (b *Book[K]) Up(k K) (ok bool, effects []Effect[K]) {
	b.out = nil
	if s := b.socks[k]; s != nil {
		b.remove(s)
	}
	if b.live >= b.cfg.MaxConns {
		return false, b.out
	}
	b.live++
	return true, b.out
}

// Leave forgets k, which closed; live says whether Up counted it.
func (b *Book[K]) Leave(k K, live bool) []Effect[K] {
	b.out = nil
	if s := b.socks[k]; s != nil {
		b.remove(s)
	}
	if live {
		b.live--
	}
	return b.out
}

// DropWaiting forgets every socket that waits for its turn, and returns
// them, for their owner to close (the server stops accepting: they go as
// the listen backlog does).
func (b *Book[K]) DropWaiting() []K {
	var dropped []*sock[K]
	for _, pre := range b.prefixes {
		for pre.waiting.n > 0 {
			s := pre.waiting.front()
			pre.waiting.remove(s.waiting)
			s.waiting = nil
			dropped = append(dropped, s)
		}
	}
	keys := make([]K, 0, len(dropped))
	for _, s := range dropped {
		b.remove(s) // nothing waits any more: no effects
		keys = append(keys, s.key)
	}
	return keys
}

// Pending returns the number of pending sockets, and of those the ones that
// wait for their turn.
func (b *Book[K]) Pending() (pending, waiting int) {
	for _, pre := range b.prefixes {
		waiting += pre.waiting.n
	}
	return b.pending, waiting
}

// Live returns the number of authenticated connections counted.
func (b *Book[K]) Live() int { return b.live }

// remove takes s out of the Book, gives back its slot and its place in its
// prefix's share, and starts whoever's turn that makes.
func (b *Book[K]) remove(s *sock[K]) {
	pre := s.pre
	if s.silent != nil {
		b.unsilence(s)
	}
	if s.waiting != nil {
		pre.waiting.remove(s.waiting)
		s.waiting = nil
	}
	if s.asking != nil {
		pre.asking.remove(s.asking)
		s.asking = nil
		if pre.asking.n == 0 {
			b.ring.remove(pre.inRing)
			pre.inRing = nil
		}
		b.emit(Deny, s.key)
	}
	if s.slot {
		s.slot = false
		b.slots--
	}
	if s.started {
		pre.started--
	}
	pre.pending--
	b.pending--
	delete(b.socks, s.key)
	b.grantSlots()
	b.startTurns(pre)
	if pre.pending == 0 {
		delete(b.prefixes, pre.key)
	}
}

// startTurns starts the waiting sockets of pre while its share has room.
func (b *Book[K]) startTurns(pre *prefix[K]) {
	for pre.waiting.n > 0 && (!pre.key.IsValid() || pre.started < b.cfg.MaxPerPrefix) {
		s := pre.waiting.front()
		pre.waiting.remove(s.waiting)
		s.waiting = nil
		s.started = true
		pre.started++
		b.emit(Start, s.key)
	}
}

// grantSlots gives free slots to the prefixes in the ring, in turn: the
// first asker of the prefix at the front, which then goes to the back.
func (b *Book[K]) grantSlots() {
	for b.slots < b.cfg.MaxHandshakes && b.ring.n > 0 {
		pre := b.ring.front()
		b.ring.remove(pre.inRing)
		pre.inRing = nil
		s := pre.asking.front()
		pre.asking.remove(s.asking)
		s.asking = nil
		s.slot = true
		b.slots++
		if pre.asking.n > 0 {
			pre.inRing = b.ring.push(pre)
		}
		b.emit(Grant, s.key)
	}
}

// unsilence takes s out of its prefix's silent sockets.
func (b *Book[K]) unsilence(s *sock[K]) {
	pre := s.pre
	pre.silent.remove(s.silent)
	s.silent = nil
	b.silentChanged(pre, pre.silent.n+1)
}

// silentChanged moves pre to the bucket of its new number of silent
// sockets, from the one of old.
func (b *Book[K]) silentChanged(pre *prefix[K], old int) {
	if old > 0 {
		bucket := b.bySilent[old]
		bucket.remove(pre.bucket)
		pre.bucket = nil
		if bucket.n == 0 {
			delete(b.bySilent, old)
		}
	}
	if n := pre.silent.n; n > 0 {
		bucket := b.bySilent[n]
		if bucket == nil {
			bucket = &list[*prefix[K]]{}
			b.bySilent[n] = bucket
		}
		pre.bucket = bucket.push(pre)
		b.maxSilent = max(b.maxSilent, n)
	}
	for b.maxSilent > 0 && b.bySilent[b.maxSilent] == nil {
		b.maxSilent--
	}
}

func (b *Book[K]) emit(kind Kind, k K) []Effect[K] {
	b.out = append(b.out, Effect[K]{Kind: kind, Key: k})
	return b.out
}

func (b *Book[K]) emitEvict(s *sock[K]) {
	b.out = append(b.out, Effect[K]{Kind: Evict, Key: s.key, Started: s.started})
}
