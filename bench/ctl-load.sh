#!/usr/bin/env bash
# ctl-load.sh: does control-plane work slow forwarding? edge forwards at the
# generator's maximum offered rate (64 B UDP, FLOWS established flows) while,
# in alternate trials, bench/cmd/ctlload dumps every flow every 100 ms and
# applies a configuration every second (alternating two documents, so each
# apply recompiles and swaps the rule set). Issue #4's target: forwarding
# keeps >= 95% of its rate without them.
#
#   ./bench/ctl-load.sh                      REPEAT=5 pairs of TRIAL=3 s trials, FLOWS=10000
#   FLOWS=100000 ./bench/ctl-load.sh         larger dumps
#   PERF_DIR=/tmp/p ./bench/ctl-load.sh     perf record -g of the worker's CPU (1) during the first pair's
#                                            trials, into PERF_DIR/edge-ctl-load-{without,with}.data, edge's
#                                            PID in .pids beside each (perf report --pid $(cat X.pids))
#   ENCODINGS="messages packed" ./bench/ctl-load.sh
#                                            the dump encodings to measure (ctlload --encoding;
#                                            default packed), alternated within each repetition:
#                                            a pair (without, with) per encoding, one table each
#
# Placement (2 vCPUs): edge's worker (pinned by edge, `cpus: [1]`) and its
# receive veth's NAPI kthread on CPU 1; the rest of the edge process (the
# gRPC server and the Go runtime's other threads) on CPU 0, as an appliance
# keeps its control plane off the worker cores; generator, sink and ctlload
# (standing in for the operator's station) on CPU 0 too. The generator
# offers more than edge forwards; but the sink shares CPU 0 with the load,
# so the rate delivered at the sink also drops when the sink (or its NAPI
# kthread) loses CPU 0 to the load. Both are reported: the rate at the sink
# and the rate edge itself sent (its workers' counters). WORKER_ONLY_CPU=1
# puts the whole edge process on CPU 1 instead (control plane and worker
# sharing one vCPU: the worst case).
# Also reported, per trial: the CPU time of edge's threads off the worker's
# CPU (control plane, runtime, GC) and ctlload's own, in ms per second.
# Prints one table per encoding and writes bench/out/ctl-load.txt and
# ctl-load.json (per encoding: the medians, the per-pair ratios, the target's
# verdict; bench/report.sh reads it).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "ctl-load.sh: needs root (namespaces, XDP)" >&2; exit 1; }
REPEAT=${REPEAT:-5}
PERF_DIR=${PERF_DIR:-}
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

# edge_counters: frames edge's workers have sent out of the outside
# interface, frames dropped because a TX ring was full (tx_full), frames
# lost on receive in the AF_XDP sockets (fill ring empty, RX ring full).
edge_counters() {
	"$tmp/edge" --socket "$EDGE_SOCK" stats -o json | python3 -c 'import json,sys
r = json.load(sys.stdin)
print(sum(int(w.get("tx_outside", 0)) for w in r.get("workers", [])), int(r.get("drops", {}).get("tx_full", 0)),
      sum(int(i.get("xsk_fill_ring_empty", 0)) + int(i.get("xsk_rx_ring_full", 0)) for i in r.get("interfaces", [])))'
}

# gen ARGS...: one generator run; prints the delivered pps (at the sink),
# the sink's and the generator's counts, the offered pps, the pps edge
# itself sent (its workers' counters: what edge forwarded, whether or not
# the sink, which shares CPU 0 with the load, kept up), and edge's losses
# during the run per second: tx_full drops, AF_XDP receive losses.
gen() {
	rm -f "$tmp/tx.json" "$tmp/sink.json"
	local e0 e1
	e0=$(edge_counters)
	ip netns exec "$NS_C" taskset -c 0 "$tmp/edgegen" tx --dev "$DEV_C" --dst-mac "$DST_MAC" \
		--src "$SRC_IP" --dst "$DST_IP" --summary "$tmp/tx.json" "$@" >/dev/null
	sleep 0.15
	e1=$(edge_counters)
	kill -USR1 "$sink_pid"
	for _ in $(seq 100); do [ -s "$tmp/sink.json" ] && break; sleep 0.02; done
	python3 -c 'import json,sys; t=json.load(open(sys.argv[1])); s=json.load(open(sys.argv[2])); a=[int(x) for x in sys.argv[3].split()]; b=[int(x) for x in sys.argv[4].split()]; d=[(y-x)/t["seconds"] for x, y in zip(a, b)]
print("%.0f %d %d %.0f %.0f %.0f %.0f" % (s["unique"]/t["seconds"], s["unique"], t["sent"], t["pps"], d[0], d[1], d[2]))' \
		"$tmp/tx.json" "$tmp/sink.json" "$e0" "$e1"
}

