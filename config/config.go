// Package config reads edge's declarative configuration file (YAML) and
// turns it into the plain Go values the data plane takes. The same schema
// will be the control plane's "apply config" message.
//
// Validation is whole and strict: unknown fields are refused, and every
// error names the field it is about (e.g. `rules[2].dst[0]: "10.0.0.0/33"
// is not a valid prefix`). Nothing here runs per packet.
package config

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"os"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"

	"github.com/edgegw/edge/conntrack"
	"github.com/edgegw/edge/dataplane"
	"github.com/edgegw/edge/firewall"
	"github.com/edgegw/edge/snat"
)

// File is the configuration file's schema.
type File struct {
	Interfaces struct {
		Inside  Interface `yaml:"inside"`
		Outside Interface `yaml:"outside"`
	} `yaml:"interfaces"`
	Queues     int      `yaml:"queues"`
	CPUs       []int    `yaml:"cpus"` // CPU to pin each worker to, by queue
	Management []string `yaml:"management"`
	Routes     []Route  `yaml:"routes"`
	// RoutesFromKernel adds the kernel's main-table routes through the two
	// interfaces (re-read every second) to the static routes.
	RoutesFromKernel bool `yaml:"routes_from_kernel"`
	// RoutesFromKernelMax refuses a kernel table with more routes than this
	// (default 65536); refused whole, the previous routes stay.
	RoutesFromKernelMax int       `yaml:"routes_from_kernel_max"`
	Conntrack           Conntrack `yaml:"conntrack"`
	Profiles            []Profile `yaml:"profiles"`
	SNAT                *SNAT     `yaml:"snat"`
	Rules               []Rule    `yaml:"rules"`
	Default             string    `yaml:"default_action"`
	// NSXCompat emulates the NSX-T gateway firewall (stray FIN creates a
	// CLOSING entry; a SYN-ACK on it is dropped with ICMP 3/3). A/B labs
	// only; off by default.
	NSXCompat bool `yaml:"nsx_compat"`
	// NSXShadow keeps edge's own behaviour and counts, on the same
	// packets, the connections NSX compatibility mode would have failed
	// (conntrack counters nsx_would_drop/nsx_would_fail, nsx_would_drop
	// events, edge destinations, edge doctor). Any deployment; off by
	// default; ignored while nsx_compat is on.
	NSXShadow bool `yaml:"nsx_shadow"`
	Hugepages bool `yaml:"hugepages"`
	XDP       struct {
		Frames     int   `yaml:"frames"`      // UMEM frames per queue, shared by both interfaces (default 4 x ring)
		Ring       int   `yaml:"ring"`        // descriptors per ring: fill, completion, RX, TX (default 2048)
		NeedWakeup *bool `yaml:"need_wakeup"` // default true
		// BusyPoll: busy-poll the sockets (SO_PREFER_BUSY_POLL): for workers on
		// dedicated cores; default off (adaptive yield-then-sleep).
		BusyPoll bool `yaml:"busy_poll"`
		// BusyPollUsec: SO_BUSY_POLL, and how long an idle worker keeps polling
		// after the last packet before it sleeps (default 1000).
		BusyPollUsec int `yaml:"busy_poll_usec"`
		// BusyPollBudget: SO_BUSY_POLL_BUDGET, packets per busy poll (default 64).
		BusyPollBudget int `yaml:"busy_poll_budget"`
	} `yaml:"xdp"`

	// SourceRoute is what becomes of IPv4 packets with a loose or strict
	// source route option: drop (the default) or forward.
	SourceRoute string `yaml:"source_route"`
}

type Interface struct {
	Name string `yaml:"name"`
	MTU  int    `yaml:"mtu"`
	// URPF is the reverse-path check of sources arriving here (RFC 3704):
	// strict, loose or off; unset: strict inside, loose outside.
	URPF string `yaml:"urpf"`
}

type Route struct {
	Dst       string `yaml:"dst"`
	Via       string `yaml:"via"`
	Interface string `yaml:"interface"`
}

