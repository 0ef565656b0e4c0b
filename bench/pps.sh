#!/usr/bin/env bash
# pps.sh: packets per second through each middle box, in one run, with the
# same generator (bench/cmd/edgegen, AF_XDP copy mode on veth) and sink:
#
#   direct     generator -> sink, no middle: the ceiling
#   linux-fwd  Linux ip_forward
#   linux-nft  Linux nftables masquerade + conntrack + stateful forward rule
#   nullfwd    the null AF_XDP forwarder (bench/cmd/nullfwd): edge's sockets,
#              XDP program, copy and loop, no parsing, MACs rewritten: the
#              floor of edge's design on this machine (one worker, CPU 1)
#   edge-1w    edge, 1 worker (one vCPU)
#   edge-2w    edge, 2 workers, 2-queue veths
#   edge-bp    edge-1w with busy polling (xdp: {busy_poll: true}, plus BUSY_POLL_YAML,
#              e.g. "busy_poll_budget: 16"); not in the default set
#
# for frame sizes 64 and imix (7:4:1 of 64/576/1500) and 1, 1k, 100k, 1M UDP
# flows (RFC 4814 pseudorandom ports): delivered pps, loss, latency p50/p99
# (and added vs direct), middle CPU per packet; an unloaded-latency trial
# (64 B, 1 flow, LAT_RATE pps) and a new-connections trial (RFC 9693 style:
# every packet a new 5-tuple, at the maximum offered rate). REPEAT trials each,
# medians reported. Prints one table and writes bench/out/pps.txt, pps.json
# (every trial and the medians) and pps.csv (medians).
#
#   sudo ./bench/pps.sh                     full set, about 4-5 minutes (TRIAL=1 s per trial)
#   sudo SHORT=1 ./bench/pps.sh             64 B, 1 and 1k flows, direct/linux-nft/nullfwd/edge-1w,
#                                           one repeat (< 60 s); exits 1 if edge or nullfwd forwards
#                                           (nearly) nothing
#   REPEAT=5 TRIAL=2 MIDDLES="direct edge-1w" SIZES="64" FLOWS="1 1000" ./bench/pps.sh
#   FAMILY=6 ./bench/pps.sh                 over IPv6 (topo.sh up --ipv6; UDP/IPv6 frames, SIZES default
#                                           "82 imix": 82 is the smallest frame with the generator's
#                                           16-byte payload, and imix's 64-byte frames are 82 too;
#                                           SHORT=1: 82 only)
#   EDGE_BIN=/path/to/edge ./bench/pps.sh   use this edge binary (default: built from the
#                                           working tree, or from git HEAD if that fails to build)
#   ALTERNATE=1 REPEAT=8 ./bench/pps.sh     flow counts in turn within each repeat (1, 1k, ...,
#                                           1, 1k, ...) instead of all repeats of one count in a
#                                           row: on a shared machine a burst of other work then
#                                           lands on every count alike instead of on one cell
#   PERF_DIR=/tmp/p ./bench/pps.sh          perf record -g on the middle's CPUs during each trial,
#                                           into PERF_DIR/MIDDLE-TEST-SIZE-FLOWS-REP.data (needs
#                                           perf: Debian's linux-perf), the middle's own PIDs (NAPI
#                                           kthread, process) in .pids beside it: perf report -i
#                                           X.data --pid $(cat X.pids) leaves out other tenants
#   EDGE_YAML="xdp: {...}" ./bench/pps.sh   more lines for edge's configuration (scripts/topo.sh)
#
# CPU placement (2 vCPUs): CPU 0 runs the generator, the sink and the sink
# veth's NAPI kthread; CPU 1 is the middle box: its receive veth's NAPI
# kthread (threaded NAPI, so the kernel's forwarding work or edge's XDP
# redirect runs there instead of in the generator's softirq) and edge's
# worker. edge-2w: worker 0 and queue 0 on CPU 1, worker 1 and queue 1 on CPU 0
# (only two vCPUs: the second worker shares CPU 0 with generator and sink).
#
# CPU per packet, two measures, both per packet delivered to the sink:
#   cpu_own: CPU time (utime+stime from /proc/PID/stat) of the middle's own
#            threads over the trial: the NAPI kthreads of its receive veth
#            (Linux: the whole forwarding/conntrack/NAT path, which runs there)
#            plus the edge (or nullfwd) process (all threads, its sendto included). Other
#            tenants of the machine do not pollute it.
#   cpu_sys: /proc/stat busy time (user+nice+system+irq+softirq, all CPUs)
#            over the trial minus the generator's CPU (its rusage) and the
#            sink's (process + sink NAPI kthread): what the brief asked for;
#            includes everything else running on the machine (noise) and
#            softirq work not in a kthread. direct gives its noise floor.
# Resolution is one tick (10 ms) per entity per trial.
#
# Needs root; installs ethtool/nftables with apt-get when missing. Latency is
# one-way, from the CLOCK_MONOTONIC stamp in each packet to the sink's read;
# under maximum offered load it includes queueing in the veth and AF_XDP rings.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "pps.sh: needs root (namespaces, XDP)" >&2; exit 1; }

