// Package icmp will generate ICMP errors (time exceeded, fragmentation
// needed, administratively prohibited) under RFC 1812 4.3.2.7 with an
// injected-clock rate limit, and translate ICMP errors that quote translated
// flows (RFC 5508). conntrack.Parse already maps an error to the flow it
// quotes (conntrack.KindRelated).
//
// Status: not implemented yet (issue #3).
package icmp
