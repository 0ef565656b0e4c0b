#!/usr/bin/env bash
# lab-compare.sh: the lab's bulk-TCP download through edge and through Linux
# (nftables masquerade + conntrack + a stateful rule), alternated, RUNS times
# each, in one run; prints each result and the medians with their ratio.
#
#   sudo ./bench/lab-compare.sh              RUNS=3, SIZE=200000000 bytes
#
# A single TCP stream of 1,500-byte frames over veth: it measures per-packet
# latency as much as throughput. The pps comparison with a generator is
# issue #5's.
set -euo pipefail
cd "$(dirname "$0")/.."
RUNS=${RUNS:-3}
SIZE=${SIZE:-200000000}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
median() { sort -n | awk '{a[NR]=$1} END {print (NR%2) ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2}'; }
for i in $(seq "$RUNS"); do
	for peer in edge linux; do
		RESULT="$tmp/res-$peer.$i" SIZE="$SIZE" PEER="$peer" ./scripts/lab.sh >"$tmp/$peer.$i.log" 2>&1 ||
			{ cat "$tmp/$peer.$i.log"; echo "lab-compare: $peer run $i failed" >&2; exit 1; }
		printf '%-6s run %d: %6.1f MB/s\n' "$peer" "$i" "$(awk '{print $1/1e6}' "$tmp/res-$peer.$i")"
	done
done
e=$(cat "$tmp"/res-edge.* | median)
l=$(cat "$tmp"/res-linux.* | median)
printf '\nmedian of %d, %d-byte download: edge %.1f MB/s, linux %.1f MB/s, edge/linux %.2f\n' \
	"$RUNS" "$SIZE" "$(awk -v x="$e" 'BEGIN{print x/1e6}')" "$(awk -v x="$l" 'BEGIN{print x/1e6}')" \
	"$(awk -v a="$e" -v b="$l" 'BEGIN{print a/b}')"
