#!/usr/bin/env bash
# conntrack.sh: the conntrack benchmarks, repeated, summarized as medians.
#
#   bench/conntrack.sh              COUNT=5 runs of each benchmark, 16M flows included
#   SHORT=1 bench/conntrack.sh      skip the 16M-flow table (needs ~2.2 GB and a minute to fill)
#
# Prints benchstat's table (median and spread of COUNT runs) and keeps the raw
# output in bench/out/conntrack.txt. Timings on a shared VM are noisy: compare
# figures from one run, not across runs.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
COUNT=${COUNT:-5}
BENCHSTAT=golang.org/x/perf/cmd/benchstat@v0.0.0-20260908200009-22c9c6c9d4da
command -v benchstat >/dev/null || go install "$BENCHSTAT"
mkdir -p bench/out
short=()
[ -n "${SHORT:-}" ] && short=(-short)
go test -run XXX -bench 'TrackEstablished|Create|Parse|Workers' -benchtime 2s -count "$COUNT" "${short[@]}" \
	./conntrack/ | tee bench/out/conntrack.txt | grep -E '^Benchmark' || true
echo
benchstat bench/out/conntrack.txt
