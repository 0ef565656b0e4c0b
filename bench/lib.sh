# shellcheck shell=bash
# lib.sh: helpers shared by the bench scripts that run a lab from
# scripts/topo.sh; sourced from the repository root (". bench/lib.sh").
#
#   build_edge BIN      builds ./cmd/edge into BIN (or copies EDGE_BIN there) and
#                       sets EDGE_SRC to what it was built from (commit, +changes)
#   proc_ticks PID...   utime+stime of the processes (all their threads), in ticks
#                       (CLK_TCK a second); a PID that is gone counts 0
#   napi_pids DEV...    PIDs of the threaded-NAPI kthreads of the devices
#                       (comm "napi/DEV-ID", truncated to 15 characters)
#   edge_stats_json BIN SOCK   `edge stats -o json` of the daemon at SOCK ("{}" when
#                       it does not answer). protojson writes uint64 counters as
#                       strings: convert them before adding.

build_edge() {
	local bin=$1
	if [ -n "${EDGE_BIN:-}" ]; then
		cp "$EDGE_BIN" "$bin"
		# shellcheck disable=SC2034 # read by the caller
		EDGE_SRC="EDGE_BIN=$EDGE_BIN"
		return
	fi
	go build -o "$bin" ./cmd/edge
	# shellcheck disable=SC2034 # read by the caller
	EDGE_SRC="working tree $(git rev-parse --short HEAD 2>/dev/null || echo '?')$(git diff --quiet HEAD 2>/dev/null || echo '+changes')"
}

proc_ticks() {
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		# Fields after the ")" that ends comm: utime and stime are the 12th and 13th.
		t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat" 2>/dev/null || echo 0)))
	done
	echo "$t"
}

napi_pids() {
	local d
	for d in "$@"; do
		ps -eo pid=,comm= | awk -v p="napi/$d-" 'index($2, p) == 1 {print $1}'
	done
}

edge_stats_json() {
	"$1" stats --socket "$2" -o json 2>/dev/null || echo '{}'
}
