// Package bench holds edge's benchmark tooling: scripts that run the Go
// benchmarks of the per-packet packages and summarize them (conntrack.sh),
// and, as the data plane lands, the traffic generator, sink and lab runner.
package bench
