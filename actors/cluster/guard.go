package cluster

import (
	"context"
	"fmt"
	"log/slog"
	"runtime/debug"

	"github.com/asynkron/protoactor-go/remote"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"
)

// receiveMethod is the one RPC of Proto.Actor's Remoting service that a
// node calls on another: the stream that carries every actor message
// between them (remote's endpoint writer opens it). Its other RPCs,
// ListProcesses and GetProcessDiagnostics, are never called by a node, and
// this Proto.Actor version implements both as panic("implement me").
var receiveMethod = "/" + remote.Remoting_ServiceDesc.ServiceName + "/" + remote.Remoting_ServiceDesc.Streams[0].StreamName

// ServerGuard is the remote option that gives a node's gRPC server two
// interceptors, unary and stream (RemoteConfig and NodeTLS.RemoteOptions
// add it; add it yourself if you configure remote without them):
//   - every RPC but Proto.Actor's Receive stream is refused with
//     codes.PermissionDenied before its handler runs: a node never calls
//     the others, and Proto.Actor's own ListProcesses and
//     GetProcessDiagnostics panic;
//   - a panic in a handler (a malformed message batch on the Receive
//     stream makes Proto.Actor's reader index out of range) ends that call
//     with codes.Internal instead of the process, and is logged with its
//     stack.
//
// Both are logged through slog.Default() at the time they happen, with the
// method and the peer's address. A panic on another goroutine than the
// handler's is beyond any interceptor.
func ServerGuard() remote.ConfigOption {
	return func(c *remote.Config) {
		c.ServerOptions = append(c.ServerOptions,
			grpc.ChainUnaryInterceptor(guardUnary), grpc.ChainStreamInterceptor(guardStream))
	}
}

func guardUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (resp any, err error) {
	// No unary RPC is served: the handler never runs.
	return nil, refuse(ctx, info.FullMethod)
}

func guardStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) (err error) {
	if info.FullMethod != receiveMethod {
		return refuse(ss.Context(), info.FullMethod)
	}
	defer func() {
		if v := recover(); v != nil {
			slog.Default().Error("cluster: a gRPC handler of the node panicked; the call ends with codes.Internal, the node goes on",
				"method", info.FullMethod, "peer", peerAddr(ss.Context()), "panic", fmt.Sprint(v), "stack", string(debug.Stack()))
			err = status.Error(codes.Internal, "cluster: the node failed to handle the call")
		}
	}()
	return handler(srv, ss)
}

func refuse(ctx context.Context, method string) error {
	slog.Default().Warn("cluster: refused a gRPC call that nodes never make", "method", method, "peer", peerAddr(ctx))
	return status.Errorf(codes.PermissionDenied, "cluster: a node serves only %s", receiveMethod)
}

func peerAddr(ctx context.Context) string {
	if p, ok := peer.FromContext(ctx); ok && p.Addr != nil {
		return p.Addr.String()
	}
	return "unknown"
}
