#!/usr/bin/env bash
# report.sh (make bench): issue #10's targets in one table. It runs the
# benchmarks, each writing its JSON into OUT, then prints one row per target
# with the null AF_XDP forwarder (the floor), Linux nftables and edge side by
# side, the ratio, the target and met / NOT met (bench/cmd/benchreport), and
# for each target not met the run's loss figures and a profile summary.
#
#   pps       bench/pps.sh: 64 B and IMIX at 1 / 1k / 100k / 1M flows (% of the
#             generator's ceiling, CPU per packet), the 50 kpps latency trial;
#             MIDDLES default "direct linux-nft nullfwd edge-1w". ROUNDS (3)
#             rounds of one trial per cell (PPS_REPEAT), the middles in a
#             different order each round (pps.sh runs one middle's trials in
#             a row: on a shared machine a burst of other work would land on
#             one middle); the table takes each cell's median over the
#             rounds                                            -> pps-rN/pps.json
#   tcp       bench/tcp.sh: iperf3, 1 and 8 streams, alternated     -> tcp.json
#   ctl-load  bench/ctl-load.sh: 10k flows, dumps every 100 ms      -> ctl-load.json
#   pipeline  go test -bench: PipelineEstablished/1048576 (1M flows)
#             and PipelineNewFlow (1,000 rules + SNAT), -count 5     -> pipeline.txt
#   profile   (PROFILE=1, the default; not with SHORT) perf record -g of the
#             middle's CPU: pps.sh again with PERF_DIR, one trial per cell
#             (linux-nft, nullfwd, edge-1w; 64 B and IMIX at 1 / 1k / 1M
#             flows; the 50 kpps trial), summarised per cell with
#             perf report --no-children --percentage relative --sort dso,sym
#             --pid (the middle's own threads) into OUT/perf/*.top; the pipeline benchmarks
#             under go test -cpuprofile, summarised with go tool pprof -top.
#             ctl-load.sh again with PERF_DIR: the worker's CPU during a
#             trial without and one with the control-plane load; tcp.sh
#             again with PERF_DIR: the middle's CPU during one 3 s test per
#             middle and stream count.
#             The measuring pass runs without perf: sampling costs CPU.
#
#   ./bench/report.sh             about 12 minutes (root)
#   SHORT=1 ./bench/report.sh     a smoke check of the whole chain in under 2 minutes: pps.sh
#                                 SHORT (64 B, 1 and 1k flows, one trial) with the latency
#                                 trial, tcp.sh SHORT, ctl-load one pair of 1 s trials, the
#                                 pipeline benchmarks once with few iterations; no profiles
#   OUT=/tmp/b PROFILE=0 ./bench/report.sh
#   ./bench/report.sh table       only print the table from what OUT holds
#
# Figures come only from this run: the sources are removed first, and a
# benchmark that fails leaves its rows "missing" / "no data". It exits 1
# when a benchmark failed (the table is still printed), 0 otherwise:
# targets not met are figures, not failures.
set -uo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
OUT=${OUT:-bench/out}
if [ "${1:-}" = table ]; then
	go run ./bench/cmd/benchreport -dir "$OUT"
	exit
fi
[ "$(id -u)" -eq 0 ] || { echo "report.sh: needs root (namespaces, XDP)" >&2; exit 1; }
if [ -n "${SHORT:-}" ]; then PROFILE=${PROFILE:-0}; else PROFILE=${PROFILE:-1}; fi
mkdir -p "$OUT"
rm -rf "$OUT/pps.json" "$OUT"/pps-r* "$OUT/tcp.json" "$OUT/ctl-load.json" "$OUT/pipeline.txt" "$OUT/report.txt" "$OUT/perf"
tmp=$(mktemp -d /tmp/benchreport.XXXXXX)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 130' INT TERM
t_start=$(date +%s)
failed=()

# step NAME COMMAND...: runs one benchmark; a failure is recorded, not fatal.
step() {
	local name=$1 rc=0
	shift
	echo "== report: $name ($(date -u +%H:%M:%S), load average $(cut -d ' ' -f 1-3 /proc/loadavg))"
	"$@" || rc=$?
	[ "$rc" = 0 ] || failed+=("$name (exit $rc)")
}

# pipeline_bench ARGS...: the two pipeline benchmarks, appended to pipeline.txt.
pipeline_bench() {
	go test -c -o "$tmp/dataplane.test" ./dataplane || return 1
	local rc=0
	(cd dataplane && "$tmp/dataplane.test" -test.run '^$' -test.bench 'PipelineEstablished/1048576$' \
		-test.benchtime 2000000x "$@") | tee -a "$OUT/pipeline.txt" || rc=1
	(cd dataplane && "$tmp/dataplane.test" -test.run '^$' -test.bench 'PipelineNewFlow$' \
		-test.benchtime 500000x "$@") | tee -a "$OUT/pipeline.txt" || rc=1
	return $rc
}

