package snat

import (
	"errors"
	"net/netip"
	"strconv"
	"time"

	"github.com/edgegw/edge/conntrack"
)

// Mode says where translated source addresses come from.
type Mode uint8

const (
	// Automap translates to one address, the outside interface's, which the
	// caller passes in Config.Automap (NSX-T "automap", iptables MASQUERADE).
	Automap Mode = iota
	// Pools translates to addresses from Config.Pools.
	Pools
)

// String returns "automap" or "pools".
func (m Mode) String() string {
	switch m {
	case Automap:
		return "automap"
	case Pools:
		return "pools"
	}
	return "mode" + strconv.Itoa(int(m))
}

// NoAddress says what becomes of a new flow whose family has no translated
// address (an IPv6 flow through an IPv4-only pool, or automap on an outside
// interface without a global IPv6 address).
type NoAddress uint8

const (
	// NoAddressDrop refuses the flow (drop.SNATNoAddress; the data plane
	// answers it with ICMP administratively prohibited, rate limited).
	NoAddressDrop NoAddress = iota
	// NoAddressForward lets the flow through untranslated (its source
	// address and port kept), statefully tracked like any other flow, and
	// counts it (CtrUntranslated): for a site whose inside IPv6 addresses
	// are routed from the outside, where translating IPv6 is not wanted.
	NoAddressForward
)

var noAddressNames = [...]string{"drop", "forward"}

// String returns the configuration name, "drop" or "forward".
func (a NoAddress) String() string {
	if int(a) < len(noAddressNames) {
		return noAddressNames[a]
	}
	return "no_address" + strconv.Itoa(int(a))
}

// ParseNoAddress returns the choice named s ("" is NoAddressDrop).
func ParseNoAddress(s string) (NoAddress, bool) {
	if s == "" {
		return NoAddressDrop, true
	}
	for i, n := range noAddressNames {
		if n == s {
			return NoAddress(i), true
		}
	}
	return 0, false
}

// Mapping is a NAT's mapping behaviour (RFC 4787 section 4.1): how the
// external address and port of a new flow depend on its destination.
type Mapping uint8

const (
	// MappingDefault is endpoint-independent for a Config and the
	// Config's behaviour for a Pool.
	MappingDefault Mapping = iota
	// EndpointIndependent: one external address and port per inside
	// endpoint (address, port, protocol) while any of its flows lives,
	// whatever the destination (RFC 4787 REQ-1, RFC 5382 REQ-1).
	EndpointIndependent
	// EndpointDependent: each flow gets a port of its own, unique per
	// destination (address-and-port-dependent mapping): a port serves
	// every destination, so many flows of one host toward one backend
	// never run out of ports while others use them.
	EndpointDependent
)

var mappingNames = [...]string{"", "endpoint-independent", "endpoint-dependent"}

// String returns the configuration name ("" for MappingDefault).
func (m Mapping) String() string {
	if int(m) < len(mappingNames) {
		return mappingNames[m]
	}
	return "mapping" + strconv.Itoa(int(m))
}

// ParseMapping returns the behaviour named s ("" is MappingDefault).
func ParseMapping(s string) (Mapping, bool) {
	for i, n := range mappingNames {
		if n == s {
			return Mapping(i), true
		}
	}
	return 0, false
}

// Filtering is a NAT's filtering behaviour (RFC 4787 section 5): which
// unsolicited datagrams from the outside toward an endpoint-independent
// mapping pass. It applies to UDP: an unsolicited TCP SYN or ICMP message
// toward a mapping meets the firewall as any other new inbound flow.
type Filtering uint8

const (
	// FilteringDefault is address-and-port-dependent for a Config and
	// the Config's behaviour for a Pool.
	FilteringDefault Filtering = iota
	// AddressPortDependent: only from an endpoint (address and port) the
	// inside endpoint has a flow with: no flow, no entry.
	AddressPortDependent
	// AddressDependent: from any port of an address the inside endpoint
	// has a flow with (RFC 4787 REQ-8 recommends this or EndpointIndependent
	// where application transparency matters).
	AddressDependent
	// EndpointIndependent: from anywhere, while the mapping lives.
	EndpointIndependentFiltering
)

var filteringNames = [...]string{"", "address-and-port-dependent", "address-dependent", "endpoint-independent"}

// String returns the configuration name ("" for FilteringDefault).
func (f Filtering) String() string {
	if int(f) < len(filteringNames) {
		return filteringNames[f]
	}
	return "filtering" + strconv.Itoa(int(f))
}