type Conntrack struct {
	MaxFlows int  `yaml:"max_flows"`
	History  int  `yaml:"history"`
	Liberal  bool `yaml:"liberal"`
	PickUp   bool `yaml:"pickup"`
}

// Profile overrides timers of a named profile; unset timers take the
// default profile's values.
type Profile struct {
	Name        string `yaml:"name"`
	SynSent     string `yaml:"syn_sent"`
	SynRecv     string `yaml:"syn_recv"`
	Established string `yaml:"established"`
	FinWait     string `yaml:"fin_wait"`
	LastAck     string `yaml:"last_ack"`
	TimeWait    string `yaml:"time_wait"`
	Close       string `yaml:"close"`
	UDPFirst    string `yaml:"udp_first"`
	UDPSingle   string `yaml:"udp_single"`
	UDPMultiple string `yaml:"udp_multiple"`
	ICMPFirst   string `yaml:"icmp_first"`
	ICMPReplied string `yaml:"icmp_replied"`
	// IdleExpiry: what edge does when an established TCP flow of this
	// profile expires idle: silent (default: forget it) or reset (also
	// send each end a TCP RST it accepts, so neither keeps a dead
	// connection).
	IdleExpiry string `yaml:"idle_expiry"`
}

type SNAT struct {
	Mode       string   `yaml:"mode"`    // automap | pools
	Address    string   `yaml:"address"` // automap: the outside address
	Pool       []string `yaml:"pool"`    // pools: addresses and "a-b" ranges
	Ports      string   `yaml:"ports"`   // "1024-65535"
	Quarantine string   `yaml:"quarantine"`
	// Mapping: endpoint-independent (default) | endpoint-dependent.
	Mapping string `yaml:"mapping"`
	// Filtering: address-and-port-dependent (default) | address-dependent
	// | endpoint-independent (UDP toward endpoint-independent mappings).
	Filtering string `yaml:"filtering"`
	// MappingTimeout: how long a UDP mapping outlives its last flow
	// (default 2m, RFC 4787 REQ-5).
	MappingTimeout string `yaml:"mapping_timeout"`
	// NoAddress: what a flow gets when no translated address of its family
	// exists (an IPv6 flow, automap without a global IPv6 address or an
	// IPv4-only pool): drop (default; answered with ICMP administratively
	// prohibited) | forward (untranslated, counted: snat untranslated).
	NoAddress string `yaml:"no_address"`
}

type Rule struct {
	Name      string   `yaml:"name"`
	Zone      string   `yaml:"zone"`
	Src       []string `yaml:"src"`
	Dst       []string `yaml:"dst"`
	Proto     string   `yaml:"proto"`
	SrcPorts  []string `yaml:"src_ports"`
	DstPorts  []string `yaml:"dst_ports"`
	ICMPTypes []uint8  `yaml:"icmp_types"`
	Action    string   `yaml:"action"`
	Profile   string   `yaml:"profile"`
	Log       bool     `yaml:"log"`
}

// MaxDocument is the largest configuration document accepted, in bytes.
// A YAML parser holds some 30 times a document's size while it reads it;
// 4 MiB (tens of thousands of rules) keeps that near 150 MB, and is what the
// control plane's API takes in one message.
const MaxDocument = 4 << 20

// maxList is the most entries any list may have (firewall.MaxRules: the
// longest list there is reason to write).
const maxList = firewall.MaxRules

// Error is a configuration error: the file (or "config" for a document
// without one), the line (0: the whole document), the field path
// ("rules[2].dst[0]"; empty for a syntax error) and what is wrong.
type Error struct {
	File  string
	Line  int
	Field string
	Msg   string
}

func (e *Error) Error() string {
	s := e.File
	if e.Line > 0 {
		s += ":" + strconv.Itoa(e.Line)
	}
	if e.Field != "" {
		s += ": " + e.Field
	}
	return s + ": " + e.Msg
}

// Load reads and converts the file at path. Errors name it.
func Load(path string) (dataplane.Config, error) {
	b, err := ReadFile(path)
	if err != nil {
		return dataplane.Config{}, err
	}
	return ParseFile(path, b)
}