# profile_pass: perf of the middle's CPU per pps cell, and pprof of the
# pipeline benchmarks, summarised into OUT/perf/*.top.
profile_pass() {
	command -v perf >/dev/null || {
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq linux-perf) >/dev/null 2>&1 ||
			{ echo "report.sh: cannot install linux-perf" >&2; return 1; }
	}
	mkdir -p "$OUT/perf/data"
	PERF_DIR="$OUT/perf/data" MIDDLES="linux-nft nullfwd edge-1w" SIZES="64 imix" FLOWS="1 1000 1000000" \
		REPEAT=1 NEWFLOW=0 OUT="$OUT/perf" ./bench/pps.sh >"$OUT/perf/pps.log" 2>&1 ||
		{ tail -5 "$OUT/perf/pps.log" >&2; return 1; }
	PERF_DIR="$OUT/perf/data" REPEAT=1 OUT="$OUT/perf" ./bench/ctl-load.sh >"$OUT/perf/ctl-load.log" 2>&1 ||
		{ tail -5 "$OUT/perf/ctl-load.log" >&2; return 1; }
	PERF_DIR="$OUT/perf/data" RUNS=1 DURATION=3 OUT="$OUT/perf" ./bench/tcp.sh >"$OUT/perf/tcp.log" 2>&1 ||
		{ tail -5 "$OUT/perf/tcp.log" >&2; return 1; }
	local f name
	for f in "$OUT"/perf/data/*.data; do
		name=$(basename "$f" .data)
		case $name in *-pps-* | *-lat-*) name=${name%-1} ;; esac # pps.sh's repetition number
		perf report -i "$f" --pid "$(cat "${f%.data}.pids")" --no-children --percentage relative --sort dso,sym --stdio -g none \
			>"$OUT/perf/$name.top" 2>/dev/null
	done
	# Samples under the measured calls only (the benchmark's setup and
	# expiry between rounds are left out; the established benchmark's
	# setup opens its million flows through the same pipeline, so its many
	# iterations keep that a small share).
	for b in established:'PipelineEstablished/1048576$':30000000x newflow:'PipelineNewFlow$':2000000x; do
		IFS=: read -r name re n <<<"$b"
		(cd dataplane && "$tmp/dataplane.test" -test.run '^$' -test.bench "$re" -test.benchtime "$n" \
			-test.cpuprofile "$tmp/$name.cpu") >/dev/null &&
			go tool pprof -top -nodecount 12 -focus 'worker\)\.(pipeline|transmit)$' "$tmp/dataplane.test" "$tmp/$name.cpu" \
				>"$OUT/perf/pipeline-$name.top" 2>/dev/null
	done
	echo "   profiles: $(ls "$OUT"/perf/*.top | wc -l) summaries in $OUT/perf (perf data in $OUT/perf/data)"
}

if [ -n "${SHORT:-}" ]; then
	step pps env SHORT=1 LAT=1 OUT="$OUT/pps-r1" ./bench/pps.sh
	step tcp env SHORT=1 OUT="$OUT" ./bench/tcp.sh
	step ctl-load env REPEAT=1 TRIAL=1 OUT="$OUT" ./bench/ctl-load.sh
	step pipeline pipeline_bench -test.count 1 -test.benchtime 20000x
else
	read -ra mids <<<"${MIDDLES:-direct linux-nft nullfwd edge-1w}"
	for ((r = 0; r < ${ROUNDS:-3}; r++)); do
		rot=("${mids[@]:r % ${#mids[@]}}" "${mids[@]:0:r % ${#mids[@]}}")
		step "pps round $((r + 1)): ${rot[*]}" env MIDDLES="${rot[*]}" REPEAT="${PPS_REPEAT:-1}" \
			OUT="$OUT/pps-r$((r + 1))" ./bench/pps.sh
	done
	step tcp env OUT="$OUT" ./bench/tcp.sh
	step ctl-load env OUT="$OUT" ./bench/ctl-load.sh
	step pipeline pipeline_bench -test.count 5
fi
[ "$PROFILE" = 1 ] && step profile profile_pass

echo
echo "== report: $(( $(date +%s) - t_start )) s; load average $(cut -d ' ' -f 1-3 /proc/loadavg); edge at $(git rev-parse --short HEAD)$(git diff --quiet HEAD -- . ':!bench/out' 2>/dev/null || echo '+changes')"
go run ./bench/cmd/benchreport -dir "$OUT" | tee "$OUT/report.txt"
if [ ${#failed[@]} -gt 0 ]; then
	echo "report.sh: failed: ${failed[*]}" >&2
	exit 1
fi