# ctl_ticks: CPU time (clock ticks, utime+stime) of edge's threads other
# than the worker (pinned alone to CPU 1): the control plane, the Go
# runtime's other threads, the garbage collector. The process's total
# (exited threads included) minus the worker threads'. Not meaningful with
# WORKER_ONLY_CPU: every thread is then on CPU 1, and only the time of
# threads that have exited is left.
ticks() { awk '{sub(/^.*\) /, ""); print $12 + $13}' "$1" 2>/dev/null || echo 0; }
ctl_ticks() {
	local t d
	t=$(ticks "/proc/$EDGE_PID/stat")
	for d in /proc/"$EDGE_PID"/task/*; do
		grep -q '^Cpus_allowed_list:[[:space:]]*1$' "$d/status" 2>/dev/null && t=$((t - $(ticks "$d/stat")))
	done
	echo "$t"
}
hz=$(getconf CLK_TCK)

# perf_start NAME: with PERF_DIR, perf record -g of the worker's CPU for
# one trial, in the background (perf_wait ends it).
perf_pid=
perf_start() {
	[ -n "$PERF_DIR" ] && [ "$rep" = 1 ] || return 0
	mkdir -p "$PERF_DIR"
	echo "$EDGE_PID" >"$PERF_DIR/edge-ctl-load-$1.pids"
	perf record -q -g -C 1 -o "$PERF_DIR/edge-ctl-load-$1.data" -- sleep "$TRIAL" >/dev/null 2>&1 &
	perf_pid=$!
}
perf_wait() { [ -z "$perf_pid" ] || wait "$perf_pid" || true; perf_pid=; }

echo "== warm-up: $FLOWS flows"
read -r _ got sent _ < <(gen --size 64 --flows "$FLOWS" --count "$FLOWS" --rate 100000)
echo "   $got of $sent delivered"
"$tmp/edge" --socket "$EDGE_SOCK" status | sed -n 1,2p

: >"$tmp/rows"
ENCODINGS=${ENCODINGS:-packed}
for rep in $(seq "$REPEAT"); do
	for enc in $ENCODINGS; do
		c0=$(ctl_ticks) t0=$(date +%s.%N)
		perf_start without
		read -r base _ _ off0 ebase txf0 rxl0 < <(gen --size 64 --flows "$FLOWS" --duration "${TRIAL}s")
		perf_wait
		ctl0=$(python3 -c "print('%.0f' % (($(ctl_ticks) - $c0) / $hz * 1000 / ($(date +%s.%N) - $t0)))")
		taskset -c 0 "$tmp/ctlload" --socket "$EDGE_SOCK" --config "$EDGE_CONFIG" --encoding "$enc" \
			--for "$((TRIAL + 1))s" >"$tmp/load.json" &
		lp=$!
		sleep 0.5 # the load is running before the trial starts
		c0=$(ctl_ticks) t0=$(date +%s.%N)
		perf_start with
		read -r loaded _ _ off1 eloaded txf1 rxl1 < <(gen --size 64 --flows "$FLOWS" --duration "${TRIAL}s")
		perf_wait
		ctl1=$(python3 -c "print('%.0f' % (($(ctl_ticks) - $c0) / $hz * 1000 / ($(date +%s.%N) - $t0)))")
		wait "$lp"
		echo "$enc $rep $base $loaded $ctl0 $ctl1 $ebase $eloaded $txf0 $txf1 $rxl0 $rxl1 $(cat "$tmp/load.json")" >>"$tmp/rows"
		python3 -c 'import json,sys; r=json.loads(sys.argv[3]); print("   rep %s %s: without %.3f Mpps (offered %.3f), with %.3f Mpps (offered %.3f) (%.1f%%); %d dumps of %.0f flows (p50 %.1f ms), %d applies (p50 %.1f ms), %d errors%s; CPU ms/s: edge off the worker %s without, %s with, ctlload %.0f; edge sent %.3f / %.3f Mpps (%.1f%%), tx_full %.0f / %.0f per s, AF_XDP receive losses %.0f / %.0f per s" % (
		  sys.argv[4], sys.argv[7], float(sys.argv[1])/1e6, float(sys.argv[5])/1e6, float(sys.argv[2])/1e6, float(sys.argv[6])/1e6, 100*float(sys.argv[2])/float(sys.argv[1]), r["dumps"], r["flows_per_dump"], r["dump_p50_ms"], r["applies"], r["apply_p50_ms"], r["errors"],
		  " (first: %s)" % r["first_error"] if r.get("first_error") else "", sys.argv[8], sys.argv[9], r["cpu_ms"] / r["seconds"],
		  float(sys.argv[10])/1e6, float(sys.argv[11])/1e6, 100*float(sys.argv[11])/max(float(sys.argv[10]), 1),
		  float(sys.argv[12]), float(sys.argv[13]), float(sys.argv[14]), float(sys.argv[15])))' \
			"$base" "$loaded" "$(cat "$tmp/load.json")" "$rep" "$off0" "$off1" "$enc" "$ctl0" "$ctl1" "$ebase" "$eloaded" \
			"$txf0" "$txf1" "$rxl0" "$rxl1"
	done
done
gen_stats=$("$tmp/edge" --socket "$EDGE_SOCK" stats | grep -E 'tx_full|rx_|firewall' || true)

python3 - "$tmp/rows" "$OUT/ctl-load.txt" "$FLOWS" "$TRIAL" "$procs" "$(cut -d' ' -f1-3 /proc/loadavg)" <<'PY'
import json, statistics, sys, time
rows, out, flows, trial, procs, load = sys.argv[1:]
by = {}
for l in open(rows):
    enc, rep, b, w, c0, c1, e0, e1, tf0, tf1, rl0, rl1, js = l.split(" ", 12)
    r = json.loads(js)
    r["tx_full0"], r["tx_full1"], r["rx_lost0"], r["rx_lost1"] = float(tf0), float(tf1), float(rl0), float(rl1)
    r["edge_ctl_cpu0"], r["edge_ctl_cpu1"] = float(c0), float(c1)
    r["edge_tx0"], r["edge_tx1"] = float(e0), float(e1)
    by.setdefault(enc, []).append((float(b), float(w), r))
m = statistics.median
lines, errs, js_out = [], 0, []
for enc, rs in by.items():
    base = [b for b, _, _ in rs]; loaded = [w for _, w, _ in rs]; ratios = [w / b for b, w, _ in rs]
    js = [r for _, _, r in rs]
    errs += sum(r["errors"] for r in js)
    ratio = m(ratios)
    js_out.append(dict(encoding=enc, pairs=len(ratios), flows=int(flows), trial_s=float(trial),
                       base_pps=round(m(base)), loaded_pps=round(m(loaded)), ratio=round(ratio, 4),
                       pair_ratios=[round(x, 4) for x in ratios],
                       edge_tx_ratio=round(m([r["edge_tx1"] / max(r["edge_tx0"], 1) for r in js]), 4),
                       errors=sum(r["errors"] for r in js), target=0.95, met=ratio >= 0.95))
    lines += [
        "ctl-load.sh: %s, dump encoding %s, %d pairs of %s s trials, 64 B UDP at the generator's maximum, %s flows, edge process on CPUs %s (worker on CPU 1), load average %s" % (
            time.strftime("%Y-%m-%d %H:%M:%S"), enc, len(ratios), trial, flows, procs, load),
        "forwarding without control-plane load: %.3f Mpps (median)" % (m(base) / 1e6),
        "forwarding with a full dump every 100 ms and an apply every 1 s: %.3f Mpps (median)" % (m(loaded) / 1e6),
        "ratio (median of per-pair ratios): %.1f%%  (target >= 95%%: %s); pairs: %s" % (
            100 * ratio, "met" if ratio >= 0.95 else "NOT met", " ".join("%.1f%%" % (100 * x) for x in ratios)),
        "edge's own sent rate (its counters): %.3f Mpps without, %.3f with (medians); ratio %.1f%% (median of per-pair ratios); pairs: %s" % (
            m([r["edge_tx0"] for r in js]) / 1e6, m([r["edge_tx1"] for r in js]) / 1e6,
            100 * m([r["edge_tx1"] / max(r["edge_tx0"], 1) for r in js]),
            " ".join("%.1f%%" % (100 * r["edge_tx1"] / max(r["edge_tx0"], 1)) for r in js)),
        "edge's losses (per s, medians): tx_full %.0f without, %.0f with; AF_XDP receive losses %.0f without, %.0f with" % (
            m([r["tx_full0"] for r in js]), m([r["tx_full1"] for r in js]), m([r["rx_lost0"] for r in js]), m([r["rx_lost1"] for r in js])),
        "control plane during the loaded trials: %d dumps of %.0f flows per trial (p50 %.1f ms each), %d applies per trial (p50 %.1f ms), %d errors" % (
            m([r["dumps"] for r in js]), m([r["flows_per_dump"] for r in js]), m([r["dump_p50_ms"] for r in js]),
            m([r["applies"] for r in js]), m([r["apply_p50_ms"] for r in js]), sum(r["errors"] for r in js)),
        "CPU time (ms per s, medians): edge's threads off the worker's CPU %.0f without the load, %.0f with it; ctlload %.0f" % (
            m([r["edge_ctl_cpu0"] for r in js]), m([r["edge_ctl_cpu1"] for r in js]), m([r["cpu_ms"] / r["seconds"] for r in js])),
    ]
text = "\n".join(lines) + "\n"
print(); print(text, end="")
open(out, "w").write(text)
json.dump({"date": time.strftime("%Y-%m-%d %H:%M:%S"), "load": load, "worker_only_cpu": procs == "1", "encodings": js_out},
          open(out[:-len(".txt")] + ".json", "w"), indent=1)
if errs:
    sys.exit("ctl-load.sh: control-plane calls failed during the load")
PY
echo "$gen_stats" | sed 's/^/   edge: /'
echo "written: $OUT/ctl-load.txt, ctl-load.json"
