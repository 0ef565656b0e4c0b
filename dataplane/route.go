package dataplane

import (
	"errors"
	"net/netip"
	"sort"
	"strconv"

	"github.com/edgegw/edge/header"
)

// Route sends packets for Dst out of port Port (an index into the data
// plane's ports: 0 inside, 1 outside) to next hop Via, or, when Via is the
// zero Addr, directly to the destination (a connected network).
type Route struct {
	Dst  netip.Prefix
	Via  netip.Addr
	Port int
}

// Routes is an immutable longest-prefix-match table. A gateway has a handful
// of routes (connected networks and a default), so lookup is a scan of a
// list sorted by prefix length, longest first: a few compares, no
// allocation. It is replaced whole when the configuration changes.
type Routes struct {
	v4 []route4
	v6 []route6
}

type route4 struct {
	net, mask uint32
	bcast     uint32 // on-link /30 or shorter: the subnet's broadcast address (never forwarded)
	via       [16]byte
	onLink    bool
	port      int
}

type route6 struct {
	pfx    netip.Prefix
	via    [16]byte
	onLink bool
	port   int
}

// NewRoutes validates and compiles rs. Errors name the route.
func NewRoutes(rs []Route, ports int) (*Routes, error) {
	t := &Routes{}
	sorted := append([]Route(nil), rs...)
	sort.SliceStable(sorted, func(i, j int) bool { return sorted[i].Dst.Bits() > sorted[j].Dst.Bits() })
	for i, r := range rs {
		name := "routes[" + strconv.Itoa(i) + "]"
		switch {
		case !r.Dst.IsValid():
			return nil, errors.New(name + ".dst: not a valid prefix")
		case r.Port < 0 || r.Port >= ports:
			return nil, errors.New(name + ".interface: no such interface")
		case r.Via.IsValid() && r.Via.Is4() != r.Dst.Addr().Is4():
			return nil, errors.New(name + ".via: address family differs from dst")
		}
	}
	for _, r := range sorted {
		p := r.Dst.Masked()
		var via [16]byte
		if r.Via.IsValid() {
			via = r.Via.As16()
		}
		if p.Addr().Is4() {
			a := p.Addr().As4()
			mask := uint32(0)
			if p.Bits() > 0 {
				mask = ^uint32(0) << (32 - p.Bits())
			}
			r4 := route4{net: be32(a[:]), mask: mask, via: via, onLink: !r.Via.IsValid(), port: r.Port}
			if r4.onLink && p.Bits() <= 30 && p.Bits() > 0 {
				r4.bcast = r4.net | ^mask
			}
			t.v4 = append(t.v4, r4)
		} else {
			t.v6 = append(t.v6, route6{pfx: p, via: via, onLink: !r.Via.IsValid(), port: r.Port})
		}
	}
	return t, nil
}

// Lookup returns the egress port and next-hop address (16-byte form) for
// destination dst (16-byte form, IPv4-mapped for IPv4). The broadcast
// address of a connected IPv4 subnet has no route.
func (t *Routes) Lookup(dst *[16]byte) (port int, nextHop [16]byte, ok bool) {
	if header.IsV4Mapped(dst) {
		d := be32(dst[12:])
		for i := range t.v4 {
			r := &t.v4[i]
			if d&r.mask == r.net {
				if r.onLink {
					if r.bcast != 0 && d == r.bcast {
						// A directed broadcast (RFC 2644): not forwarded.
						return 0, nextHop, false
					}
					return r.port, *dst, true
				}
				return r.port, r.via, true
			}
		}
		return 0, nextHop, false
	}
	a := netip.AddrFrom16(*dst)
	for i := range t.v6 {
		r := &t.v6[i]
		if r.pfx.Contains(a) {
			if r.onLink {
				return r.port, *dst, true
			}
			return r.port, r.via, true
		}
	}
	return 0, nextHop, false
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
