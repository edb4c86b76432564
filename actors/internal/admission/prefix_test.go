package admission

import (
	"net"
	"net/netip"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestPrefixOf(t *testing.T) {
	tcp := func(s string) net.Addr { return &net.TCPAddr{IP: net.ParseIP(s), Port: 4000} }
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{tcp("192.0.2.7"), "192.0.2.7/32"},
		{tcp("::ffff:192.0.2.7"), "192.0.2.7/32"}, // IPv4 on a dual-stack listener
		{tcp("2001:db8:1:2:3:4:5:6"), "2001:db8:1:2::/64"},
		{tcp("2001:db8:1:2::ffff"), "2001:db8:1:2::/64"},
		{tcp("::1"), "::/64"},
		{&net.TCPAddr{IP: net.ParseIP("fe80::1"), Zone: "eth0"}, "fe80::/64"},
		{&net.UDPAddr{IP: net.ParseIP("2001:db8::1"), Port: 1}, "2001:db8::/64"},
	} {
		require.Equal(t, netip.MustParsePrefix(tc.want), PrefixOf(tc.addr), "%v", tc.addr)
	}
	require.NotEqual(t, PrefixOf(tcp("2001:db8:1:2::1")), PrefixOf(tcp("2001:db8:1:3::1")), "another /64")
	require.NotEqual(t, PrefixOf(tcp("192.0.2.1")), PrefixOf(tcp("192.0.2.2")), "IPv4: one address, not a /24")
	for _, a := range []net.Addr{nil, &net.UnixAddr{Name: "/tmp/sock", Net: "unix"}, &net.UnixAddr{Net: "unix"}} {
		require.False(t, PrefixOf(a).IsValid(), "%v has no prefix", a)
	}
}
