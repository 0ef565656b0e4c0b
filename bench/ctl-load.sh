#!/usr/bin/env bash
# ctl-load.sh: does control-plane work slow forwarding? edge forwards at the
# generator's maximum offered rate (64 B UDP, FLOWS established flows) while,
# in alternate trials, bench/cmd/ctlload dumps every flow every 100 ms and
# applies a configuration every second (alternating two documents, so each
# apply recompiles and swaps the rule set). Issue #4's target: forwarding
# keeps >= 95% of its rate without them.
#
#   sudo ./bench/ctl-load.sh                 REPEAT=5 pairs of TRIAL=3 s trials, FLOWS=10000
#   sudo FLOWS=100000 ./bench/ctl-load.sh    larger dumps
#
# Placement (2 vCPUs): edge's worker (pinned by edge, `cpus: [1]`) and its
# receive veth's NAPI kthread on CPU 1; the rest of the edge process (the
# gRPC server and the Go runtime's other threads) on CPU 0, as an appliance
# keeps its control plane off the worker cores; generator, sink and ctlload
# (standing in for the operator's station) on CPU 0 too. The generator
# offers more than edge forwards, so control-plane work on CPU 0 shows up
# as lower delivered rate only if it slows edge itself. WORKER_ONLY_CPU=1
# puts the whole edge process on CPU 1 instead (control plane and worker
# sharing one vCPU: the worst case).
# Prints one table and writes bench/out/ctl-load.txt.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "ctl-load.sh: needs root (namespaces, XDP)" >&2; exit 1; }
REPEAT=${REPEAT:-5}
TRIAL=${TRIAL:-3}
FLOWS=${FLOWS:-10000}
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
tmp=$(mktemp -d /tmp/ctlload.XXXXXX)
topo_id= sink_pid=
cleanup() {
	[ -n "$sink_pid" ] && kill -INT "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null || true
	[ -n "$topo_id" ] && ./scripts/topo.sh down "$topo_id" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build"
go build -o "$tmp/edge" ./cmd/edge
go build -o "$tmp/edgegen" ./bench/cmd/edgegen
go build -o "$tmp/ctlload" ./bench/cmd/ctlload
procs=0
[ -n "${WORKER_ONLY_CPU:-}" ] && procs=1
topo_id=$(EDGE_BIN="$tmp/edge" EDGE_PROC_CPUS=$procs ./scripts/topo.sh up edge --queues 1 --middle-cpus 1 \
	--max-flows $((FLOWS * 2)) | tail -1)
# shellcheck disable=SC1090
. "/tmp/edgetopo/$topo_id/env"
ip netns exec "$NS_S" taskset -c 0 "$tmp/edgegen" sink --dev "$DEV_S" --out "$tmp/sink.json" \
	--expect-file "$tmp/tx.json" --ready "$tmp/ready" >/dev/null 2>"$tmp/sink.err" &
sink_pid=$!
for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
[ -s "$tmp/ready" ] || { cat "$tmp/sink.err"; echo "ctl-load.sh: the sink did not start" >&2; exit 1; }
./scripts/topo.sh pin "$topo_id"

# gen ARGS...: one generator run; prints the delivered pps.
gen() {
	rm -f "$tmp/tx.json" "$tmp/sink.json"
	ip netns exec "$NS_C" taskset -c 0 "$tmp/edgegen" tx --dev "$DEV_C" --dst-mac "$DST_MAC" \
		--src "$SRC_IP" --dst "$DST_IP" --summary "$tmp/tx.json" "$@" >/dev/null
	sleep 0.15
	kill -USR1 "$sink_pid"
	for _ in $(seq 100); do [ -s "$tmp/sink.json" ] && break; sleep 0.02; done
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2])); print("%.0f %d %d %.0f" % (s["unique"]/t["seconds"], s["unique"], t["sent"], t["pps"]))' \
		"$tmp/tx.json" "$tmp/sink.json"
}

