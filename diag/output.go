package diag

import (
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"
)

// WriteJSON writes one JSON object per finding, one a line, ranked.
func WriteJSON(w io.Writer, r *Report) error {
	enc := json.NewEncoder(w)
	enc.SetEscapeHTML(false) // tuples print "->"
	for i := range r.Findings {
		if err := enc.Encode(&r.Findings[i]); err != nil {
			return err
		}
	}
	return nil
}

// WriteText writes the report for a person: the findings ranked, each with
// its fix, evidence and examples, then the notes.
func WriteText(w io.Writer, r *Report) error {
	var b strings.Builder
	span := ""
	if !r.Start.IsZero() {
		span = fmt.Sprintf(" from %s to %s (%s)", clock(r.Start), clock(r.End), r.End.Sub(r.Start).Round(time.Millisecond))
	}
	fmt.Fprintf(&b, "%d events%s\n", r.Events, span)
	if len(r.Findings) == 0 {
		b.WriteString("no finding\n")
	}
	for i := range r.Findings {
		f := &r.Findings[i]
		fmt.Fprintf(&b, "\n%d. %s  %s %s  %s: %s", i+1, f.Pattern, f.Protocol, f.Destination, f.Severity, plural(f.Count, "connection"))
		if f.Packets > f.Count {
			fmt.Fprintf(&b, ", %d packets", f.Packets)
		}
		if !f.FirstSeen.IsZero() {
			fmt.Fprintf(&b, ", %s - %s", clock(f.FirstSeen), clock(f.LastSeen))
		}
		fmt.Fprintf(&b, "\n   fix: %s\n   evidence: %s\n", f.Fix, f.Evidence.Summary)
		if len(f.Evidence.Counts) > 0 {
			b.WriteString("   counts:")
			for _, k := range sortedKeys(f.Evidence.Counts) {
				fmt.Fprintf(&b, " %s=%d", k, f.Evidence.Counts[k])
			}
			b.WriteString("\n")
		}
		for _, k := range sortedKeys(f.Evidence.Durations) {
			d := f.Evidence.Durations[k]
			fmt.Fprintf(&b, "   %s: n=%d min %s p50 %s p90 %s max %s\n", k, d.N, secs(d.Min), secs(d.P50), secs(d.P90), secs(d.Max))
		}
		for _, m := range f.Evidence.Missing {
			fmt.Fprintf(&b, "   not observed yet: %s\n", m)
		}
		for _, e := range f.Examples {
			fmt.Fprintf(&b, "   example %s", e.Tuple)
			if e.NAT.IsValid() {
				fmt.Fprintf(&b, " snat %s", e.NAT)
			}
			b.WriteString("\n")
			for _, ev := range e.Events {
				fmt.Fprintf(&b, "     %s %s", clock(ev.Time), ev.Kind)
				if ev.Gen != 0 {
					fmt.Fprintf(&b, " gen %d", ev.Gen)
				}
				for _, kv := range [][2]string{{"state", ev.State}, {"reason", ev.Reason}, {"flags", ev.Flags}} {
					if kv[1] != "" {
						fmt.Fprintf(&b, " %s %s", kv[0], kv[1])
					}
				}
				b.WriteString("\n")
			}
			for _, h := range e.History {
				fmt.Fprintf(&b, "     incarnation gen %d %s, created by %s, opened %s", h.Gen, h.State, h.Creator, clock(h.Opened))
				if !h.Closed.IsZero() {
					fmt.Fprintf(&b, ", ended %s (%s)", clock(h.Closed), h.CloseReason)
				} else {
					b.WriteString(", live")
				}
				fmt.Fprintf(&b, ", packets %d/%d\n", h.PacketsOrig, h.PacketsReply)
			}
		}
	}
	for _, n := range r.Notes {
		fmt.Fprintf(&b, "\nnote: %s", n)
	}
	if len(r.Notes) > 0 {
		b.WriteString("\n")
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// plural is "1 connection", "2 connections".
func plural(n uint64, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return fmt.Sprintf("%d %ss", n, noun)
}

func clock(t time.Time) string { return t.Local().Format("15:04:05.000") }

func sortedKeys[V any](m map[string]V) []string {
	ks := make([]string, 0, len(m))
	for k := range m {
		ks = append(ks, k)
	}
	slices.Sort(ks)
	return ks
}