// ReadFile reads a configuration file, at most MaxDocument bytes and one
// more (so that ParseFile refuses a longer one without reading it whole).
func ReadFile(path string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return io.ReadAll(io.LimitReader(f, MaxDocument+1))
}

// Parse converts a configuration document that has no file name (errors
// say "config:LINE: ..."); see ParseFile.
func Parse(doc []byte) (dataplane.Config, error) { return ParseFile("config", doc) }

// ParseFile converts a configuration document read from the file name:
// exactly one YAML document (a stream with a second one, even an empty
// "---", is refused) of at most MaxDocument bytes. Every error is an *Error
// naming the file, the line and the field.
func ParseFile(name string, doc []byte) (dataplane.Config, error) {
	if len(doc) > MaxDocument {
		return dataplane.Config{}, &Error{File: name, Msg: "more than " + strconv.Itoa(MaxDocument>>20) + " MiB; a configuration may have no more"}
	}
	dec := yaml.NewDecoder(bytes.NewReader(doc))
	var root yaml.Node
	if err := dec.Decode(&root); err != nil {
		if errors.Is(err, io.EOF) {
			return dataplane.Config{}, &Error{File: name, Msg: "empty document (interfaces.inside and interfaces.outside are required)"}
		}
		return dataplane.Config{}, syntaxError(name, err)
	}
	// A second document would be ignored silently: refuse it.
	var more yaml.Node
	if err := dec.Decode(&more); !errors.Is(err, io.EOF) {
		return dataplane.Config{}, &Error{File: name, Line: more.Line, Msg: "only one YAML document is allowed"}
	}
	top := &root
	if top.Kind == yaml.DocumentNode && len(top.Content) == 1 {
		top = top.Content[0]
	}
	if top.Kind == yaml.ScalarNode && top.Tag == "!!null" {
		return dataplane.Config{}, &Error{File: name, Msg: "empty document (interfaces.inside and interfaces.outside are required)"}
	}
	var f File
	if err := checkNode(top, reflect.TypeOf(f), ""); err != nil {
		err.File = name
		return dataplane.Config{}, err
	}
	if err := top.Decode(&f); err != nil {
		// Not reached: checkNode accepts only what decodes.
		return dataplane.Config{}, syntaxError(name, err)
	}
	c, err := f.Convert()
	if err != nil {
		return dataplane.Config{}, locate(name, top, err)
	}
	return c, nil
}

var yamlLine = regexp.MustCompile(`^yaml: (?:unmarshal errors:\n\s*)?line (\d+): (.*)$`)

// yamlParserErrors are the messages of yaml.v3's parser (not its scanner).
// For them yaml.v3 reports the line where the enclosing block or flow
// collection starts, counted from 0 (and no line at all for line 0): one
// less than the line an editor shows.
var yamlParserErrors = []string{
	"did not find expected <document start>", "did not find expected node content",
	"did not find expected key", "did not find expected '-' indicator",
	"did not find expected ',' or ']'", "did not find expected ',' or '}'",
}

// syntaxError turns a YAML parser error into an *Error with the line an
// editor shows.
func syntaxError(name string, err error) *Error {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if m := yamlLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	for _, p := range yamlParserErrors {
		if msg == p {
			return &Error{File: name, Line: line + 1, Msg: msg + " (in the block or list that starts on this line)"}
		}
	}
	return &Error{File: name, Line: line, Msg: msg}
}

