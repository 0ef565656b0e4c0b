package dataplane

import (
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// kernelRoutes reads the main routing table's routes through edge's two
// interfaces (ifindexes[0] inside, [1] outside) as Routes: connected
// networks, gateways and the default route. Multipath routes are skipped.
// It runs on a thread in the interfaces' network namespace.
func kernelRoutes(ifindexes [2]int) ([]Route, error) {
	var out []Route
	for port, ifindex := range ifindexes {
		link, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return nil, err
		}
		list, err := netlink.RouteList(link, unix.AF_UNSPEC)
		if err != nil {
			return nil, err
		}
		for _, r := range list {
			if len(r.MultiPath) > 0 || r.Type != unix.RTN_UNICAST ||
				r.Protocol == unix.RTPROT_RA || r.Protocol == unix.RTPROT_REDIRECT {
				// Never a route a neighbour told the kernel about (a rogue
				// router advertisement must not steer edge's traffic).
				continue
			}
			var dst netip.Prefix
			if r.Dst == nil {
				// The default route of the family of its gateway.
				gw, ok := netip.AddrFromSlice(r.Gw)
				if !ok {
					continue
				}
				dst = netip.PrefixFrom(gw.Unmap(), 0).Masked()
			} else {
				a, ok := netip.AddrFromSlice(r.Dst.IP)
				if !ok {
					continue
				}
				bits, _ := r.Dst.Mask.Size()
				dst = netip.PrefixFrom(a.Unmap(), bits).Masked()
			}
			if dst.Addr().Is6() && dst.Addr().IsLinkLocalUnicast() {
				continue // fe80::/64 on every interface: not a forwarding route
			}
			rt := Route{Dst: dst, Port: port}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				rt.Via = gw.Unmap()
			}
			out = append(out, rt)
		}
	}
	return out, nil
}

// withKernelRoutes returns the static routes followed by the kernel's (so a
// static route wins over a kernel route for the same prefix: the table's
// sort is stable).
func withKernelRoutes(static []Route, ifindexes [2]int) ([]Route, error) {
	kr, err := kernelRoutes(ifindexes)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(static), kr...), nil
}
