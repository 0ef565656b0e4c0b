package dataplane

import (
	"errors"
	"fmt"
	"net/netip"
	"slices"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// DefaultMaxKernelRoutes is how many kernel routes edge imports when the
// configuration sets no limit (Config.MaxKernelRoutes).
const DefaultMaxKernelRoutes = 65536

// kernelRoutes reads the main routing table's routes through edge's two
// interfaces (ifindexes[0] inside, [1] outside) as Routes: connected
// networks, gateways and the default route. Multipath routes are skipped.
// More than max routes are refused whole (a table missing some of the
// kernel's prefixes would send their packets by shorter ones). It runs on a
// thread in the interfaces' network namespace.
func kernelRoutes(ifindexes [2]int, max int) ([]Route, error) {
	var out []Route
	total := 0
	for port, ifindex := range ifindexes {
		link, err := netlink.LinkByIndex(ifindex)
		if err != nil {
			return nil, err
		}
		list, err := redumpInterrupted(func() ([]netlink.Route, error) {
			return netlink.RouteList(link, unix.AF_UNSPEC)
		})
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
			total++
			if total > max {
				continue // counted, not kept
			}
			rt := Route{Dst: dst, Port: port}
			if gw, ok := netip.AddrFromSlice(r.Gw); ok {
				rt.Via = gw.Unmap()
			}
			out = append(out, rt)
		}
	}
	if total > max {
		return nil, &tooManyRoutesError{total: total, max: max}
	}
	return out, nil
}

// dumpAttempts bounds how often a netlink dump is read again when the
// kernel marks it interrupted (the table changed while it was read).
const dumpAttempts = 5

// redumpInterrupted runs dump again while it fails with
// netlink.ErrDumpInterrupted (its results may then be inconsistent or
// incomplete), at most dumpAttempts times; after the last it returns that
// error.
func redumpInterrupted[T any](dump func() ([]T, error)) ([]T, error) {
	for attempt := 1; ; attempt++ {
		list, err := dump()
		if err == nil || !errors.Is(err, netlink.ErrDumpInterrupted) || attempt == dumpAttempts {
			return list, err
		}
	}
}

// tooManyRoutesError refuses a kernel table larger than the limit.
type tooManyRoutesError struct{ total, max int }

func (e *tooManyRoutesError) Error() string {
	return fmt.Sprintf("the kernel has %d routes through edge's interfaces, more than routes_from_kernel_max (%d): none imported", e.total, e.max)
}

// withKernelRoutes returns the static routes followed by the kernel's (so a
// static route wins over a kernel route for the same prefix: the table's
// sort is stable).
func withKernelRoutes(static []Route, ifindexes [2]int, max int) ([]Route, error) {
	kr, err := kernelRoutes(ifindexes, max)
	if err != nil {
		return nil, err
	}
	return append(slices.Clone(static), kr...), nil
}
