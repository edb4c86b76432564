package actors

import "github.com/asynkron/protoactor-go/actor"

// CreditMiddleware is a receive middleware for handler actors: after the
// actor has processed each *TokenReceived (returned from Receive, or
// panicked), it sends Credit{Tokens: 1} to the token's connection, which may
// then read on. Use it in the handler's props:
//
//	props := actor.PropsFromProducer(newHandler,
//		actor.WithReceiverMiddleware(actors.CreditMiddleware))
//
// A handler PID that returns no credit stops its connections from reading
// after Limits.ReadWindow chunks: memory stays bounded and TCP pushes back on
// the peer, but nothing more arrives. A handler that hands tokens on to
// other actors may instead send the Credit itself once the work is done.
func CreditMiddleware(next actor.ReceiverFunc) actor.ReceiverFunc {
	return func(ctx actor.ReceiverContext, env *actor.MessageEnvelope) {
		if tok, ok := env.Message.(*TokenReceived); ok && tok.Conn != nil {
			defer ctx.ActorSystem().Root.Send(tok.Conn, &Credit{Tokens: 1})
		}
		next(ctx, env)
	}
}

// HandlerProps returns props for a handler actor made by producer, with
// CreditMiddleware and any other options.
func HandlerProps(producer actor.Producer, opts ...actor.PropsOption) *actor.Props {
	opts = append([]actor.PropsOption{actor.WithReceiverMiddleware(CreditMiddleware)}, opts...)
	return actor.PropsFromProducer(producer, opts...)
}