// ParseFiltering returns the behaviour named s ("" is FilteringDefault).
func ParseFiltering(s string) (Filtering, bool) {
	for i, n := range filteringNames {
		if n == s {
			return Filtering(i), true
		}
	}
	return 0, false
}

// Defaults and limits of Config.
const (
	DefaultPortStart       = 1024
	DefaultPortEnd         = 65535
	DefaultQuarantine      = 120 * time.Second // RFC 6888 REQ-8
	DefaultQuarantinePorts = 1 << 16           // per worker
	DefaultDestinations    = 1 << 14           // per worker
	DefaultEventRingSize   = 1 << 10           // per worker
	DefaultMappings        = 1 << 16           // per worker
	DefaultMappingTimeout  = 120 * time.Second // RFC 4787 REQ-5

	// MaxAddrs is the most translated addresses a Config may hold, over all
	// pools (conntrack interns at most 65,535 in all).
	MaxAddrs = 4096
	// MaxQuarantinePorts bounds Config.QuarantinePorts.
	MaxQuarantinePorts = 1 << 24
	// MaxDestinations bounds Config.Destinations.
	MaxDestinations = 1 << 22
	// MaxMappings bounds Config.Mappings.
	MaxMappings = 1 << 22
)

// Config describes source NAT. It is validated whole (Validate, New): an
// invalid Config changes nothing, and the error names the offending field,
// e.g. "snat: pools[1].ranges[0]: start after end".
//
// Zero fields take their defaults, except the addresses: the zero Config is
// automap without an address, which Validate rejects.
type Config struct {
	// Mode selects Automap (the default) or Pools.
	Mode Mode
	// Automap is the outside interface's address (Automap mode only).
	Automap netip.Addr
	// Automap6 is the outside interface's IPv6 address when Automap is its
	// IPv4 one (a dual-stack interface: each flow takes the address of its
	// own family). Automap mode only; optional.
	Automap6 netip.Addr
	// Pools are the address pools (Pools mode only). A flow is translated
	// with one pool, chosen by the caller (Allocator.AllocateFrom); pool 0
	// is the default (Allocator.Allocate).
	Pools []Pool
	// Ports is the range of translated ports and ICMP echo identifiers.
	// Default 1024-65535.
	Ports PortRange
	// Quarantine is how long a released port is held back from new flows
	// toward the same destination unless nothing else is free. Default 120 s
	// (RFC 6888 REQ-8); at most conntrack.MaxTimeout.
	Quarantine time.Duration
	// QuarantinePorts is how many released ports each worker remembers
	// (RFC 6888 REQ-8: the number held must be configurable); when full,
	// the oldest is forgotten. Default 65,536 (about 3.5 MiB per worker).
	QuarantinePorts int
	// Destinations is how many (pool address, destination, protocol)
	// entries each worker counts ports for. Default 16,384 (about 3.25 MiB
	// per worker).
	Destinations int
	// EventRingSize is the capacity of each worker's event ring. Default 1,024.
	EventRingSize int
	// Mapping is the mapping behaviour of every pool that does not set
	// its own. Default EndpointIndependent (RFC 4787 REQ-1).
	Mapping Mapping
	// Filtering is the filtering behaviour of the endpoint-independent
	// mappings of every pool that does not set its own. Default
	// AddressPortDependent.
	Filtering Filtering
	// MappingTimeout is how long a UDP mapping outlives its last flow, so
	// that it lives at least 2 minutes after the last outbound datagram
	// (RFC 4787 REQ-5; flows themselves expire by their profile's
	// timers). Default 120 s; at most conntrack.MaxTimeout. TCP and ICMP
	// mappings end with their last flow.
	MappingTimeout time.Duration
	// Mappings is how many endpoint-independent mappings each worker
	// holds (a mapping is about 40 bytes with its indexes); a new flow
	// that needs one more is refused (drop.SNATMappingsFull). Default
	// 65,536.
	Mappings int
	// NoAddress is what a new flow gets when no translated address of its
	// family exists (in its pool, or automap without one). Default
	// NoAddressDrop.
	NoAddress NoAddress
	// KeepEchoID turns ICMP echo identifier translation off: the
	// identifier is kept and only the address is translated. Translation
	// is on by default: the identifier plays the part of the source port
	// (RFC 5508 section 3.1).
	KeepEchoID bool
}