// checkNode checks n against the schema type t (field names, kinds of
// values, list lengths) and names the field and the line of the first
// mismatch, in the schema's words rather than Go's.
func checkNode(n *yaml.Node, t reflect.Type, path string) *Error {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
		return nil // the zero value
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	at := func(n *yaml.Node, field, msg string) *Error { return &Error{Line: n.Line, Field: field, Msg: msg} }
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return at(n, path, "want a mapping of fields (name: value)")
		}
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			field := k.Value
			if path != "" {
				field = path + "." + k.Value
			}
			sf, ok := fieldByTag(t, k.Value)
			if !ok || k.Kind != yaml.ScalarNode {
				return at(k, field, "unknown field")
			}
			if seen[k.Value] {
				return at(k, field, "given twice")
			}
			seen[k.Value] = true
			if err := checkNode(v, sf.Type, field); err != nil {
				return err
			}
		}
	case reflect.Slice:
		if n.Kind != yaml.SequenceNode {
			return at(n, path, "want a list")
		}
		if len(n.Content) > maxList {
			return at(n, path, strconv.Itoa(len(n.Content))+" entries, more than "+strconv.Itoa(maxList))
		}
		for i, e := range n.Content {
			if err := checkNode(e, t.Elem(), idx(path, i)); err != nil {
				return err
			}
		}
	case reflect.Bool:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!bool" {
			return at(n, path, "want true or false")
		}
	case reflect.Int, reflect.Int64, reflect.Int32, reflect.Uint8, reflect.Uint16, reflect.Uint32:
		if n.Kind != yaml.ScalarNode || n.Tag != "!!int" {
			return at(n, path, "want a whole number")
		}
		if err := n.Decode(reflect.New(t).Interface()); err != nil {
			return at(n, path, n.Value+" is out of range")
		}
	case reflect.String:
		if n.Kind != yaml.ScalarNode {
			return at(n, path, "want a string")
		}
	}
	return nil
}

// fieldByTag returns the field of struct t whose yaml tag is name.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if tag, _, _ := strings.Cut(f.Tag.Get("yaml"), ","); tag == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

var fieldPath = regexp.MustCompile(`^[a-z_]+(\[\d+\])*(\.[a-z_]+(\[\d+\])*)*$`)

// locate turns a conversion error ("rules[1].dst[0]: msg", or "snat:
// ports: msg" from package snat) into an *Error with the line of the
// field it names (of its closest enclosing field that is in the document).
func locate(name string, top *yaml.Node, err error) *Error {
	msg := err.Error()
	field, rest, ok := strings.Cut(msg, ": ")
	if !ok || !fieldPath.MatchString(field) {
		return &Error{File: name, Line: top.Line, Msg: msg}
	}
	// "snat: ports: ..." names snat.ports.
	if sub, rest2, ok := strings.Cut(rest, ": "); ok && fieldPath.MatchString(sub) && !strings.Contains(sub, ".") {
		if n := lookup(top, field+"."+sub); n != nil && n != top {
			if _, exact := exactLookup(top, field+"."+sub); exact {
				return &Error{File: name, Line: n.Line, Field: field + "." + sub, Msg: rest2}
			}
		}
	}
	return &Error{File: name, Line: lookup(top, field).Line, Field: field, Msg: rest}
}

// lookup returns the node of path in top, or of its closest ancestor that
// is present (top itself at worst).
func lookup(top *yaml.Node, path string) *yaml.Node {
	n, _ := exactLookup(top, path)
	return n
}

// exactLookup walks path ("a.b[2].c") down from top and returns the last
// node reached and whether it is path's own.
func exactLookup(top *yaml.Node, path string) (*yaml.Node, bool) {
	n := top
	for _, part := range strings.Split(path, ".") {
		key, indexes, _ := strings.Cut(part, "[")
		next := mapValue(n, key)
		if next == nil {
			return n, false
		}
		n = next
		for indexes != "" {
			num, after, _ := strings.Cut(indexes, "]")
			indexes = strings.TrimPrefix(after, "[")
			i, err := strconv.Atoi(num)
			for n.Kind == yaml.AliasNode && n.Alias != nil {
				n = n.Alias
			}
			if err != nil || n.Kind != yaml.SequenceNode || i >= len(n.Content) {
				return n, false
			}
			n = n.Content[i]
		}
	}
	return n, true
}

