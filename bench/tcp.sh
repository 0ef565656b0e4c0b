#!/usr/bin/env bash
# tcp.sh: iperf3 TCP uploads through the middle box, edge against Linux.
#
# Lab (scripts/topo.sh): client ns -- middle ns -- server ns. iperf3's
# server runs in the server ns, its client in the client ns and sends to it
# through the middle box, which is one of
#   edge       edge with topo.sh's default configuration (SNAT automap, one
#              queue, one worker on CPU 1)
#   linux-nft  Linux forwarding + nftables masquerade + conntrack + a
#              stateful forward rule (topo.sh's)
#   direct     no middle box, the ends' veths joined (the lab's ceiling; not
#              run unless named in MODES)
# For each mode RUNS runs; a run brings a fresh lab up and runs one iperf3
# test per stream count of STREAMS (-P N) for DURATION seconds. The modes
# alternate run by run, in turn first (edge linux-nft, linux-nft edge, ...)
# so that drifting load on the shared machine falls on both. Medians of the
# runs and edge/Linux are printed as a table and written to OUT/tcp.txt,
# OUT/tcp.tsv (one row per test) and OUT/tcp.json (tests and medians).
#
#   ./bench/tcp.sh                  RUNS=3, DURATION=5, STREAMS="1 8" (root; about 2 minutes)
#   SHORT=1 ./bench/tcp.sh          one run of 2 s each: a smoke check that exits 1 when
#                                   edge moves under MIN_FRAC (0.05) of Linux's throughput
#                                   (or nothing), 2 when the lab or Linux fails
#   FAMILY=6 ./bench/tcp.sh         over IPv6 (see below)
#   MODES="direct edge linux-nft" EDGE_BIN=/path/to/edge OUT=/tmp/x ./bench/tcp.sh
#   PERF_DIR=/tmp/p ./bench/tcp.sh  perf record -g of the middle's CPU during each test of the first
#                                   run, into PERF_DIR/MODE-tcp-STREAMS.data, the middle's own PIDs
#                                   (NAPI kthread, edge) in .pids beside it (needs linux-perf)
#
# CPU placement (2 vCPUs, as bench/pps.sh): CPU 0 runs the iperf3 client and
# server and the server veth's NAPI kthread; CPU 1 the middle box: its inside
# veth's NAPI kthread (threaded) and edge. iperf3 3.12 runs all streams of
# -P 8 in one thread.
#
# Per test it records, besides iperf3's receiver throughput and the sender's
# TCP retransmissions:
#   cpu%    CPU time (utime+stime, /proc/PID/stat) of the middle's own
#           threads during the test, in % of one CPU: the inside veth's NAPI
#           kthread, where the data direction's receive, XDP redirect (edge)
#           or the whole forwarding, conntrack, NAT and segmentation (Linux)
#           run, plus the edge process (its workers' sendto included). Not
#           in it, for either: the ACK direction's receive on the outside
#           veth, which runs in softirq on the server's CPU 0 (a veth
#           delivers on the sender's CPU unless its NAPI is threaded) and is
#           not told apart from the server's own work. ns/seg is the same
#           per segment of the connection's MSS delivered.
#   rtt     the sender's mean smoothed RTT over its streams (iperf3's mean_rtt).
#   edge's losses (edge stats, the test's difference): AF_XDP fill_ring_empty,
#           rx_ring_full and tx_device_drops summed over the interfaces, the
#           drop reason tx_full, and every other drop reason that counted.
#   veth drops: rx+tx dropped over the four veths (both modes), and by veth
#           (c: client, i/o: the middle's inside/outside, s: server).
#
# ACKS_ON_MIDDLE=1 makes the outside veth's NAPI threaded too, its kthread
# on the middle's CPU and in cpu%: all of the middle box's receive work, both
# directions, on its CPU and counted, for Linux and edge alike.
#
# FAMILY=6: the lab is brought up dual-stack (topo.sh up --ipv6: fd00:10::/64
# inside, 2001:db8:113::/64 outside, Linux with an ip6 table like its ip one,
# edge with the IPv6 routes and automap taking both addresses) and iperf3
# runs over IPv6.
#
# Environment: RUNS (3), DURATION (5), STREAMS ("1 8"), MODES ("edge
# linux-nft"), FAMILY (4), ACKS_ON_MIDDLE (unset), MIN_FRAC (0.05, SHORT), OUT (bench/out),
# EDGE_BIN (default: built from the working tree), PORT (5201), KEEP
# (keep the work directory).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
. scripts/need.sh
. bench/lib.sh

