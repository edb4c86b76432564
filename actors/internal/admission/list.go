package admission

// list is a doubly linked list in insertion order, with removal of any
// element by the handle push returned: the queues of a Book, whose members
// leave from the middle (a socket that closes while it waits) as often as
// from the front.
type list[T any] struct {
	head, tail *elem[T]
	n          int
}

// elem is one member of a list; it knows its list, so that removing it twice
// or from the wrong list is caught.
type elem[T any] struct {
	v          T
	prev, next *elem[T]
	l          *list[T]
}

// push appends v and returns its element.
func (l *list[T]) push(v T) *elem[T] {
	e := &elem[T]{v: v, prev: l.tail, l: l}
	if l.tail != nil {
		l.tail.next = e
	} else {
		l.head = e
	}
	l.tail = e
	l.n++
	return e
}

// remove takes e out of l.
func (l *list[T]) remove(e *elem[T]) {
	if e.l != l {
		panic("admission: element removed from a list it is not in")
	}
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		l.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		l.tail = e.prev
	}
	e.prev, e.next, e.l = nil, nil, nil
	l.n--
}

// front returns the first value; l must not be empty.
func (l *list[T]) front() T { return l.head.v }