// Pool is a named set of addresses, given as single addresses and inclusive
// ranges; IPv4 and IPv6 may be mixed (a flow takes an address of its own
// family). An address may not appear twice in one pool.
type Pool struct {
	Name   string
	Addrs  []netip.Addr
	Ranges []AddrRange
	// Mapping and Filtering override the Config's for this pool (zero:
	// the Config's).
	Mapping   Mapping
	Filtering Filtering
}

// AddrRange is an inclusive range of addresses of one family.
type AddrRange struct {
	Start, End netip.Addr
}

// PortRange is an inclusive range of ports. The zero PortRange means the
// default, 1024-65535.
type PortRange struct {
	Start, End uint16
}

// Validate checks c whole and returns the first problem, naming its field.
func (c *Config) Validate() error {
	_, err := c.resolve()
	return err
}

// resolved is a validated Config with defaults applied and pools expanded.
type resolved struct {
	cfg        Config
	pools      [][]netip.Addr // per pool, in configuration order
	behaviour  []behaviour    // per pool
	quarantine conntrack.Time
	mapTimeout conntrack.Time
}

// behaviour is one pool's mapping and filtering, defaults applied.
type behaviour struct {
	mapping Mapping
	filter  Filtering
}

func cfgErr(field, msg string) error { return errors.New("snat: " + field + ": " + msg) }

func (c *Config) resolve() (*resolved, error) {
	r := &resolved{cfg: *c}
	rc := &r.cfg
	switch {
	case rc.Ports == PortRange{}:
		rc.Ports = PortRange{DefaultPortStart, DefaultPortEnd}
	case rc.Ports.Start == 0:
		return nil, cfgErr("ports", "start must be at least 1")
	case rc.Ports.Start > rc.Ports.End:
		return nil, cfgErr("ports", "start after end")
	}
	switch {
	case rc.Quarantine == 0:
		rc.Quarantine = DefaultQuarantine
	case rc.Quarantine < 0:
		return nil, cfgErr("quarantine", "negative")
	case rc.Quarantine > time.Duration(conntrack.MaxTimeout):
		return nil, cfgErr("quarantine", "longer than "+time.Duration(conntrack.MaxTimeout).String())
	}
	r.quarantine = conntrack.Time(rc.Quarantine)
	if err := size(&rc.QuarantinePorts, DefaultQuarantinePorts, MaxQuarantinePorts, "quarantine_ports"); err != nil {
		return nil, err
	}
	if err := size(&rc.Destinations, DefaultDestinations, MaxDestinations, "destinations"); err != nil {
		return nil, err
	}
	if err := size(&rc.EventRingSize, DefaultEventRingSize, 1<<20, "event_ring_size"); err != nil {
		return nil, err
	}
	if err := size(&rc.Mappings, DefaultMappings, MaxMappings, "mappings"); err != nil {
		return nil, err
	}
	switch {
	case rc.MappingTimeout == 0:
		rc.MappingTimeout = DefaultMappingTimeout
	case rc.MappingTimeout < 0:
		return nil, cfgErr("mapping_timeout", "negative")
	case rc.MappingTimeout > time.Duration(conntrack.MaxTimeout):
		return nil, cfgErr("mapping_timeout", "longer than "+time.Duration(conntrack.MaxTimeout).String())
	}
	r.mapTimeout = conntrack.Time(rc.MappingTimeout)
	def := behaviour{rc.Mapping, rc.Filtering}
	if int(def.mapping) >= len(mappingNames) {
		return nil, cfgErr("mapping", "unknown behaviour "+strconv.Itoa(int(def.mapping)))
	}
	if int(def.filter) >= len(filteringNames) {
		return nil, cfgErr("filtering", "unknown behaviour "+strconv.Itoa(int(def.filter)))
	}
	if def.mapping == MappingDefault {
		def.mapping = EndpointIndependent
	}
	if def.filter == FilteringDefault {
		def.filter = AddressPortDependent
	}
	rc.Mapping, rc.Filtering = def.mapping, def.filter
	if int(rc.NoAddress) >= len(noAddressNames) {
		return nil, cfgErr("no_address", "unknown choice "+strconv.Itoa(int(rc.NoAddress)))
	}
	switch rc.Mode {
	case Automap:
		if len(rc.Pools) != 0 {
			return nil, cfgErr("pools", "set in automap mode")
		}
		if msg := checkAddr(rc.Automap); msg != "" {
			return nil, cfgErr("automap", msg)
		}
		r.pools = [][]netip.Addr{{rc.Automap}}
		if rc.Automap6.IsValid() {
			if msg := checkAddr(rc.Automap6); msg != "" {
				return nil, cfgErr("automap6", msg)
			}
			if !rc.Automap6.Is6() || !rc.Automap.Is4() {
				return nil, cfgErr("automap6", "must be IPv6, beside an IPv4 automap address")
			}
			r.pools[0] = append(r.pools[0], rc.Automap6)
		}
		r.behaviour = []behaviour{def}
	case Pools:
		if rc.Automap.IsValid() || rc.Automap6.IsValid() {
			return nil, cfgErr("automap", "set in pools mode")
		}
		if len(rc.Pools) == 0 {
			return nil, cfgErr("pools", "no pool")
		}
		total := 0
		names := make(map[string]bool, len(rc.Pools))
		for i := range rc.Pools {
			p := &rc.Pools[i]
			field := "pools[" + strconv.Itoa(i) + "]"
			if names[p.Name] {
				return nil, cfgErr(field+".name", "duplicate name "+strconv.Quote(p.Name))
			}
			names[p.Name] = true
			addrs, err := expand(p, field, MaxAddrs-total)
			if err != nil {
				return nil, err
			}
			total += len(addrs)
			r.pools = append(r.pools, addrs)
			b := def
			if p.Mapping != MappingDefault {
				if int(p.Mapping) >= len(mappingNames) {
					return nil, cfgErr(field+".mapping", "unknown behaviour "+strconv.Itoa(int(p.Mapping)))
				}
				b.mapping = p.Mapping
			}
			if p.Filtering != FilteringDefault {
				if int(p.Filtering) >= len(filteringNames) {
					return nil, cfgErr(field+".filtering", "unknown behaviour "+strconv.Itoa(int(p.Filtering)))
				}
				b.filter = p.Filtering
			}
			r.behaviour = append(r.behaviour, b)
		}
	default:
		return nil, cfgErr("mode", "unknown mode "+strconv.Itoa(int(rc.Mode)))
	}
	return r, nil
}

