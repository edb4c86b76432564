//go:build !unix

package actors

import "log/slog"

func warnDescriptors(*slog.Logger, ServerOptions) {}

// DescriptorsFit reports true where the descriptor limit cannot be read.
func DescriptorsFit(maxConns, maxPending int) (ok bool, need, limit uint64) {
	return true, uint64(maxConns) + uint64(maxPending), 0
}