die() { echo "tcp.sh: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
if [ -n "${SHORT:-}" ]; then
	: "${RUNS:=1}" "${DURATION:=2}"
fi
RUNS=${RUNS:-3}
DURATION=${DURATION:-5}
STREAMS=${STREAMS:-1 8}
MODES=${MODES:-edge linux-nft}
FAMILY=${FAMILY:-4}
MIN_FRAC=${MIN_FRAC:-0.05}
OUT=${OUT:-bench/out}
PORT=${PORT:-5201}
PERF_DIR=${PERF_DIR:-}
for m in $MODES; do
	case $m in direct | edge | linux-nft) ;; *) die "MODES: unknown mode $m (direct, edge, linux-nft)" ;; esac
done
case $FAMILY in 4 | 6) ;; *) die "FAMILY must be 4 or 6" ;; esac
if [ -n "${SHORT:-}" ] && ! { [[ " $MODES " == *" edge "* ]] && [[ " $MODES " == *" linux-nft "* ]]; }; then
	die "SHORT compares edge with linux-nft: MODES must name both"
fi

need iperf3 python3 ethtool nft:nftables || die "cannot install what it needs (apt-get's output above)"
mkdir -p "$OUT"
tmp=$(mktemp -d /tmp/tcpbench.XXXXXX)
topo_id='' srv_pid=''
cleanup() {
	[ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null && wait "$srv_pid" 2>/dev/null || true
	[ -n "$topo_id" ] && LOGDIR=$tmp ./scripts/topo.sh down "$topo_id" >/dev/null 2>&1 || true
	[ -n "${KEEP:-}" ] && echo "work directory: $tmp" >&2 || rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

t_start=$(date +%s)
echo "== build edge"
build_edge "$tmp/edge"
echo "   edge: $EDGE_SRC; iperf3 $(iperf3 --version | awk 'NR == 1 {print $2}'); IPv$FAMILY"
if [ "$FAMILY" = 6 ]; then DST=2001:db8:113::2; else DST=203.0.113.2; fi

# direct_routes: the ends' routes to each other over their one veth (topo.sh
# gives the direct lab none: its generator sends frames, not routed packets).
direct_routes() {
	if [ "$FAMILY" = 6 ]; then
		ip -n "$NS_C" -6 route add 2001:db8:113::/64 dev "$DEV_C"
		ip -n "$NS_S" -6 route add fd00:10::/64 dev "$DEV_S"
	else
		ip -n "$NS_C" route add 203.0.113.0/24 dev "$DEV_C"
		ip -n "$NS_S" route add 10.0.0.0/24 dev "$DEV_S"
	fi
}

# veth_drops: "LETTER RX TX" per veth of the lab (c: client, i/o: the
# middle's inside/outside, s: server): its rx and tx dropped counters.
veth_drops() {
	local x l ns dev
	for x in "c:$NS_C:$DEV_C" "i:$NS_M:$DEV_IN" "o:$NS_M:$DEV_OUT" "s:$NS_S:$DEV_S"; do
		IFS=: read -r l ns dev <<<"$x"
		ip -n "$ns" -s -j link show "$dev" 2>/dev/null | python3 -c '
import json, sys
s = json.load(sys.stdin)[0]["stats64"]
print(sys.argv[1], s["rx"]["dropped"], s["tx"]["dropped"])' "$l" 2>/dev/null || true
	done
}

: >"$tmp/tests.jsonl"

# test_one MODE RUN STREAMS: one iperf3 test on the lab that is up; appends
# its row to tests.jsonl and prints it.
test_one() {
	local mode=$1 run=$2 p=$3 d=$tmp/$1-$2-$3
	mkdir -p "$d"
	local mid_pids="" fam=()
	[ "$mode" != direct ] && mid_pids="$(napi_pids $MIDDLE_RX) ${EDGE_PID:-}"
	[ "$FAMILY" = 6 ] && fam=(-6)
	cut -d ' ' -f 1 /proc/loadavg >"$d/load"
	local perf_pid=''
	if [ -n "$PERF_DIR" ] && [ "$run" = 1 ] && [ "$mode" != direct ]; then
		mkdir -p "$PERF_DIR"
		echo $mid_pids | tr ' ' , >"$PERF_DIR/$mode-tcp-$p.pids"
		perf record -q -g -C "$MIDDLE_CPUS" -o "$PERF_DIR/$mode-tcp-$p.data" -- sleep "$DURATION" >/dev/null 2>&1 &
		perf_pid=$!
	fi
	if [ "$mode" = edge ]; then edge_stats_json "$tmp/edge" "$EDGE_SOCK" >"$d/stats0.json"; fi
	local t0 w0 t1 w1 rc=0
	grep '^cpu[0-9]' /proc/stat >"$d/stat0"; veth_drops >"$d/veth0"; t0=$(proc_ticks $mid_pids); w0=$(date +%s%N)
	timeout $((DURATION + 30)) ip netns exec "$NS_C" taskset -c 0 iperf3 "${fam[@]}" -c "$DST" -p "$PORT" \
		-t "$DURATION" -P "$p" -J --connect-timeout 3000 >"$d/iperf3.json" 2>"$d/iperf3.err" || rc=$?
	w1=$(date +%s%N); t1=$(proc_ticks $mid_pids); veth_drops >"$d/veth1"; grep '^cpu[0-9]' /proc/stat >"$d/stat1"
	[ -z "$perf_pid" ] || wait "$perf_pid" || true
	if [ "$mode" = edge ]; then edge_stats_json "$tmp/edge" "$EDGE_SOCK" >"$d/stats1.json"; fi
	python3 - "$mode" "$run" "$p" "$d" "$rc" $((t1 - t0)) $((w1 - w0)) "$(getconf CLK_TCK)" >>"$tmp/tests.jsonl" <<'PY'
import json, os, sys
mode, run, p, d, rc, dt, dw, hz = sys.argv[1:]
def veth(n):
    v = {}
    for line in open(os.path.join(d, n)):
        l, rx, tx = line.split()
        v[l] = (int(rx), int(tx))
    return v
v0, v1 = veth("veth0"), veth("veth1")
def stat(n):
    c = {}
    for line in open(os.path.join(d, n)):
        f = line.split()
        v = [int(x) for x in f[1:9]]
        c[f[0]] = (v[0] + v[1] + v[2] + v[5] + v[6], sum(v))  # busy (user nice system irq softirq), all
    return c
c0, c1 = stat("stat0"), stat("stat1")
busy = {k: round(100 * (c1[k][0] - c0[k][0]) / max(c1[k][1] - c0[k][1], 1)) for k in c1 if k in c0}
vd = {l: (v1[l][0] - v0.get(l, (0, 0))[0], v1[l][1] - v0.get(l, (0, 0))[1]) for l in v1}
r = dict(mode=mode, run=int(run), streams=int(p), load=float(open(os.path.join(d, "load")).read()),
         gbps=0.0, retrans=None, rtt_us=None, cpu_pct=None, ns_per_seg=None, mss=None, ends_cpu_pct=None,
         fill_ring_empty=None, rx_ring_full=None, tx_device_drops=None, tx_full=None, drops={},
         veth_drops=sum(a + b for a, b in vd.values()),
         veth_drops_by=" ".join("%s:%d/%d" % (l, a, b) for l, (a, b) in sorted(vd.items(), key=lambda x: "cios".index(x[0])) if a or b),
         cpus_busy_pct=busy, error="")
try:
    j = json.load(open(os.path.join(d, "iperf3.json")))
except Exception:
    j = {}
err = j.get("error") or ""
if not err and int(rc) != 0:
    err = "iperf3 exit %s: %s" % (rc, open(os.path.join(d, "iperf3.err")).read().strip()[:200])
if not j and not err:
    err = "no output from iperf3"
r["error"] = err
end = j.get("end", {})
if not err and end:
    r["gbps"] = end["sum_received"]["bits_per_second"] / 1e9
    r["retrans"] = end["sum_sent"].get("retransmits")
    rtts = [s["sender"]["mean_rtt"] for s in end.get("streams", []) if "mean_rtt" in s.get("sender", {})]
    r["rtt_us"] = round(sum(rtts) / len(rtts)) if rtts else None
    cu = end.get("cpu_utilization_percent", {})
    r["ends_cpu_pct"] = round(cu.get("host_total", 0) + cu.get("remote_total", 0), 1)
    r["mss"] = j.get("start", {}).get("tcp_mss_default") or 1448
    if mode != "direct" and float(dw) > 0:
        frac = int(dt) / float(hz) / (int(dw) / 1e9)
        r["cpu_pct"] = round(100 * frac, 1)
        segs = r["gbps"] * 1e9 / 8 / r["mss"]
        r["ns_per_seg"] = round(frac * 1e9 / segs) if segs > 0 else None
if mode == "edge":
    def load(n):
        try:
            return json.load(open(os.path.join(d, n)))
        except Exception:
            return {}
    a, b = load("stats0.json"), load("stats1.json")
    def ifsum(s, k):
        return sum(int(i.get(k, 0)) for i in s.get("interfaces", []))
    if b:
        for k, f in (("fill_ring_empty", "xsk_fill_ring_empty"), ("rx_ring_full", "xsk_rx_ring_full"),
                     ("tx_device_drops", "xsk_tx_device_drops")):
            r[k] = ifsum(b, f) - ifsum(a, f)
        da, db = a.get("drops", {}), b.get("drops", {})
        delta = {k: int(v) - int(da.get(k, 0)) for k, v in db.items()}
        r["tx_full"] = delta.pop("tx_full", 0)
        r["drops"] = {k: v for k, v in sorted(delta.items()) if v}
print(json.dumps(r))
PY
	tail -1 "$tmp/tests.jsonl" | python3 -c '
import json, sys
r = json.load(sys.stdin)
f = lambda v, fmt="%s": "-" if v is None else fmt % v
s = "   %-9s run %d, %d stream(s): %6.2f Gbit/s, retrans %6s, mean RTT %s us, middle cpu %5s%% (%5s ns/seg), veth drops %s (rx/tx %s), machine busy %s, load %.2f" % (
    r["mode"], r["run"], r["streams"], r["gbps"], f(r["retrans"]), f(r.get("rtt_us")), f(r["cpu_pct"], "%.0f"), f(r["ns_per_seg"]), r["veth_drops"], r["veth_drops_by"] or "-",
    "/".join("%d%%" % v for k, v in sorted(r["cpus_busy_pct"].items())), r["load"])
if r["mode"] == "edge":
    s += "; edge fill_ring_empty %s, rx_ring_full %s, tx_device_drops %s, tx_full %s, drops %s" % (
        f(r["fill_ring_empty"]), f(r["rx_ring_full"]), f(r["tx_device_drops"]), f(r["tx_full"]),
        ",".join("%s=%d" % kv for kv in r["drops"].items()) or "none")
if r["error"]:
    s += "  FAILED: " + r["error"]
print(s)'
}

# run_mode MODE RUN: a fresh lab, one test per stream count, the lab down.
run_mode() {
	local mode=$1 run=$2 p
	local v6=()
	[ "$FAMILY" != 6 ] || v6=(--ipv6)
	topo_id=$(EDGE_BIN="$tmp/edge" ./scripts/topo.sh up "$mode" --middle-cpus 1 --other-cpu 0 "${v6[@]}" | tail -1)
	EDGE_PID='' EDGE_SOCK='' EDGE_CONFIG=''
	# shellcheck disable=SC1090
	. "/tmp/edgetopo/$topo_id/env"
	[ "$mode" != direct ] || direct_routes
	ip netns exec "$NS_S" taskset -c 0 iperf3 -s -p "$PORT" >"$tmp/server.log" 2>&1 </dev/null &
	srv_pid=$!
	local ok=
	for _ in $(seq 100); do
		ip netns exec "$NS_S" ss -Hltn "sport = :$PORT" 2>/dev/null | grep -q . && { ok=1; break; }
		sleep 0.05
	done
	[ -n "$ok" ] || { cat "$tmp/server.log" >&2; die "iperf3 server did not start"; }
	if [ -n "${ACKS_ON_MIDDLE:-}" ] && [ "$mode" != direct ]; then
		# The outside veth's receive (the ACK direction) in a NAPI kthread on
		# the middle's CPU too, and counted in its CPU.
		echo 1 | ip netns exec "$NS_M" tee "/sys/class/net/$DEV_OUT/threaded" >/dev/null
		local pid
		for pid in $(napi_pids "$DEV_OUT"); do taskset -pc "$MIDDLE_CPUS" "$pid" >/dev/null; done
		MIDDLE_RX="$MIDDLE_RX $DEV_OUT"
	fi
	for p in $STREAMS; do
		test_one "$mode" "$run" "$p"
	done
	kill "$srv_pid" 2>/dev/null || true
	wait "$srv_pid" 2>/dev/null || true
	srv_pid=
	LOGDIR=$tmp ./scripts/topo.sh down "$topo_id" >/dev/null
	topo_id=
}

echo "== $RUNS run(s) of: $MODES (alternated, in turn first); streams: $STREAMS; ${DURATION} s each; load average $(cut -d ' ' -f 1-3 /proc/loadavg)"
read -ra modes <<<"$MODES"
for run in $(seq "$RUNS"); do
	n=${#modes[@]}
	for ((i = 0; i < n; i++)); do
		run_mode "${modes[$(((i + run - 1) % n))]}" "$run"
	done
done

elapsed=$(( $(date +%s) - t_start ))
rc=0
python3 - "$tmp/tests.jsonl" "$OUT" "$elapsed" "$EDGE_SRC" "${SHORT:-}" "$MIN_FRAC" "$DURATION" "$RUNS" "$FAMILY" \
	"$(cut -d ' ' -f 1-3 /proc/loadavg)" "$(iperf3 --version | awk 'NR == 1 {print $2}')" "${ACKS_ON_MIDDLE:-}" <<'PY' || rc=$?
import json, sys, statistics, os, time
path, out, elapsed, edge_src, short, min_frac, dur, runs, family, load, iperf, acks = sys.argv[1:]
rows = [json.loads(l) for l in open(path) if l.strip()]
order = {"direct": 0, "linux-nft": 1, "edge": 2}
keys = sorted({(r["streams"], r["mode"]) for r in rows}, key=lambda k: (k[0], order[k[1]]))
def med(rs, f):
    v = [r[f] for r in rs if r[f] is not None]
    return statistics.median(v) if v else None
meds = {}
for k in keys:
    rs = [r for r in rows if (r["streams"], r["mode"]) == k]
    ok = [r for r in rs if not r["error"]]
    m = dict(streams=k[0], mode=k[1], tests=len(rs), failed=len(rs) - len(ok),
             gbps=statistics.median([r["gbps"] for r in rs]),
             gbps_min=min(r["gbps"] for r in rs), gbps_max=max(r["gbps"] for r in rs))
    # Throughput-derived figures from the tests that ran; loss counters
    # from every test (a failed one's drops say why it failed).
    for f in ("retrans", "rtt_us", "cpu_pct", "ns_per_seg"):
        m[f] = med(ok, f)
    for f in ("veth_drops", "fill_ring_empty", "rx_ring_full", "tx_device_drops", "tx_full"):
        m[f] = med(rs, f)
    m["cpus_busy_pct"] = {c: statistics.median([r["cpus_busy_pct"].get(c, 0) for r in rs])
                          for c in sorted({c for r in rs for c in r["cpus_busy_pct"]})}
    other = {}
    for r in rs:
        for dk, dv in r["drops"].items():
            other.setdefault(dk, []).append(dv)
    m["drops"] = {dk: statistics.median(v + [0] * (len(rs) - len(v))) for dk, v in sorted(other.items())}
    meds[k] = m
for (p, mode), m in meds.items():
    l = meds.get((p, "linux-nft"))
    m["edge_over_linux"] = round(m["gbps"] / l["gbps"], 3) if mode == "edge" and l and l["gbps"] > 0 else None
    dct = meds.get((p, "direct"))
    m["over_direct"] = round(m["gbps"] / dct["gbps"], 3) if mode != "direct" and dct and dct["gbps"] > 0 else None
f = lambda v, fmt="%s": "-" if v is None else fmt % v
hdr = "%7s %-9s %7s %11s %6s %7s %5s %6s %7s %9s %10s %7s %6s %6s  %s" % (
    "streams", "mode", "Gbit/s", "(min-max)", "/linux", "/direct", "cpu%", "ns/seg", "retr", "vethdrop",
    "fill_empty", "tx_full", "busy%", "failed", "other edge losses (median per test)")
lines = [hdr, "-" * len(hdr)]
for k in keys:
    m = meds[k]
    e = m["mode"] == "edge"
    other = ["rx_ring_full=%g" % m["rx_ring_full"]] if e and m["rx_ring_full"] else []
    other += ["tx_device_drops=%g" % m["tx_device_drops"]] if e and m["tx_device_drops"] else []
    other += ["%s=%g" % kv for kv in m["drops"].items() if kv[1]]
    lines.append("%7d %-9s %7.2f %11s %6s %7s %5s %6s %7s %9s %10s %7s %6s %6s  %s" % (
        m["streams"], m["mode"], m["gbps"], "(%.2f-%.2f)" % (m["gbps_min"], m["gbps_max"]),
        f(m["edge_over_linux"], "%.2fx"), f(m["over_direct"] and 100 * m["over_direct"], "%.0f%%"), f(m["cpu_pct"], "%.0f"), f(m["ns_per_seg"], "%.0f"), f(m["retrans"], "%g"),
        f(m["veth_drops"], "%g"), f(m["fill_ring_empty"], "%g") if e else "-", f(m["tx_full"], "%g") if e else "-",
        "/".join("%g" % v for v in m["cpus_busy_pct"].values()) or "-",
        "%d/%d" % (m["failed"], m["tests"]), " ".join(other) or ("none" if e else "")))
head = ["tcp.sh %s: %s, iperf3 %s TCP over IPv%s, median of %s run(s) of %s s per mode and stream count, modes alternated; edge from %s; %s s wall; load average at the end %s" % (
            "SHORT" if short else "full", time.strftime("%Y-%m-%d %H:%M:%S"), iperf, family, runs, dur, edge_src, elapsed, load),
        "Gbit/s: iperf3's receiver; /linux: edge over linux-nft; /direct: over no middle box (MODES with direct); cpu%: the middle's own threads in % of a CPU, ns/seg: that per MSS segment delivered;",
        ("ACKS_ON_MIDDLE: both veths' NAPI kthreads (the middle CPU) + edge" if acks else
         "the inside veth's NAPI kthread + edge (the ACK direction's receive on the outside veth runs on the server's CPU and is in neither)") + ";",
        "retr: TCP retransmissions of the sender; vethdrop: packets the lab's veths dropped (a full receive ring: the next hop's CPU did not keep up);",
        "edge's counters are the test's: AF_XDP fill_ring_empty, drop reason tx_full, the others; busy%: each CPU of the machine (/proc/stat,",
        "every tenant: the machine is shared), CPU 0 the iperf3 ends, CPU 1 the middle box.", ""]
text = "\n".join(head + lines) + "\n"
print()
print(text, end="")
open(os.path.join(out, "tcp.txt"), "w").write(text)
cols = ["mode", "run", "streams", "gbps", "retrans", "rtt_us", "cpu_pct", "ns_per_seg", "mss", "ends_cpu_pct", "veth_drops", "veth_drops_by", "cpus_busy_pct",
        "fill_ring_empty", "rx_ring_full", "tx_device_drops", "tx_full", "drops", "load", "error"]
with open(os.path.join(out, "tcp.tsv"), "w") as fh:
    fh.write("\t".join(cols) + "\n")
    for r in rows:
        v = dict(r, gbps=round(r["gbps"], 4), drops=",".join("%s=%d" % kv for kv in r["drops"].items()),
                 cpus_busy_pct=",".join("%s=%d" % kv for kv in sorted(r["cpus_busy_pct"].items())))
        fh.write("\t".join("" if v[c] is None else str(v[c]) for c in cols) + "\n")
json.dump({"tests": rows, "medians": [meds[k] for k in keys], "edge": edge_src, "family": int(family),
           "duration_s": int(dur), "runs": int(runs), "acks_on_middle": bool(acks), "iperf3": iperf, "elapsed_s": int(elapsed)},
          open(os.path.join(out, "tcp.json"), "w"), indent=1)
print("written: %s/tcp.txt, tcp.tsv, tcp.json" % out)
failed = [r for r in rows if r["error"]]
for r in failed:
    print("tcp.sh: %s run %d, %d stream(s) failed: %s" % (r["mode"], r["run"], r["streams"], r["error"]), file=sys.stderr)
if short:
    bad, broken = [], []
    for (p, mode), m in meds.items():
        if mode != "edge":
            continue
        l = meds.get((p, "linux-nft"))
        if l is None or l["failed"] or l["gbps"] <= 0:
            broken.append("%d stream(s): Linux moved nothing, nothing to compare with" % p)
        elif m["failed"] or m["gbps"] < float(min_frac) * l["gbps"]:
            bad.append("%d stream(s): edge %.3f Gbit/s, Linux %.3f" % (p, m["gbps"], l["gbps"]))
    if broken:
        print("tcp.sh SHORT: the lab is broken: " + "; ".join(broken), file=sys.stderr)
        sys.exit(2)
    if bad:
        print("tcp.sh SHORT: edge moves (nearly) nothing (< %s of Linux): %s" % (min_frac, "; ".join(bad)), file=sys.stderr)
        sys.exit(1)
    print("SHORT check: edge moved >= %s of Linux's throughput at every stream count" % min_frac)
elif failed:
    sys.exit(1)
PY
exit "$rc"
