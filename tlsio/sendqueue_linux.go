package tlsio

import (
	"crypto/tls"
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// sendQueueProbe returns a function that reports whether conn's send queue
// is empty (SIOCOUTQ: no byte written and not yet acknowledged by the peer),
// or nil when conn is not a socket it can ask. A *tls.Conn is asked about
// the connection under it; a wrapper of that connection may offer its
// descriptor by implementing syscall.Conn.
func sendQueueProbe(conn net.Conn) func() bool {
	if tc, ok := conn.(*tls.Conn); ok {
		conn = tc.NetConn()
	}
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return func() bool {
		queued := -1
		if err := rc.Control(func(fd uintptr) {
			if v, err := unix.IoctlGetInt(int(fd), unix.SIOCOUTQ); err == nil {
				queued = v
			}
		}); err != nil {
			return false
		}
		return queued == 0
	}
}
