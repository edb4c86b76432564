//go:build unix

package actors

import (
	"log/slog"
	"syscall"
)

// descriptorMargin is what a server process needs besides its connections:
// the listener, standard streams, the runtime, log files.
const descriptorMargin = 32

// warnDescriptors warns when the process's descriptor limit cannot hold
// every connection the options allow (authenticated and pending).
func warnDescriptors(log *slog.Logger, o ServerOptions) {
	if ok, need, limit := DescriptorsFit(o.MaxConnections, o.MaxPending); !ok {
		log.Warn("the descriptor limit is lower than the connections the server allows; accept will back off when it runs out",
			"need", need, "RLIMIT_NOFILE", limit, "MaxConnections", o.MaxConnections, "MaxPending", o.MaxPending)
	}
}

// DescriptorsFit reports whether the process's file descriptor limit (the
// soft RLIMIT_NOFILE) can hold maxConns authenticated and maxPending pending
// connections, with a margin for the rest of the process, and the figures
// compared. A server whose limit is too low keeps running: accept backs off
// while descriptors are out, and goes on once some are released.
func DescriptorsFit(maxConns, maxPending int) (ok bool, need, limit uint64) {
	need = uint64(maxConns) + uint64(maxPending) + descriptorMargin
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		return true, need, 0
	}
	return rl.Cur >= need, need, rl.Cur
}