FAMILY=${FAMILY:-4}
# min_size: the family's smallest frame, also the latency and new-flow trials' size.
case $FAMILY in
4) min_size=64 ;;
6) min_size=82; [ -z "${SHORT:-}" ] || : "${SIZES:=82}"; : "${SIZES:=82 imix}" ;;
*) echo "pps.sh: FAMILY must be 4 or 6" >&2; exit 1 ;;
esac
export FAMILY
if [ -n "${SHORT:-}" ]; then
	: "${MIDDLES:=direct linux-nft nullfwd edge-1w}" "${SIZES:=64}" "${FLOWS:=1 1000}" "${REPEAT:=1}"
	: "${LAT:=0}" "${NEWFLOW:=0}"
fi
MIDDLES=${MIDDLES:-direct linux-fwd linux-nft nullfwd edge-1w edge-2w}
SIZES=${SIZES:-64 imix}
FLOWS=${FLOWS:-1 1000 100000 1000000}
REPEAT=${REPEAT:-3}
ALTERNATE=${ALTERNATE:-0}  # 1: flow counts in turn within each repeat (see the header)
PERF_DIR=${PERF_DIR:-}     # a directory: perf record -g of the middle's CPUs per trial there
TRIAL=${TRIAL:-1}          # seconds per trial
LAT=${LAT:-1}              # unloaded-latency trial
LAT_RATE=${LAT_RATE:-50000}
NEWFLOW=${NEWFLOW:-1}      # new-connections trial
NF_RATE=${NF_RATE:-0}      # its offered rate (0: as fast as the generator goes)
WARM_RATE=${WARM_RATE:-200000} # warm-up: every flow of the largest count once, at this rate
MIN_FRAC=${MIN_FRAC:-0.10} # SHORT: edge must deliver at least this fraction of the ceiling
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
tmp=$(mktemp -d /tmp/pps.XXXXXX)
topo_id= sink_pid=
cleanup() {
	[ -n "$sink_pid" ] && kill -INT "$sink_pid" 2>/dev/null && wait "$sink_pid" 2>/dev/null || true
	[ -n "$topo_id" ] && LOGDIR=$tmp ./scripts/topo.sh down "$topo_id" >/dev/null 2>&1 || true
	rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

need=""
command -v ethtool >/dev/null || need="$need ethtool"
command -v nft >/dev/null || need="$need nftables"
command -v python3 >/dev/null || need="$need python3"
if [ -n "$PERF_DIR" ]; then
	mkdir -p "$PERF_DIR"
	command -v perf >/dev/null || need="$need linux-perf"
fi
if [ -n "$need" ]; then
	echo "pps.sh: installing$need"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/dev/null 2>&1 ||
		{ echo "pps.sh: cannot install$need" >&2; exit 1; }
fi

t_start=$(date +%s)
echo "== build (edgegen, nullfwd; edge)"
go build -o "$tmp/edgegen" ./bench/cmd/edgegen
go build -o "$tmp/nullfwd" ./bench/cmd/nullfwd
if [ -n "${EDGE_BIN:-}" ]; then
	edge_src="EDGE_BIN=$EDGE_BIN"
	cp "$EDGE_BIN" "$tmp/edge"
elif go build -o "$tmp/edge" ./cmd/edge 2>"$tmp/build.err"; then
	edge_src="working tree ($(git rev-parse --short HEAD 2>/dev/null || echo ?)$(git diff --quiet 2>/dev/null || echo '+changes'))"
else
	echo "   the working tree's edge does not build; using git HEAD instead:"
	sed 's/^/     /' "$tmp/build.err" | head -5
	mkdir "$tmp/head" && git archive HEAD | tar -x -C "$tmp/head"
	(cd "$tmp/head" && go build -o "$tmp/edge" ./cmd/edge)
	edge_src="git HEAD $(git rev-parse --short HEAD)"
fi
echo "   edge: $edge_src"

ticks() { # utime+stime of the given pids, in ticks
	local t=0 p
	for p in "$@"; do
		[ -r "/proc/$p/stat" ] || continue
		t=$((t + $(awk '{sub(/^.*\) /, ""); print $12 + $13}' "/proc/$p/stat")))
	done
	echo "$t"
}
busy() { awk '/^cpu /{print $2 + $3 + $4 + $7 + $8}' /proc/stat; }
napi_pids() { local d; for d in "$@"; do ps -eo pid=,comm= | awk -v p="napi/$d-" 'index($2, p) == 1 {print $1}'; done; }

echo "middle,test,size,flows,rep,json" >"$tmp/trials.csv"
: >"$tmp/trials.jsonl"
trial_no=0

# trial MIDDLE TEST SIZE FLOWS REP [edgegen tx flags...]
trial() {
	local middle=$1 test=$2 size=$3 flows=$4 rep=$5; shift 5
	rm -f "$tmp/tx.json" "$tmp/sink.json"
	trial_no=$((trial_no + 1))
	local mid_pids="$(napi_pids $MIDDLE_RX) ${EDGE_PID:-}" sink_pids="$sink_pid $(napi_pids $SINK_RX)"
	local b0 m0 s0 b1 m1 s1
	local perf_pid=
	if [ -n "$PERF_DIR" ]; then
		local pf=$PERF_DIR/$middle-$test-$size-$flows-$rep
		echo $mid_pids | tr ' ' , >"$pf.pids"
		perf record -q -g -C "$MIDDLE_CPUS" -o "$pf.data" -- sleep "$TRIAL" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	b0=$(busy); m0=$(ticks $mid_pids); s0=$(ticks $sink_pids)
	ip netns exec "$NS_C" taskset -c 0 "$tmp/edgegen" tx --dev "$DEV_C" --dst-mac "$DST_MAC" \
		--src "$SRC_IP" --dst "$DST_IP" --queues "$QUEUES" --summary "$tmp/tx.json" "$@" >/dev/null
	sleep 0.15 # drain
	b1=$(busy); m1=$(ticks $mid_pids); s1=$(ticks $sink_pids)
	[ -z "$perf_pid" ] || wait "$perf_pid" || true
	kill -USR1 "$sink_pid"
	for _ in $(seq 100); do [ -s "$tmp/sink.json" ] && break; sleep 0.02; done
	[ -s "$tmp/sink.json" ] || { echo "pps.sh: the sink did not report" >&2; exit 1; }
	python3 - "$middle" "$test" "$size" "$flows" "$rep" "$tmp/tx.json" "$tmp/sink.json" \
		$((b1 - b0)) $((m1 - m0)) $((s1 - s0)) "$(getconf CLK_TCK)" >>"$tmp/trials.jsonl" <<'PY'
import json, sys
m, test, size, flows, rep, txf, skf, db, dm, ds, hz = sys.argv[1:]
tx, sk = json.load(open(txf)), json.load(open(skf))
hz = float(hz); u = max(sk["unique"], 1)
r = dict(middle=m, test=test, size=size, flows=int(flows), rep=int(rep),
         sent=tx["sent"], offered_pps=tx["pps"], engine=tx["engine"], unique=sk["unique"],
         pps=sk["unique"] / tx["seconds"] if tx["seconds"] > 0 else 0, sink_span_pps=sk["pps"], loss_pct=sk["loss_pct"], dup=sk["dup"], reorder=sk["reorder"],
         p50_us=sk["lat_p50_ns"] / 1e3, p99_us=sk["lat_p99_ns"] / 1e3,
         cpu_own_ns=int(dm) / hz * 1e9 / u,
         cpu_sys_ns=(int(db) / hz - tx["cpu_seconds"] - int(ds) / hz) * 1e9 / u)
print(json.dumps(r))
PY
	tail -1 "$tmp/trials.jsonl" | python3 -c '
import json,sys; r=json.load(sys.stdin)
print("   %-9s %-7s %-5s %7d flows rep %d: offered %6.3f Mpps, delivered %6.3f Mpps, loss %5.1f%%, p50 %8.1f us, p99 %8.1f us, cpu own %6.0f ns/pkt" % (
 r["middle"], r["test"], r["size"], r["flows"], r["rep"], r["offered_pps"]/1e6, r["pps"]/1e6, r["loss_pct"], r["p50_us"], r["p99_us"], r["cpu_own_ns"]))'
}

maxflows=0
for f in $FLOWS; do [ "$f" -gt "$maxflows" ] && maxflows=$f; done

for middle in $MIDDLES; do
	yaml=${EDGE_YAML:-}
	case $middle in
	direct | linux-fwd | linux-nft) args=("$middle") ;;
	nullfwd) args=(nullfwd --middle-cpus 1) ;;
	edge-1w) args=(edge --queues 1 --middle-cpus 1) ;;
	edge-2w) args=(edge --queues 2 --middle-cpus 1,0) ;;
	edge-bp) args=(edge --queues 1 --middle-cpus 1) yaml="xdp: {busy_poll: true${BUSY_POLL_YAML:+, $BUSY_POLL_YAML}}" ;;
	*) echo "pps.sh: unknown middle $middle" >&2; exit 1 ;;
	esac
	[ "$FAMILY" != 6 ] || args+=(--ipv6)
	echo "== $middle"
	topo_id=$(EDGE_YAML="$yaml" EDGE_BIN="$tmp/edge" NULLFWD_BIN="$tmp/nullfwd" ./scripts/topo.sh up "${args[@]}" | tail -1)
	EDGE_PID=
	# shellcheck disable=SC1090
	. "/tmp/edgetopo/$topo_id/env"
	[ "$FAMILY" != 6 ] || { SRC_IP=$SRC_IP6 DST_IP=$DST_IP6; }
	rm -f "$tmp/ready"
	ip netns exec "$NS_S" taskset -c 0 "$tmp/edgegen" sink --dev "$DEV_S" --queues "$QUEUES" \
		--out "$tmp/sink.json" --expect-file "$tmp/tx.json" --ready "$tmp/ready" >"$tmp/sink-final.json" 2>"$tmp/sink.err" &
	sink_pid=$!
	for _ in $(seq 100); do [ -s "$tmp/ready" ] && break; sleep 0.05; done
	[ -s "$tmp/ready" ] || { cat "$tmp/sink.err"; echo "pps.sh: the sink did not start" >&2; exit 1; }
	./scripts/topo.sh pin "$topo_id"
	if [ "$maxflows" -ge 100000 ] && [ "$middle" != direct ] && [ "$middle" != linux-fwd ] && [ "$middle" != nullfwd ]; then
		# Every flow once, slowly enough for the middle to create it, so that the
		# measured trials see established flows (timeouts are 300 s in both).
		rm -f "$tmp/tx.json"
		ip netns exec "$NS_C" taskset -c 0 "$tmp/edgegen" tx --dev "$DEV_C" --dst-mac "$DST_MAC" \
			--src "$SRC_IP" --dst "$DST_IP" --queues "$QUEUES" --summary "$tmp/tx.json" \
			--flows "$maxflows" --count "$maxflows" --rate "$WARM_RATE" >/dev/null
		sleep 0.15
		rm -f "$tmp/sink.json"; kill -USR1 "$sink_pid"
		for _ in $(seq 100); do [ -s "$tmp/sink.json" ] && break; sleep 0.02; done
		python3 -c 'import json,sys; s=json.load(open(sys.argv[1])); print("   warm-up: %d of %d flows delivered (loss %.1f%%)" % (s["unique"], s["expected"], s["loss_pct"]))' "$tmp/sink.json"
	fi
	for size in $SIZES; do
		# trials as FLOWS:REP, all repeats of a flow count in a row, or with
		# ALTERNATE=1 the flow counts in turn within each repeat
		cells=()
		for a in $(if [ "$ALTERNATE" = 1 ]; then seq "$REPEAT"; else echo $FLOWS; fi); do
			for b in $(if [ "$ALTERNATE" = 1 ]; then echo $FLOWS; else seq "$REPEAT"; fi); do
				if [ "$ALTERNATE" = 1 ]; then cells+=("$b:$a"); else cells+=("$a:$b"); fi
			done
		done
		for cell in "${cells[@]}"; do
			flows=${cell%:*} rep=${cell#*:}
			trial "$middle" pps "$size" "$flows" "$rep" --size "$size" --flows "$flows" \
				--flow-offset $(( (rep * 7919 * 127) % flows )) --duration "${TRIAL}s"
		done
	done
	if [ "$LAT" = 1 ]; then
		for rep in $(seq "$REPEAT"); do
			trial "$middle" lat "$min_size" 1 "$rep" --size "$min_size" --flows 1 --rate "$LAT_RATE" --duration "${TRIAL}s"
		done
	fi
	if [ "$NEWFLOW" = 1 ]; then
		for rep in $(seq "$REPEAT"); do
			trial "$middle" newflow "$min_size" 0 "$rep" --size "$min_size" --new-flows --seed $((1000 + rep)) \
				--rate "$NF_RATE" --duration "${TRIAL}s"
		done
	fi
	kill -INT "$sink_pid" 2>/dev/null || true; wait "$sink_pid" 2>/dev/null || true; sink_pid=
	if [ -n "${EDGE_LOG:-}" ]; then
		kill -INT "$EDGE_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
		grep "stats:" "$EDGE_LOG" | sed "s/^.*stats: /   ${middle%%-*}: /" | head -12 || true
	fi
	./scripts/topo.sh down "$topo_id"; topo_id=
	unset EDGE_LOG EDGE_PID
done

elapsed=$(( $(date +%s) - t_start ))
python3 - "$tmp/trials.jsonl" "$OUT" "$elapsed" "$edge_src" "${SHORT:-}" "$MIN_FRAC" "$TRIAL" "$REPEAT" <<'PY'
import json, sys, statistics, os, csv, time
path, out, elapsed, edge_src, short, min_frac, trial_s, repeat = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
keys = []
groups = {}
for r in rows:
    k = (r["test"], r["size"], r["flows"], r["middle"])
    if k not in groups:
        keys.append(k); groups[k] = []
    groups[k].append(r)
med = {}
for k, rs in groups.items():
    m = {f: statistics.median([r[f] for r in rs]) for f in
         ("pps", "loss_pct", "p50_us", "p99_us", "cpu_own_ns", "cpu_sys_ns", "offered_pps")}
    m["n"] = len(rs)
    med[k] = m
order = {"direct": 0, "linux-fwd": 1, "linux-nft": 2, "nullfwd": 3, "edge-1w": 4, "edge-2w": 5, "edge-bp": 6}
tests = {"pps": 0, "lat": 1, "newflow": 2}
keys.sort(key=lambda k: (tests.get(k[0], 9), k[1] != "64", k[1], k[2], order.get(k[3], 9)))
hdr = ("%-7s %-5s %7s %-9s %8s %7s %9s %9s %8s %8s %8s %8s %8s %8s %8s" %
       ("test", "size", "flows", "middle", "Mpps", "loss%", "p50 us", "p99 us", "+p50", "+p99",
        "cpu own", "cpu sys", "/nft", "/ceil", "cpu/null"))
lines = [hdr, "-" * len(hdr)]
csvrows = []
for k in keys:
    t, size, flows, mid = k
    m = med[k]
    d = med.get((t, size, flows, "direct"))
    n = med.get((t, size, flows, "linux-nft"))
    z = med.get((t, size, flows, "nullfwd"))
    add50 = m["p50_us"] - d["p50_us"] if d else None
    add99 = m["p99_us"] - d["p99_us"] if d else None
    rn = m["pps"] / n["pps"] if mid.startswith("edge") and n and n["pps"] > 0 else None
    rc = m["pps"] / d["pps"] if mid != "direct" and d and d["pps"] > 0 else None
    # CPU per packet over the null forwarder's (cpu own): edge's own cost.
    rz = m["cpu_own_ns"] / z["cpu_own_ns"] if mid.startswith("edge") and z and z["cpu_own_ns"] > 0 else None
    f = lambda v, fmt: (fmt % v) if v is not None else "-"
    lines.append("%-7s %-5s %7s %-9s %8.3f %7.2f %9.1f %9.1f %8s %8s %8.0f %8.0f %8s %8s %8s" % (
        t, size, "new" if t == "newflow" else flows, mid, m["pps"] / 1e6, m["loss_pct"], m["p50_us"], m["p99_us"],
        f(add50, "%.1f") if mid != "direct" else "-", f(add99, "%.1f") if mid != "direct" else "-",
        m["cpu_own_ns"], m["cpu_sys_ns"], f(rn, "%.2fx"), ("%.0f%%" % (100 * rc)) if rc is not None else "-",
        f(rz, "%.2fx")))
    csvrows.append(dict(test=t, size=size, flows=flows, middle=mid, pps=round(m["pps"]), loss_pct=round(m["loss_pct"], 3),
                        p50_us=round(m["p50_us"], 1), p99_us=round(m["p99_us"], 1),
                        added_p50_us=None if add50 is None or mid == "direct" else round(add50, 1),
                        added_p99_us=None if add99 is None or mid == "direct" else round(add99, 1),
                        cpu_own_ns=round(m["cpu_own_ns"]), cpu_sys_ns=round(m["cpu_sys_ns"]),
                        edge_over_nft=None if rn is None else round(rn, 3),
                        over_ceiling=None if rc is None else round(rc, 3),
                        cpu_over_null=None if rz is None else round(rz, 3), trials=m["n"],
                        offered_pps=round(m["offered_pps"])))
head = ["pps.sh %s: %s, UDP over IPv%s, median of %s trial(s) of %s s each, edge from %s, %s s wall" % (
            "SHORT" if short else "full", time.strftime("%Y-%m-%d %H:%M:%S"), os.environ.get("FAMILY", "4"), repeat, trial_s, edge_src, elapsed),
        "Mpps: delivered to the sink (unique packets / the generator's sending time). loss%: 1 - unique/sent. p50/p99: one-way latency;",
        "+p50/+p99: minus direct's in the same cell. cpu own/sys: middle CPU ns per delivered packet (see pps.sh).",
        "/nft: edge Mpps over linux-nft's; /ceil: over direct's. cpu/null: edge cpu own over the null forwarder's (nullfwd: the floor).",
        "lat rows: 64 B, 1 flow, paced; newflow rows: every packet a new flow.", ""]
text = "\n".join(head + lines) + "\n"
# Targets (the 1-vCPU ones): edge-1w >= 2x linux-nft and >= 85% of the ceiling, 64 B.
tl = []
for fl in sorted({k[2] for k in keys if k[0] == "pps" and k[1] == "64"}):
    e, n, d = med.get(("pps", "64", fl, "edge-1w")), med.get(("pps", "64", fl, "linux-nft")), med.get(("pps", "64", fl, "direct"))
    if e and n and d:
        tl.append("target 64 B %7d flows: edge-1w %.3f Mpps = %.2fx linux-nft (target >= 2x: %s), %.0f%% of ceiling (target >= 85%%: %s)" % (
            fl, e["pps"] / 1e6, e["pps"] / n["pps"], "met" if e["pps"] >= 2 * n["pps"] else "NOT met",
            100 * e["pps"] / d["pps"], "met" if e["pps"] >= 0.85 * d["pps"] else "NOT met"))
# Target (later): 64 B CPU per packet <= 1.2x the null forwarder's at every flow count.
for fl in sorted({k[2] for k in keys if k[0] == "pps" and k[1] == "64"}):
    e, z = med.get(("pps", "64", fl, "edge-1w")), med.get(("pps", "64", fl, "nullfwd"))
    if e and z and z["cpu_own_ns"] > 0:
        tl.append("floor  64 B %7d flows: edge-1w %4.0f ns/pkt, nullfwd %4.0f ns/pkt: %.2fx (target <= 1.2x: %s); Mpps %.3f vs %.3f (%.0f%%)" % (
            fl, e["cpu_own_ns"], z["cpu_own_ns"], e["cpu_own_ns"] / z["cpu_own_ns"],
            "met" if e["cpu_own_ns"] <= 1.2 * z["cpu_own_ns"] else "NOT met",
            e["pps"] / 1e6, z["pps"] / 1e6, 100 * e["pps"] / z["pps"] if z["pps"] > 0 else 0))
if tl:
    text += "\n" + "\n".join(tl) + "\n"
print()
print(text, end="")
open(os.path.join(out, "pps.txt"), "w").write(text)
json.dump({"trials": rows, "medians": csvrows, "edge": edge_src, "elapsed_s": int(elapsed)},
          open(os.path.join(out, "pps.json"), "w"), indent=1)
with open(os.path.join(out, "pps.csv"), "w", newline="") as fh:
    w = csv.DictWriter(fh, fieldnames=list(csvrows[0].keys()))
    w.writeheader(); w.writerows(csvrows)
print("written: %s/pps.txt, pps.json, pps.csv" % out)
if short:
    bad = []
    for k, m in med.items():
        if (k[3].startswith("edge") or k[3] == "nullfwd") and k[0] == "pps":
            d = med.get((k[0], k[1], k[2], "direct"))
            if d is None or m["pps"] < float(min_frac) * d["pps"]:
                bad.append("%s %s B %d flows: %.3f Mpps" % (k[3], k[1], k[2], m["pps"] / 1e6))
    if bad:
        print("pps.sh SHORT: edge or nullfwd forwards (nearly) nothing (< %s of the ceiling): %s" % (min_frac, "; ".join(bad)), file=sys.stderr)
        sys.exit(1)
    print("SHORT check: edge and nullfwd delivered >= %s of the ceiling in every cell" % min_frac)
PY
