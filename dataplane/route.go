package dataplane

import (
	"errors"
	"math/bits"
	"net/netip"
	"slices"
	"strconv"

	"github.com/gaissmai/bart"

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

// scanMax is the most routes of one address family looked up by scanning
// a list sorted by prefix length: a gateway's handful of connected networks
// and a default route cost a few compares (about 15 ns for 10 routes here,
// where the trie takes about 60 ns). Above it the family's routes go into a
// multibit trie, whose lookup cost does not grow with the table (about
// 400 ns with a million routes, where a scan would take 0.5 ms).
const scanMax = 64

// Routes is an immutable longest-prefix-match table. Each address family is
// a list scanned longest prefix first when it has at most scanMax routes,
// else a multibit trie (github.com/gaissmai/bart). A lookup allocates
// nothing. It is built off the packet path (New, Apply, the kernel-route
// refresh) and replaced whole behind the engine's atomic pointer; workers
// only read it.
type Routes struct {
	v4         []route4 // the IPv4 routes, longest prefix first, unless big4
	v6         []route6 // the IPv6 routes, longest prefix first, unless big6
	trie       bart.Table[routeEntry]
	big4, big6 bool // that family's routes are in trie
	n          int  // distinct prefixes
}

// routeEntry is what a prefix resolves to.
type routeEntry struct {
	via    [16]byte // next hop (16-byte form); unused when onLink
	bcast  uint32   // on-link IPv4 /30 or shorter: the subnet's broadcast address (never forwarded)
	port   uint8
	onLink bool
}

type route4 struct {
	net, mask uint32
	routeEntry
}

type route6 struct {
	pfx netip.Prefix
	routeEntry
}

// NewRoutes validates and compiles rs. Errors name the route. When several
// routes have the same prefix, the first one wins (static routes come before
// the kernel's).
func NewRoutes(rs []Route, ports int) (*Routes, error) {
	n4 := 0
	for i, r := range rs {
		name := "routes[" + strconv.Itoa(i) + "]"
		switch {
		case !r.Dst.IsValid():
			return nil, errors.New(name + ".dst: not a valid prefix")
		case r.Port < 0 || r.Port >= ports || r.Port > 255:
			return nil, errors.New(name + ".interface: no such interface")
		case r.Via.IsValid() && r.Via.Is4() != r.Dst.Addr().Is4():
			return nil, errors.New(name + ".via: address family differs from dst")
		}
		if r.Dst.Addr().Is4() {
			n4++
		}
	}
	t := &Routes{big4: n4 > scanMax, big6: len(rs)-n4 > scanMax}
	for _, r := range rs {
		p := r.Dst.Masked()
		e := routeEntry{onLink: !r.Via.IsValid(), port: uint8(r.Port)}
		if r.Via.IsValid() {
			e.via = r.Via.As16()
		}
		is4 := p.Addr().Is4()
		var mask uint32
		if is4 && p.Bits() > 0 {
			mask = ^uint32(0) << (32 - p.Bits())
		}
		if is4 && e.onLink && p.Bits() <= 30 && p.Bits() > 0 {
			a := p.Addr().As4()
			e.bcast = be32(a[:]) | ^mask
		}
		switch {
		case is4 && t.big4, !is4 && t.big6:
			if _, dup := t.trie.Get(p); !dup {
				t.trie.Insert(p, e)
				t.n++
			}
		case is4:
			a := p.Addr().As4()
			t.v4 = append(t.v4, route4{net: be32(a[:]), mask: mask, routeEntry: e})
		default:
			t.v6 = append(t.v6, route6{pfx: p, routeEntry: e})
		}
	}
	// Longest first; among equal prefixes the first given stays first (and
	// so wins).
	slices.SortStableFunc(t.v4, func(a, b route4) int { return int(b.mask>>1) - int(a.mask>>1) })
	slices.SortStableFunc(t.v6, func(a, b route6) int { return b.pfx.Bits() - a.pfx.Bits() })
	seen := make(map[netip.Prefix]bool, len(t.v4)+len(t.v6))
	for _, r := range t.v4 {
		var a [4]byte
		a[0], a[1], a[2], a[3] = byte(r.net>>24), byte(r.net>>16), byte(r.net>>8), byte(r.net)
		seen[netip.PrefixFrom(netip.AddrFrom4(a), 32-bits.TrailingZeros32(r.mask))] = true
	}
	for _, r := range t.v6 {
		seen[r.pfx] = true
	}
	t.n += len(seen)
	return t, nil
}

// Len returns the number of distinct prefixes in the table.
func (t *Routes) Len() int { return t.n }

// Lookup returns the egress port and next-hop address (16-byte form) for
// destination dst (16-byte form, IPv4-mapped for IPv4). The broadcast
// address of a connected IPv4 subnet has no route.
func (t *Routes) Lookup(dst *[16]byte) (port int, nextHop [16]byte, ok bool) {
	var e *routeEntry
	v4 := header.IsV4Mapped(dst)
	switch {
	case v4 && !t.big4:
		d := be32(dst[12:])
		for i := range t.v4 {
			if r := &t.v4[i]; d&r.mask == r.net {
				e = &r.routeEntry
				break
			}
		}
	case !v4 && !t.big6:
		a := netip.AddrFrom16(*dst)
		for i := range t.v6 {
			if r := &t.v6[i]; r.pfx.Contains(a) {
				e = &r.routeEntry
				break
			}
		}
	default:
		a := netip.AddrFrom16(*dst)
		if v4 {
			a = netip.AddrFrom4([4]byte(dst[12:]))
		}
		found, hit := t.trie.Lookup(a)
		if hit {
			e = &found
		}
	}
	switch {
	case e == nil:
		return 0, nextHop, false
	case !e.onLink:
		return int(e.port), e.via, true
	case v4 && e.bcast != 0 && be32(dst[12:]) == e.bcast:
		// A directed broadcast (RFC 2644): not forwarded.
		return 0, nextHop, false
	}
	return int(e.port), *dst, true
}

func be32(b []byte) uint32 {
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}