func size(v *int, def, max int, field string) error {
	switch {
	case *v == 0:
		*v = def
	case *v < 0:
		return cfgErr(field, "negative")
	case *v > max:
		return cfgErr(field, "more than "+strconv.Itoa(max))
	}
	return nil
}

// checkAddr returns why a cannot be a translated address, or "".
func checkAddr(a netip.Addr) string {
	switch {
	case !a.IsValid():
		return "no address"
	case a.Is4In6():
		return a.String() + " is IPv4-mapped: write it as IPv4"
	case a.Zone() != "":
		return a.String() + " has a zone"
	case a.IsUnspecified(), a.IsMulticast(), a.IsLoopback():
		return a.String() + " is not a unicast address"
	case a.Is4() && a.As4() == [4]byte{255, 255, 255, 255}:
		return a.String() + " is not a unicast address"
	}
	return ""
}

// expand lists the addresses of pool p, at most limit of them.
func expand(p *Pool, field string, limit int) ([]netip.Addr, error) {
	var out []netip.Addr
	seen := make(map[netip.Addr]bool)
	add := func(a netip.Addr, f string) error {
		if seen[a] {
			return cfgErr(f, "address "+a.String()+" appears twice")
		}
		if len(out) == limit {
			return cfgErr(f, "more than "+strconv.Itoa(MaxAddrs)+" addresses in all pools")
		}
		seen[a] = true
		out = append(out, a)
		return nil
	}
	for j, a := range p.Addrs {
		f := field + ".addrs[" + strconv.Itoa(j) + "]"
		if msg := checkAddr(a); msg != "" {
			return nil, cfgErr(f, msg)
		}
		if err := add(a, f); err != nil {
			return nil, err
		}
	}
	for j, rg := range p.Ranges {
		f := field + ".ranges[" + strconv.Itoa(j) + "]"
		if msg := checkAddr(rg.Start); msg != "" {
			return nil, cfgErr(f+".start", msg)
		}
		if msg := checkAddr(rg.End); msg != "" {
			return nil, cfgErr(f+".end", msg)
		}
		if rg.Start.Is4() != rg.End.Is4() {
			return nil, cfgErr(f, "start and end of different families")
		}
		if rg.End.Less(rg.Start) {
			return nil, cfgErr(f, "start after end")
		}
		for a := rg.Start; ; a = a.Next() {
			if msg := checkAddr(a); msg != "" {
				return nil, cfgErr(f, msg)
			}
			if err := add(a, f); err != nil {
				return nil, err
			}
			if a == rg.End {
				break
			}
		}
	}
	if len(out) == 0 {
		return nil, cfgErr(field, "no address")
	}
	return out, nil
}
