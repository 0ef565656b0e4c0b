package netnstest

import "testing"

// The IPv6 half of Gateway's lab (DualStack), as scripts/lab.sh numbers it.
const (
	ClientIPv6        = "fd00:10::2"
	EdgeInsideIPv6    = "fd00:10::1"
	EdgeOutsideIPv6   = "2001:db8:113::1"
	ServerIPv6        = "2001:db8:113::2"
	InsidePrefixIPv6  = "fd00:10::/64"
	OutsidePrefixIPv6 = "2001:db8:113::/64"
)

// AddIPv6 enables IPv6 on interface name in ns (Veth disables it) and, when
// addr (a prefix, e.g. "fd00:10::1/64") is not empty, adds it without
// duplicate address detection, so the address is usable at once.
func AddIPv6(t testing.TB, ns *NS, name, addr string) {
	t.Helper()
	ns.Run(t, "sysctl", "-qw", "net.ipv6.conf."+name+".accept_dad=0", "net.ipv6.conf."+name+".disable_ipv6=0")
	if addr != "" {
		ns.Run(t, "ip", "-6", "addr", "add", addr, "dev", name, "nodad")
	}
}

// DualStack adds IPv6 to a Gateway lab: inside fd00:10::/64 (client ::2,
// edge ::1), outside 2001:db8:113::/64 (edge ::1, server ::2), the client's
// default route via fd00:10::1. The server has no route back to the
// inside, as in IPv4: only translated traffic can be answered.
func DualStack(t testing.TB, client, edge, server *NS) {
	t.Helper()
	AddIPv6(t, client, "c0", ClientIPv6+"/64")
	AddIPv6(t, edge, "in", EdgeInsideIPv6+"/64")
	AddIPv6(t, edge, "out", EdgeOutsideIPv6+"/64")
	AddIPv6(t, server, "s0", ServerIPv6+"/64")
	client.Run(t, "ip", "-6", "route", "add", "default", "via", EdgeInsideIPv6)
}