func mapValue(n *yaml.Node, key string) *yaml.Node {
	for n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	if n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

func ferr(field, msg string) error { return errors.New(field + ": " + msg) }

func idx(list string, i int) string { return list + "[" + strconv.Itoa(i) + "]" }

// Convert validates f whole and returns the data plane configuration; on
// error it returns the zero Config (nothing half-built to apply).
func (f *File) Convert() (dataplane.Config, error) {
	c, err := f.convert()
	if err != nil {
		return dataplane.Config{}, err
	}
	return c, nil
}

func (f *File) convert() (dataplane.Config, error) {
	var c dataplane.Config
	if f.Interfaces.Inside.Name == "" {
		return c, ferr("interfaces.inside.name", "required")
	}
	if f.Interfaces.Outside.Name == "" {
		return c, ferr("interfaces.outside.name", "required")
	}
	if f.Interfaces.Outside.Name == f.Interfaces.Inside.Name {
		return c, ferr("interfaces.outside.name", strconv.Quote(f.Interfaces.Outside.Name)+" is the inside interface too; edge forwards between two interfaces")
	}
	for _, x := range []struct {
		name string
		mtu  int
	}{{"inside", f.Interfaces.Inside.MTU}, {"outside", f.Interfaces.Outside.MTU}} {
		// A frame must fit one 2048-byte UMEM frame with its Ethernet header.
		if x.mtu != 0 && (x.mtu < 576 || x.mtu > dataplane.MaxMTU) {
			return c, ferr("interfaces."+x.name+".mtu", "must be between 576 and "+strconv.Itoa(dataplane.MaxMTU)+" (0: the link's)")
		}
	}
	c.Inside = dataplane.Interface{Name: f.Interfaces.Inside.Name, MTU: f.Interfaces.Inside.MTU}
	c.Outside = dataplane.Interface{Name: f.Interfaces.Outside.Name, MTU: f.Interfaces.Outside.MTU}
	for _, x := range []struct {
		name, mode string
		dst        *dataplane.URPFMode
	}{{"inside", f.Interfaces.Inside.URPF, &c.Inside.URPF}, {"outside", f.Interfaces.Outside.URPF, &c.Outside.URPF}} {
		m, ok := dataplane.ParseURPFMode(x.mode)
		if !ok {
			return c, ferr("interfaces."+x.name+".urpf", "must be strict, loose or off")
		}
		*x.dst = m
	}
	if f.Queues < 0 || f.Queues > 16 {
		return c, ferr("queues", "must be between 1 and 16")
	}
	c.Queues = f.Queues
	for i, cpu := range f.CPUs {
		if cpu < 0 || cpu >= 4096 {
			return c, ferr(idx("cpus", i), "not a CPU number")
		}
	}
	c.CPUs = f.CPUs
	c.Hugepages = f.Hugepages
	c.NeedWakeup = f.XDP.NeedWakeup == nil || *f.XDP.NeedWakeup
	pow2 := func(n int) bool { return n&(n-1) == 0 }
	if f.XDP.Ring != 0 && (f.XDP.Ring < 64 || f.XDP.Ring > 1<<15 || !pow2(f.XDP.Ring)) {
		return c, ferr("xdp.ring", "must be a power of two between 64 and 32768")
	}
	ring := f.XDP.Ring
	if ring == 0 {
		ring = 2048 // the data plane's default
	}
	if f.XDP.Frames != 0 && (f.XDP.Frames < 2*ring || f.XDP.Frames > 1<<20) {
		return c, ferr("xdp.frames", "must be at least twice xdp.ring (one UMEM per queue serves both interfaces' fill rings and their transmissions) and at most 1048576")
	}
	c.Frames, c.Ring = f.XDP.Frames, f.XDP.Ring
	if f.XDP.BusyPollUsec < 0 || f.XDP.BusyPollUsec > dataplane.MaxBusyPollUsec {
		return c, ferr("xdp.busy_poll_usec", "must be between 1 and "+strconv.Itoa(dataplane.MaxBusyPollUsec)+" (0: the default, "+strconv.Itoa(dataplane.DefaultBusyPollUsec)+")")
	}
	if f.XDP.BusyPollBudget < 0 || f.XDP.BusyPollBudget > dataplane.MaxBusyPollBudget {
		return c, ferr("xdp.busy_poll_budget", "must be between 1 and "+strconv.Itoa(dataplane.MaxBusyPollBudget)+" (0: the default, "+strconv.Itoa(dataplane.DefaultBusyPollBudget)+")")
	}
	if !f.XDP.BusyPoll && f.XDP.BusyPollUsec != 0 {
		return c, ferr("xdp.busy_poll_usec", "is set but busy_poll is not true")
	}
	if !f.XDP.BusyPoll && f.XDP.BusyPollBudget != 0 {
		return c, ferr("xdp.busy_poll_budget", "is set but busy_poll is not true")
	}
	c.BusyPoll = dataplane.BusyPoll{On: f.XDP.BusyPoll, Usec: f.XDP.BusyPollUsec, Budget: f.XDP.BusyPollBudget}
	for i, m := range f.Management {
		a, err := netip.ParseAddr(m)
		if err != nil {
			return c, ferr(idx("management", i), strconv.Quote(m)+" is not an address")
		}
		c.Management = append(c.Management, a)
	}
	for i, r := range f.Routes {
		name := idx("routes", i)
		p, err := netip.ParsePrefix(r.Dst)
		if err != nil {
			return c, ferr(name+".dst", strconv.Quote(r.Dst)+" is not a prefix")
		}
		rt := dataplane.Route{Dst: p}
		if r.Via != "" {
			if rt.Via, err = netip.ParseAddr(r.Via); err != nil {
				return c, ferr(name+".via", strconv.Quote(r.Via)+" is not an address")
			}
		}
		switch r.Interface {
		case "inside":
			rt.Port = 0
		case "outside":
			rt.Port = 1
		default:
			return c, ferr(name+".interface", "must be inside or outside")
		}
		c.Routes = append(c.Routes, rt)
	}
	c.KernelRoutes = f.RoutesFromKernel
	switch f.SourceRoute {
	case "", "drop":
	case "forward":
		c.ForwardSourceRouted = true
	default:
		return c, ferr("source_route", "must be drop or forward")
	}
	if f.RoutesFromKernelMax < 0 || f.RoutesFromKernelMax > 1<<24 {
		return c, ferr("routes_from_kernel_max", "must be between 1 and 16777216 (0: 65536)")
	}
	c.MaxKernelRoutes = f.RoutesFromKernelMax
	c.Conntrack = conntrack.Config{MaxFlows: f.Conntrack.MaxFlows, HistorySize: f.Conntrack.History}
	profiles := []conntrack.Profile{conntrack.DefaultProfile, conntrack.NSXGatewayProfile}
	for i, p := range f.Profiles {
		cp, err := p.convert(idx("profiles", i))
		if err != nil {
			return c, err
		}
		profiles = append(profiles, cp)
	}
	seen := map[string]bool{}
	for i, p := range profiles {
		if seen[p.Name] {
			return c, ferr(idx("profiles", i-2)+".name", "duplicate profile "+strconv.Quote(p.Name))
		}
		seen[p.Name] = true
	}
	c.Conntrack.Policy = conntrack.Policy{Profiles: profiles, Liberal: f.Conntrack.Liberal, PickUp: f.Conntrack.PickUp,
		NSXCompat: f.NSXCompat, NSXShadow: f.NSXShadow}
	if f.SNAT != nil {
		s, err := f.SNAT.convert()
		if err != nil {
			return c, err
		}
		c.SNAT = s
	}
	for i, r := range f.Rules {
		fr, err := r.convert(idx("rules", i))
		if err != nil {
			return c, err
		}
		c.Rules.Rules = append(c.Rules.Rules, fr)
	}
	switch f.Default {
	case "", "drop":
		c.Rules.Default = firewall.Drop
	case "allow":
		c.Rules.Default = firewall.Allow
	case "reject":
		c.Rules.Default = firewall.Reject
	default:
		return c, ferr("default_action", "must be allow, drop or reject")
	}
	names := map[string]uint8{}
	for i, p := range profiles {
		names[p.Name] = uint8(i)
	}
	if _, err := firewall.Compile(c.Rules, func(n string) (uint8, bool) { i, ok := names[n]; return i, ok }); err != nil {
		return c, err
	}
	return c, nil
}

func (p *Profile) convert(field string) (conntrack.Profile, error) {
	cp := conntrack.DefaultProfile
	if p.Name == "" || p.Name == "default" || p.Name == "nsx-gateway" {
		return cp, ferr(field+".name", "required, and not a built-in profile name")
	}
	cp.Name = p.Name
	for _, t := range []struct {
		name string
		v    string
		dst  *conntrack.Time
	}{
		{"syn_sent", p.SynSent, &cp.SynSent}, {"syn_recv", p.SynRecv, &cp.SynRecv},
		{"established", p.Established, &cp.Established}, {"fin_wait", p.FinWait, &cp.FinWait},
		{"last_ack", p.LastAck, &cp.LastAck}, {"time_wait", p.TimeWait, &cp.TimeWait},
		{"close", p.Close, &cp.Close}, {"udp_first", p.UDPFirst, &cp.UDPFirst},
		{"udp_single", p.UDPSingle, &cp.UDPSingle}, {"udp_multiple", p.UDPMultiple, &cp.UDPMultiple},
		{"icmp_first", p.ICMPFirst, &cp.ICMPFirst}, {"icmp_replied", p.ICMPReplied, &cp.ICMPReplied},
	} {
		if t.v == "" {
			continue
		}
		d, err := time.ParseDuration(t.v)
		if err != nil {
			return cp, ferr(field+"."+t.name, strconv.Quote(t.v)+" is not a duration")
		}
		*t.dst = conntrack.Time(d)
	}
	switch p.IdleExpiry {
	case "", "silent":
	case "reset":
		cp.IdleExpiry = conntrack.IdleReset
	default:
		return cp, ferr(field+".idle_expiry", "must be silent or reset")
	}
	if err := cp.Validate(); err != nil {
		return cp, ferr(field, err.Error())
	}
	return cp, nil
}

func (s *SNAT) convert() (*snat.Config, error) {
	c := &snat.Config{}
	switch s.Mode {
	case "", "automap":
		c.Mode = snat.Automap
		if s.Address != "" {
			a, err := netip.ParseAddr(s.Address)
			if err != nil {
				return nil, ferr("snat.address", strconv.Quote(s.Address)+" is not an address")
			}
			c.Automap = a
		}
	case "pools":
		c.Mode = snat.Pools
		pool := snat.Pool{Name: "default"}
		for i, e := range s.Pool {
			field := idx("snat.pool", i)
			if lo, hi, ok := strings.Cut(e, "-"); ok {
				a, err1 := netip.ParseAddr(strings.TrimSpace(lo))
				b, err2 := netip.ParseAddr(strings.TrimSpace(hi))
				if err1 != nil || err2 != nil {
					return nil, ferr(field, strconv.Quote(e)+" is not an address range")
				}
				pool.Ranges = append(pool.Ranges, snat.AddrRange{Start: a, End: b})
				continue
			}
			a, err := netip.ParseAddr(e)
			if err != nil {
				return nil, ferr(field, strconv.Quote(e)+" is not an address")
			}
			pool.Addrs = append(pool.Addrs, a)
		}
		c.Pools = []snat.Pool{pool}
	default:
		return nil, ferr("snat.mode", "must be automap or pools")
	}
	if s.Ports != "" {
		r, err := portRange(s.Ports)
		if err != nil {
			return nil, ferr("snat.ports", err.Error())
		}
		c.Ports = snat.PortRange{Start: r.Lo, End: r.Hi}
	}
	if s.Quarantine != "" {
		d, err := time.ParseDuration(s.Quarantine)
		if err != nil {
			return nil, ferr("snat.quarantine", strconv.Quote(s.Quarantine)+" is not a duration")
		}
		c.Quarantine = d
	}
	if s.Mapping != "" {
		m, ok := snat.ParseMapping(s.Mapping)
		if !ok {
			return nil, ferr("snat.mapping", strconv.Quote(s.Mapping)+": must be endpoint-independent or endpoint-dependent")
		}
		c.Mapping = m
	}
	if s.Filtering != "" {
		f, ok := snat.ParseFiltering(s.Filtering)
		if !ok {
			return nil, ferr("snat.filtering", strconv.Quote(s.Filtering)+": must be address-and-port-dependent, address-dependent or endpoint-independent")
		}
		c.Filtering = f
	}
	if s.MappingTimeout != "" {
		d, err := time.ParseDuration(s.MappingTimeout)
		if err != nil {
			return nil, ferr("snat.mapping_timeout", strconv.Quote(s.MappingTimeout)+" is not a duration")
		}
		c.MappingTimeout = d
	}
	if s.NoAddress != "" {
		a, ok := snat.ParseNoAddress(s.NoAddress)
		if !ok {
			return nil, ferr("snat.no_address", strconv.Quote(s.NoAddress)+": must be drop or forward")
		}
		c.NoAddress = a
	}
	check := *c
	if check.Mode == snat.Automap && !check.Automap.IsValid() {
		// The address comes from the interface at start; validate the rest
		// with a stand-in.
		check.Automap = netip.MustParseAddr("192.0.2.1")
	}
	if err := check.Validate(); err != nil {
		return nil, err
	}
	return c, nil
}

func portRange(s string) (firewall.PortRange, error) {
	lo, hi, isRange := strings.Cut(s, "-")
	a, err := strconv.ParseUint(strings.TrimSpace(lo), 10, 16)
	if err != nil {
		return firewall.PortRange{}, errors.New(strconv.Quote(s) + " is not a port or range")
	}
	b := a
	if isRange {
		if b, err = strconv.ParseUint(strings.TrimSpace(hi), 10, 16); err != nil {
			return firewall.PortRange{}, errors.New(strconv.Quote(s) + " is not a port or range")
		}
	}
	return firewall.PortRange{Lo: uint16(a), Hi: uint16(b)}, nil
}

func (r *Rule) convert(field string) (firewall.Rule, error) {
	fr := firewall.Rule{Name: r.Name, Profile: r.Profile, Log: r.Log, ICMPTypes: r.ICMPTypes}
	var ok bool
	if r.Zone == "" {
		r.Zone = "any"
	}
	if fr.Zone, ok = firewall.ZoneByName(r.Zone); !ok {
		return fr, ferr(field+".zone", "must be inside, outside or any")
	}
	if fr.Action, ok = firewall.ActionByName(r.Action); !ok {
		return fr, ferr(field+".action", "must be allow, drop or reject")
	}
	switch r.Proto {
	case "", "any":
	case "tcp":
		fr.Proto = 6
	case "udp":
		fr.Proto = 17
	case "icmp":
		fr.Proto = 1
	case "icmpv6":
		fr.Proto = 58
	default:
		n, err := strconv.ParseUint(r.Proto, 10, 8)
		if err != nil {
			return fr, ferr(field+".proto", "must be tcp, udp, icmp, icmpv6 or a number")
		}
		fr.Proto = uint8(n)
	}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]netip.Prefix
	}{{"src", r.Src, &fr.Src}, {"dst", r.Dst, &fr.Dst}} {
		for j, s := range l.in {
			p, err := netip.ParsePrefix(s)
			if err != nil {
				a, aerr := netip.ParseAddr(s)
				if aerr != nil {
					return fr, ferr(idx(field+"."+l.name, j), strconv.Quote(s)+" is not a valid prefix")
				}
				p = netip.PrefixFrom(a, a.BitLen())
			}
			*l.out = append(*l.out, p)
		}
	}
	for _, l := range []struct {
		name string
		in   []string
		out  *[]firewall.PortRange
	}{{"src_ports", r.SrcPorts, &fr.SrcPorts}, {"dst_ports", r.DstPorts, &fr.DstPorts}} {
		for j, s := range l.in {
			pr, err := portRange(s)
			if err != nil {
				return fr, ferr(idx(field+"."+l.name, j), err.Error())
			}
			*l.out = append(*l.out, pr)
		}
	}
	return fr, nil
}
