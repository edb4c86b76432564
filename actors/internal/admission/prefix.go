package admission

import (
	"net"
	"net/netip"
)

// IPv6PrefixBits is the length of the prefix an IPv6 peer is accounted to:
// the /64 that one host, or one LAN, is given.
const IPv6PrefixBits = 64

// PrefixOf returns the prefix a peer's pending sockets are accounted to: its
// address (/32) for IPv4, an IPv4-mapped IPv6 address included; its /64 for
// IPv6; and the zero Prefix for a peer without an IP address (a Unix domain
// socket peer: local, and unnamed), which has no share limit.
func PrefixOf(a net.Addr) netip.Prefix {
	var ip netip.Addr
	switch a := a.(type) {
	case *net.TCPAddr:
		ip, _ = netip.AddrFromSlice(a.IP)
	case nil:
		return netip.Prefix{}
	default:
		ap, err := netip.ParseAddrPort(a.String())
		if err != nil {
			return netip.Prefix{}
		}
		ip = ap.Addr()
	}
	ip = ip.Unmap().WithZone("")
	switch {
	case ip.Is4():
		return netip.PrefixFrom(ip, 32)
	case ip.Is6():
		p, _ := ip.Prefix(IPv6PrefixBits)
		return p
	}
	return netip.Prefix{}
}
