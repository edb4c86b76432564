package cluster

import (
	"github.com/asynkron/protoactor-go/actor"
	"github.com/tokenserver/tokenserver/actors/cluster/clusterpb"
)

// outbox is what a grain sends while it processes one message, by front
// (reply_to), each front's in the order made: the Credits that follow one
// another travel in one Credits, and a front that sent several batches in
// one message gets one answer. A session's replies can go to another
// front than the batch that made them (its newest connection's), so the
// order that matters is each front's: a front writes a session's replies
// in the order it gets them.
type outbox struct {
	fronts []frontOut
}

// frontOut is what goes to one front.
type frontOut struct {
	to   *actor.PID
	msgs []any
}

// queue returns what goes to front to.
func (o *outbox) queue(to *actor.PID) *frontOut {
	for i := range o.fronts {
		if o.fronts[i].to.Equal(to) {
			return &o.fronts[i]
		}
	}
	o.fronts = append(o.fronts, frontOut{to: to})
	return &o.fronts[len(o.fronts)-1]
}

// credit queues a Credit for front to.
func (o *outbox) credit(to *actor.PID, c *clusterpb.Credit) {
	q := o.queue(to)
	if n := len(q.msgs); n > 0 {
		switch last := q.msgs[n-1].(type) {
		case *clusterpb.Credit:
			q.msgs[n-1] = &clusterpb.Credits{Credits: []*clusterpb.Credit{last, c}}
			return
		case *clusterpb.Credits:
			last.Credits = append(last.Credits, c)
			return
		}
	}
	q.msgs = append(q.msgs, c)
}

// send queues another message for front to.
func (o *outbox) send(to *actor.PID, m any) {
	q := o.queue(to)
	q.msgs = append(q.msgs, m)
}

// flush sends what was queued, and empties the outbox.
func (o *outbox) flush(ctx actor.Context, identity string) {
	for i := range o.fronts {
		q := &o.fronts[i]
		for _, m := range q.msgs {
			if cs, ok := m.(*clusterpb.Credits); ok {
				cs.Identity = identity
			}
			ctx.Send(q.to, m)
		}
		o.fronts[i] = frontOut{}
	}
	o.fronts = o.fronts[:0]
}
