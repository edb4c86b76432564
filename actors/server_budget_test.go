package actors

import (
	"errors"
	"testing"
)

// A MemoryBudget must hold one token of MaxTokenSize in the budget's
// steps (1 MiB): with tokens of 1 MiB and a byte, 2 MiB, and no less; with
// tokens of 2 MiB, 2 MiB. A negative budget is none.
func TestMemoryBudgetHoldsOneToken(t *testing.T) {
	const mib = 1 << 20
	for _, tc := range []struct {
		maxToken, budget int
		ok               bool
	}{
		{mib + 1, 2*mib - 1, false},
		{mib + 1, 2 * mib, true},
		{2 * mib, 2 * mib, true},
		{mib + 1, -1, true},
	} {
		srv, err := NewServer(ServerOptions{
			Host: "127.0.0.1", TLS: testCerts(t).ServerOptions(),
			Limits: Limits{MaxTokenSize: tc.maxToken}, MemoryBudget: tc.budget,
		})
		if tc.ok != (err == nil) || err != nil && !errors.Is(err, ErrInvalidOptions) {
			t.Errorf("MemoryBudget %d for tokens of %d bytes: %v; want ok %v (or ErrInvalidOptions)", tc.budget, tc.maxToken, err, tc.ok)
		}
		if srv != nil {
			shutdownWithin(t, "server", srv.Shutdown)
		}
	}
}