echo "== warm-up: $FLOWS flows"
read -r _ got sent < <(gen --size 64 --flows "$FLOWS" --count "$FLOWS" --rate 100000)
echo "   $got of $sent delivered"
"$tmp/edge" --socket "$EDGE_SOCK" status | sed -n 1,2p

: >"$tmp/rows"
for rep in $(seq "$REPEAT"); do
	read -r base _ _ off0 < <(gen --size 64 --flows "$FLOWS" --duration "${TRIAL}s")
	taskset -c 0 "$tmp/ctlload" --socket "$EDGE_SOCK" --config "$EDGE_CONFIG" --for "$((TRIAL + 1))s" >"$tmp/load.json" &
	lp=$!
	sleep 0.5 # the load is running before the trial starts
	read -r loaded _ _ off1 < <(gen --size 64 --flows "$FLOWS" --duration "${TRIAL}s")
	wait "$lp"
	echo "$rep $base $loaded $(cat "$tmp/load.json")" >>"$tmp/rows"
	python3 -c 'import json,sys; r=json.loads(sys.argv[3]); print("   rep %s: without %.3f Mpps (offered %.3f), with %.3f Mpps (offered %.3f) (%.1f%%); %d dumps of %.0f flows (p50 %.1f ms), %d applies (p50 %.1f ms), %d errors" % (
	  sys.argv[4], float(sys.argv[1])/1e6, float(sys.argv[5])/1e6, float(sys.argv[2])/1e6, float(sys.argv[6])/1e6, 100*float(sys.argv[2])/float(sys.argv[1]), r["dumps"], r["flows_per_dump"], r["dump_p50_ms"], r["applies"], r["apply_p50_ms"], r["errors"]))' \
		"$base" "$loaded" "$(cat "$tmp/load.json")" "$rep" "$off0" "$off1"
done
gen_stats=$("$tmp/edge" --socket "$EDGE_SOCK" stats | grep -E 'tx_full|rx_|firewall' || true)

python3 - "$tmp/rows" "$OUT/ctl-load.txt" "$FLOWS" "$TRIAL" "$procs" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, statistics, sys, time
rows, out, flows, trial, procs, load = sys.argv[1:]
base, loaded, ratios, dumps, fpd, dp50, applies, ap50, errs = [], [], [], [], [], [], [], [], 0
for l in open(rows):
    rep, b, w, js = l.split(" ", 3)
    r = json.loads(js)
    base.append(float(b)); loaded.append(float(w)); ratios.append(float(w) / float(b))
    dumps.append(r["dumps"]); fpd.append(r["flows_per_dump"]); dp50.append(r["dump_p50_ms"])
    applies.append(r["applies"]); ap50.append(r["apply_p50_ms"]); errs += r["errors"]
m = statistics.median
ratio = m(ratios)
text = "\n".join([
    "ctl-load.sh: %s, %d pairs of %s s trials, 64 B UDP at the generator's maximum, %s flows, edge process on CPUs %s (worker on CPU 1), load average %s" % (
        time.strftime("%Y-%m-%d %H:%M:%S"), len(ratios), trial, flows, procs, load),
    "forwarding without control-plane load: %.3f Mpps (median)" % (m(base) / 1e6),
    "forwarding with a full dump every 100 ms and an apply every 1 s: %.3f Mpps (median)" % (m(loaded) / 1e6),
    "ratio (median of per-pair ratios): %.1f%%  (target >= 95%%: %s); pairs: %s" % (
        100 * ratio, "met" if ratio >= 0.95 else "NOT met", " ".join("%.1f%%" % (100 * x) for x in ratios)),
    "control plane during the loaded trials: %d dumps of %.0f flows per trial (p50 %.1f ms each), %d applies per trial (p50 %.1f ms), %d errors" % (
        m(dumps), m(fpd), m(dp50), m(applies), m(ap50), errs),
]) + "\n"
print(); print(text, end="")
open(out, "w").write(text)
if errs:
    sys.exit("ctl-load.sh: control-plane calls failed during the load")
PY
echo "$gen_stats" | sed 's/^/   edge: /'
echo "written: $OUT/ctl-load.txt"
