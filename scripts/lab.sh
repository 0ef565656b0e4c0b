#!/usr/bin/env bash
# lab.sh: run edge between a client and a server namespace, send it real
# traffic, show what crossed, and tear everything down (also on failure).
#
#   ./scripts/lab.sh                   edge in the middle, dual-stack: a timed 256 MiB download from
#                                      nginx over IPv4 and the same over IPv6, an unsolicited inbound
#                                      connection in each family (dropped: checked on the wire), the
#                                      control plane, edge's counters
#   FAMILIES=4 ./scripts/lab.sh        one family only (4 or 6; default "4 6": both, IPv4 first)
#   COMPARE=linux ./scripts/lab.sh     then the same download with Linux in the middle (nftables
#                                      masquerade + conntrack + a stateful forward rule) in the same
#                                      namespaces, and both throughputs side by side with their ratio
#   COMPARE=linux ROUNDS=3 ./scripts/lab.sh   edge and Linux alternated 3 times (edge restarted
#                                      each round), each run and the medians, their ratio
#   PEER=linux ./scripts/lab.sh        the lab with Linux in the middle instead of edge
#   SIZE=1073741824 ./scripts/lab.sh   size of the timed download in bytes (default 268435456)
#   STREAMS=8 ./scripts/lab.sh         that many downloads of SIZE bytes at once (default 1)
#   KEEP=1 ./scripts/lab.sh            leave the lab up afterwards (prints how to remove it)
#   RESULT=FILE ./scripts/lab.sh       write the timed download's bytes per second to FILE (the
#                                      first family's: IPv4 unless FAMILIES=6)
#   EDGE_ARGS="--cpuprofile /tmp/edge.prof" ./scripts/lab.sh   extra flags for edge run
#
# The server is nginx (sendfile; its configuration, logs and pid in a temp
# directory, no system configuration read or written, stopped at the end).
# The timed file is sparse in tmpfs (/dev/shm): zeros that take no memory and
# no disk, so the figure is the path's, not the server's. Its integrity is
# not checked (zeros); a 4 MiB random file is, first (it also warms edge's
# neighbour entries). Throughput is bytes over the wall time of all the
# downloads; the server's TCP retransmissions during them and, with edge,
# what edge dropped or lost (AF_XDP rings) during them are printed beside it.
#
# With edge in the middle it then drives the control plane as an operator
# would: edge status, edge flows, edge config apply (a rule that drops new
# HTTP connections, checked, then the original rules back), edge events,
# edge stats and the Prometheus /metrics page.
#
#   client ns  c0 10.0.0.2/24    ── in 10.0.0.1/24    [ edge ns: edge run ] out 203.0.113.1/24     ── s0 203.0.113.2/24      server ns
#                 fd00:10::2/64      fd00:10::1/64                               2001:db8:113::1/64       2001:db8:113::2/64
#
# The server has no route back to 10.0.0.0/24 or fd00:10::/64: it can only
# answer because the middle translates the client to 203.0.113.1 or
# 2001:db8:113::1 (SNAT automap: the outside interface's address of each
# family, from one configuration line), which the lab checks in nginx's
# access log. Neighbours are resolved by the kernels (ARP, ND), not set
# statically. Needs root; installs ethtool, curl,
# tcpdump, nginx, jq (and nftables for PEER=linux or COMPARE=linux) if
# missing (apt, scripts/need.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "lab.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
PEER=${PEER:-edge}
COMPARE=${COMPARE:-}
SIZE=${SIZE:-268435456}
STREAMS=${STREAMS:-1}
ROUNDS=${ROUNDS:-1}
FAMILIES=${FAMILIES:-4 6}
case $PEER in edge | linux) ;; *) echo "lab.sh: PEER is edge or linux, not '$PEER'" >&2; exit 1 ;; esac
case $COMPARE in "" | linux) ;; *) echo "lab.sh: COMPARE is linux (or unset), not '$COMPARE'" >&2; exit 1 ;; esac
[ -z "$COMPARE" ] || [ "$PEER" = edge ] || { echo "lab.sh: COMPARE=linux compares edge with Linux: leave PEER unset" >&2; exit 1; }
[[ $SIZE =~ ^[1-9][0-9]*$ && $STREAMS =~ ^[1-9][0-9]*$ && $ROUNDS =~ ^[1-9][0-9]*$ ]] ||
	{ echo "lab.sh: SIZE, STREAMS and ROUNDS are positive integers" >&2; exit 1; }
[[ $FAMILIES =~ ^[46]( [46])?$ ]] || { echo "lab.sh: FAMILIES is \"4 6\", \"4\" or \"6\", not '$FAMILIES'" >&2; exit 1; }

# The addressing plan, by family: client, edge inside, edge outside (the
# SNAT address), server.
declare -A CLIENT=([4]=10.0.0.2 [6]=fd00:10::2) INSIDE=([4]=10.0.0.1 [6]=fd00:10::1)
declare -A SNAT=([4]=203.0.113.1 [6]=2001:db8:113::1) SERVER=([4]=203.0.113.2 [6]=2001:db8:113::2)
declare -A HOSTPORT=([4]=203.0.113.2:8080 [6]='[2001:db8:113::2]:8080')
. scripts/need.sh
need ethtool curl tcpdump nginx jq
if [ "$PEER" = linux ] || [ -n "$COMPARE" ]; then need nft:nftables; fi

id=$$
C=edgelab-c-$id E=edgelab-e-$id S=edgelab-s-$id
tmp=$(mktemp -d /tmp/edgelab.XXXXXX)
www=$(mktemp -d /dev/shm/edgelab.XXXXXX 2>/dev/null || mktemp -d /tmp/edgelab-www.XXXXXX)
edge_pid= nginx_pid= capture_pid= curl_pids=
cleanup() {
	for p in $curl_pids $capture_pid; do kill "$p" 2>/dev/null || true; done
	if [ -n "$edge_pid" ] && kill -0 "$edge_pid" 2>/dev/null; then
		kill -INT "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
	fi
	if [ -n "$nginx_pid" ] && kill -0 "$nginx_pid" 2>/dev/null; then
		kill -TERM "$nginx_pid"; wait "$nginx_pid" 2>/dev/null || true
	fi
	rm -rf "$www"
	if [ -z "${KEEP:-}" ]; then
		for ns in $C $E $S; do ip netns del "$ns" 2>/dev/null || true; done
		rm -rf "$tmp"
	else
		echo "lab kept: namespaces $C $E $S, files in $tmp; remove with: ip netns del $C; ip netns del $E; ip netns del $S; rm -r $tmp"
	fi
}
trap cleanup EXIT

echo "== build"
go build -o "$tmp/edge" ./cmd/edge

echo "== namespaces $C (client) $E (edge) $S (server)"
for ns in $C $E $S; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
ip link add lab$id-a type veth peer name lab$id-b
ip link set lab$id-a netns $C name c0
ip link set lab$id-b netns $E name in
ip link add lab$id-c type veth peer name lab$id-d
ip link set lab$id-c netns $E name out
ip link set lab$id-d netns $S name s0
for x in "$C c0 10.0.0.2/24 fd00:10::2/64" "$E in 10.0.0.1/24 fd00:10::1/64" \
	"$E out 203.0.113.1/24 2001:db8:113::1/64" "$S s0 203.0.113.2/24 2001:db8:113::2/64"; do
	set -- $x
	# IPv6 only when the lab uses it; no duplicate address detection (the
	# addresses are the lab's, and DAD would hold them back for a second).
	if [[ " $FAMILIES " == *" 6 "* ]]; then
		ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".disable_ipv6=0 net.ipv6.conf."$2".accept_dad=0
		ip -n "$1" addr add "$4" dev "$2" nodad
	else
		ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".disable_ipv6=1
	fi
	[[ " $FAMILIES " != *" 4 "* ]] || ip -n "$1" addr add "$3" dev "$2"
	ip -n "$1" link set "$2" up
done
[[ " $FAMILIES " != *" 4 "* ]] || ip -n $C route add default via "${INSIDE[4]}"
[[ " $FAMILIES " != *" 6 "* ]] || ip -n $C -6 route add default via "${INSIDE[6]}"
# veth hands kernel-sent TCP/UDP over with only a partial checksum; real
# NICs complete it before the wire, so the lab does too.
ip netns exec $C ethtool -K c0 tx off >/dev/null
ip netns exec $S ethtool -K s0 tx off >/dev/null

cat >"$tmp/edge.yaml" <<EOF
interfaces:
  inside: {name: in}
  outside: {name: out}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
  - {dst: "fd00:10::/64", interface: inside}
  - {dst: "2001:db8:113::/64", interface: outside}
snat: {mode: automap, ports: "1024-65535"}
rules:
  - {name: outbound, zone: inside, action: allow}
default_action: drop
EOF

# linux_middle: Linux forwards in $E instead of edge: nftables masquerade,
# conntrack and a stateful forward rule (what edge's configuration says), in
# both families (one inet table).
linux_middle() {
	ip netns exec $E sysctl -qw net.ipv4.ip_forward=1 net.ipv6.conf.all.forwarding=1
	ip netns exec $E nft -f - <<NFT
table inet lab {
	chain filter_forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "in" oifname "out" ct state new accept
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100;
		oifname "out" masquerade
	}
}
NFT
}

# The server: nginx in $S, one process (master_process off: nothing forks,
# nothing outlives its pid), everything it writes in $tmp/ngx.
echo "== nginx (in $S): $SIZE bytes of zeros (sparse, tmpfs) and a 4 MiB random file"
truncate -s "$SIZE" "$www/zeros"
head -c 4194304 /dev/urandom >"$www/check"
mkdir -p "$tmp/ngx"
listen=$(for f in $FAMILIES; do printf '\t\tlisten %s;\n' "${HOSTPORT[$f]}"; done)
cat >"$tmp/ngx/nginx.conf" <<NGINX
daemon off;
master_process off;
worker_processes 1;
pid $tmp/ngx/nginx.pid;
error_log $tmp/ngx/error.log error;
events { worker_connections 256; }
http {
	log_format lab '\$remote_addr \$status \$body_bytes_sent \$request_uri';
	access_log $tmp/ngx/access.log lab;
	client_body_temp_path $tmp/ngx/body;
	proxy_temp_path $tmp/ngx/proxy;
	fastcgi_temp_path $tmp/ngx/fastcgi;
	uwsgi_temp_path $tmp/ngx/uwsgi;
	scgi_temp_path $tmp/ngx/scgi;
	default_type application/octet-stream;
	sendfile on;
	tcp_nopush on;
	server {
$listen
		root $www;
	}
}
NGINX
ip netns exec $S nginx -c "$tmp/ngx/nginx.conf" -p "$tmp/ngx" -e "$tmp/ngx/error.log" >"$tmp/ngx/nginx.out" 2>&1 &
nginx_pid=$!
for f in $FAMILIES; do
	for _ in $(seq 50); do ip netns exec $S bash -c "exec 3<>/dev/tcp/${SERVER[$f]}/8080" 2>/dev/null && break; sleep 0.1; done
	ip netns exec $S bash -c "exec 3<>/dev/tcp/${SERVER[$f]}/8080" 2>/dev/null ||
		{ cat "$tmp/ngx/nginx.out" "$tmp/ngx/error.log" >&2; echo "lab.sh: nginx did not start on ${SERVER[$f]}" >&2; exit 1; }
done

# start_edge LOG: edge run in $E, logging to LOG; returns once it forwards.
start_edge() {
	ip netns exec $E "$tmp/edge" run --config "$tmp/edge.yaml" --socket "$tmp/edge.sock" \
		--metrics 127.0.0.1:9100 ${EDGE_ARGS:-} >"$1" 2>&1 &
	edge_pid=$!
	for _ in $(seq 50); do grep -q "forwarding between" "$1" && break; sleep 0.1; done
	grep -q "forwarding between" "$1" || { cat "$1"; echo "lab.sh: edge did not start" >&2; exit 1; }
}

# stop_edge: edge stopped (it logs its counters as it exits), and nothing of
# it left on the interfaces for Linux to forward through.
stop_edge() {
	kill -INT "$edge_pid"; wait "$edge_pid" || true; edge_pid=
	for dev in in out; do
		if ip -n $E link show dev $dev | grep -q xdp; then
			ip -n $E link show dev $dev >&2; echo "lab.sh: edge left its XDP program on $dev" >&2; exit 1
		fi
	done
}

# linux_off: Linux stops forwarding in $E (for edge to take over).
linux_off() {
	ip netns exec $E nft delete table inet lab
	ip netns exec $E sysctl -qw net.ipv4.ip_forward=0 net.ipv6.conf.all.forwarding=0
}

if [ "$PEER" = linux ]; then
	echo "== Linux in the middle (in $E): forwarding, nftables masquerade + conntrack + stateful rule"
	linux_middle
else
	echo "== edge run (in $E)"
	start_edge "$tmp/edge.log"
	sed 's/^/  edge: /' "$tmp/edge.log"
fi

# check_file WHO FAMILY: the random file, downloaded over IPv4 or IPv6 and
# compared (the first connection through a fresh middle also resolves its
# neighbours).
check_file() {
	ip netns exec $C curl -sS --retry 3 --retry-connrefused --max-time 30 -o "$tmp/got" \
		-w "  $1, IPv$2: the 4 MiB random file: HTTP %{http_code}, %{size_download} bytes in %{time_total} s" \
		"http://${HOSTPORT[$2]}/check"
	cmp -s "$tmp/got" "$www/check" || { echo; echo "lab.sh: the file arrived damaged or incomplete through $1 over IPv$2" >&2; exit 1; }
	echo ", intact"
}

# seen_by_server: the addresses nginx saw requests from: the SNAT address of
# each family the lab uses, and nothing else.
seen_by_server() {
	local from want f
	from=$(awk '{print $1}' "$tmp/ngx/access.log" | sort -u | tr '\n' ' ')
	want=$(for f in $FAMILIES; do echo "${SNAT[$f]}"; done | sort -u | tr '\n' ' ')
	[ "$from" = "$want" ] ||
		{ echo "lab.sh: the server saw requests from '$from', not from the SNAT addresses '$want' only" >&2; exit 1; }
	for f in $FAMILIES; do
		echo "  the server saw every IPv$f request from ${SNAT[$f]} (the SNAT address; the client is ${CLIENT[$f]})"
	done
}

# retransmits: TCP segments the server has retransmitted (its namespace's
# /proc/net/snmp, Tcp RetransSegs).
retransmits() {
	ip netns exec $S awk '/^Tcp:/ { if (!c) { for (i = 1; i <= NF; i++) if ($i == "RetransSegs") c = i } else print $c }' /proc/net/snmp
}

# edge_stats FILE: edge's counters, as JSON.
edge_stats() { "$tmp/edge" --socket "$tmp/edge.sock" -o json stats >"$1"; }

# edge_during BEFORE AFTER: what edge forwarded, lost and dropped between two
# edge_stats snapshots.
edge_during() {
	jq -rs '
		def n: (. // "0") | tonumber;
		def sum(f): [f | n] | add // 0;
		def tx: sum(.workers[]? | .tx_inside, .tx_outside);
		def lost(f): sum(.interfaces[]? | f);
		.[0] as $a | .[1] as $b |
		"forwarded \(($b | tx) - ($a | tx)) packets; AF_XDP losses: fill ring empty \(($b | lost(.xsk_fill_ring_empty)) - ($a | lost(.xsk_fill_ring_empty))), rx ring full \(($b | lost(.xsk_rx_ring_full)) - ($a | lost(.xsk_rx_ring_full))), tx device \(($b | lost(.xsk_tx_device_drops)) - ($a | lost(.xsk_tx_device_drops))); drops: " +
		([($b.drops // {}) | to_entries[] | ((.value | n) - (($a.drops // {})[.key] | n)) as $d | select($d > 0) | "\(.key) \($d)"]
			| if length == 0 then "none" else join(", ") end)' "$1" "$2"
}

# download WHO FAMILY: the timed download, STREAMS downloads of SIZE bytes at
# once over IPv4 or IPv6, with WHO in the middle; throughput is their bytes
# over their wall time. Prints the figures and leaves "MB/s Gbit/s seconds
# retransmits B/s" in $tmp/dl-WHO-FAMILY (and appends it to runs-WHO-FAMILY).
download() {
	local who=$1 fam=$2 i p r0 r1 t0 t1 bad=0 mbs gbs secs rtx
	local dl=$tmp/dl-$who-$fam
	[ "$who" != edge ] || edge_stats "$tmp/stats-before.json"
	r0=$(retransmits)
	t0=$(date +%s%N)
	for i in $(seq "$STREAMS"); do
		ip netns exec $C curl -sS --max-time 120 -o /dev/null -w '%{http_code} %{size_download}' \
			"http://${HOSTPORT[$fam]}/zeros" >"$dl.$i" 2>&1 &
		curl_pids="$curl_pids $!"
	done
	for p in $curl_pids; do wait "$p" || bad=1; done
	curl_pids=
	t1=$(date +%s%N)
	r1=$(retransmits)
	for i in $(seq "$STREAMS"); do
		[ "$(cat "$dl.$i")" = "200 $SIZE" ] ||
			{ echo "lab.sh: download $i through $who over IPv$fam: $(cat "$dl.$i") (want: 200 $SIZE)" >&2; bad=1; }
	done
	[ $bad = 0 ] || exit 1
	awk -v b=$((SIZE * STREAMS)) -v ns=$((t1 - t0)) -v r=$((r1 - r0)) \
		'BEGIN { s = ns / 1e9; printf "%.1f %.2f %.2f %d %.0f\n", b / s / 1e6, b * 8 / s / 1e9, s, r, b / s }' >"$dl"
	cat "$dl" >>"$tmp/runs-$who-$fam"
	read -r mbs gbs secs rtx _ <"$dl"
	echo "  $who, IPv$fam: $STREAMS x $SIZE bytes in $secs s: $mbs MB/s, $gbs Gbit/s; the server retransmitted $rtx TCP segment(s)"
	if [ "$who" = edge ]; then
		edge_stats "$tmp/stats-after.json"
		echo "  edge during the download: $(edge_during "$tmp/stats-before.json" "$tmp/stats-after.json")"
	fi
}

echo "== downloads from nginx (in $S) to the client (in $C) through $PEER"
# both_families WHO: the checked file and the timed download, in each family.
both_families() {
	local f
	for f in $FAMILIES; do
		check_file "$1" "$f"
		download "$1" "$f"
	done
}
both_families "$PEER"
seen_by_server
first_family=${FAMILIES%% *}
if [ -n "${RESULT:-}" ]; then cut -d' ' -f5 "$tmp/dl-$PEER-$first_family" >"$RESULT"; fi

# refused FAMILY: an unsolicited connection from the server side to the SNAT
# address of that family must fail. What comes back is captured on the
# server's interface: with edge in the middle nothing may (default_action:
# drop), neither TCP nor an ICMP error; Linux answers for its own address with
# the kernel's TCP reset (nothing listens on port 22, and the forward chain's
# policy does not see traffic to the box itself). The kernels' own neighbour
# discovery is not an answer (ICMPv6 types 128 and up are left out).
refused() {
	local f=$1 snat=${SNAT[$1]} server=${SERVER[$1]} flags icmp syns answers resets
	if [ "$f" = 6 ]; then flags="ip6[53]" icmp="(icmp6 and ip6[40] < 128)"; else flags="tcp[tcpflags]" icmp=icmp; fi
	ip netns exec $S tcpdump -i s0 -n -U --immediate-mode -w "$tmp/inbound$f.pcap" "host $snat and (tcp port 22 or $icmp)" 2>"$tmp/tcpdump$f.log" &
	capture_pid=$!
	for _ in $(seq 50); do grep -q "listening on" "$tmp/tcpdump$f.log" && break; sleep 0.1; done
	if ip netns exec $S timeout 2 bash -c "exec 3<>/dev/tcp/$snat/22" 2>/dev/null; then
		echo "lab.sh: an inbound IPv$f connection got through" >&2; exit 1
	fi
	sleep 0.5 # a reset or a retransmission still on its way
	kill -INT "$capture_pid"; wait "$capture_pid" 2>/dev/null || true; capture_pid=
	count() { tcpdump -r "$tmp/inbound$f.pcap" -n "$1" 2>/dev/null | wc -l; }
	syns=$(count "tcp and src $server and $flags & 2 != 0")
	answers=$(count "src $snat")
	resets=$(count "tcp and src $snat and $flags & 4 != 0")
	[ "$syns" -gt 0 ] || { echo "lab.sh: the IPv$f capture saw no SYN from the server" >&2; exit 1; }
	if [ "$PEER" = linux ]; then
		[ "$resets" -gt 0 ] || { echo "lab.sh: Linux sent no IPv$f reset for its closed port ($answers packets back)" >&2; exit 1; }
		echo "  IPv$f: refused by the Linux box's own stack: $syns SYN(s), $resets TCP reset(s) from $snat (its closed port 22, not a policy)"
	else
		[ "$answers" -eq 0 ] || { echo "lab.sh: edge let $answers packet(s) answer an unsolicited IPv$f connection" >&2; tcpdump -r "$tmp/inbound$f.pcap" -n >&2; exit 1; }
		echo "  IPv$f: dropped by policy (default_action: drop): $syns SYN(s) from the server to $snat, nothing came back on the wire"
	fi
}
echo "== unsolicited connection from the server side to the SNAT address, in each family (must fail; checked on the wire)"
for f in $FAMILIES; do refused "$f"; done

if [ "$PEER" = edge ]; then
	# The control plane, as an operator drives it (README "Operating edge").
	ctl() { "$tmp/edge" --socket "$tmp/edge.sock" "$@"; }
	echo "== edge status"
	ctl status >"$tmp/status"
	sed 's/^/  /' "$tmp/status"
	# automap took the outside interface's address of each family.
	for f in $FAMILIES; do
		grep '^  pool ' "$tmp/status" | sed 's/^  pool [^:]*: //' | tr ' ' '\n' | grep -qxF "${SNAT[$f]}" ||
			{ echo "lab.sh: edge status lists no SNAT address ${SNAT[$f]} (IPv$f): automap did not take it" >&2; exit 1; }
	done
	echo "== edge flows"
	ctl flows | sed 's/^/  /'
	echo "== edge config apply: a rule that drops new HTTP connections to the server (each family's address)"
	"$tmp/edge" events --socket "$tmp/edge.sock" --kind dropped,opened,closed --for 8s >"$tmp/events.txt" 2>&1 &
	events_pid=$!
	sleep 0.3
	# edge saves an applied document to its --config file: keep the original.
	cp "$tmp/edge.yaml" "$tmp/edge-orig.yaml"
	sed 's/^rules:$/rules:\n  - {name: block-http, zone: inside, proto: tcp, dst: [203.0.113.2, "2001:db8:113::2"], dst_ports: ["8080"], action: drop}/' \
		"$tmp/edge.yaml" >"$tmp/edge-block.yaml"
	ctl config apply -f "$tmp/edge-block.yaml" | sed 's/^/  /'
	for f in $FAMILIES; do
		if ip netns exec $C curl -sS --max-time 2 -o /dev/null "http://${HOSTPORT[$f]}/check" 2>/dev/null; then
			echo "lab.sh: an IPv$f connection crossed the rule applied to drop it" >&2; exit 1
		fi
		echo "  a new IPv$f download now fails (dropped by rule block-http)"
	done
	grep -q block-http "$tmp/edge.yaml" || { echo "lab.sh: the applied configuration was not saved to --config" >&2; exit 1; }
	ctl config apply -f "$tmp/edge-orig.yaml" | sed 's/^/  /'
	for f in $FAMILIES; do
		ip netns exec $C curl -sS --max-time 10 -o /dev/null -w "  after restoring the rules, IPv$f: HTTP %{http_code}\n" "http://${HOSTPORT[$f]}/check"
	done
	wait "$events_pid" || true
	echo "== edge events (during the above)"
	head -20 "$tmp/events.txt" | sed 's/^/  /'
	for f in $FAMILIES; do
		if [ "$f" = 6 ]; then from="\[fd00:10::2\]:[0-9]*" to="\[2001:db8:113::2\]:8080"; else from="10\.0\.0\.2:[0-9]*" to="203\.0\.113\.2:8080"; fi
		grep -q "dropped tcp $from -> $to .*reason firewall_drop" "$tmp/events.txt" ||
			{ echo "lab.sh: no firewall_drop event for the dropped IPv$f connection" >&2; exit 1; }
	done
	echo "== edge stats"
	ctl stats | sed 's/^/  /'
	echo "== /metrics (Prometheus; edge run --metrics 127.0.0.1:9100, in $E)"
	# Fetched whole into a file first: `curl | grep -q` fails under pipefail
	# when grep exits at its first match while curl still writes (curl 23).
	ip netns exec $E curl -sS -o "$tmp/metrics" http://127.0.0.1:9100/metrics
	grep -E '^edge_(worker_drops_total|conntrack_flows|interface_rx_packets_total)' "$tmp/metrics" | sed 's/^/  /'
	grep -q 'edge_worker_drops_total{reason="firewall_drop"' "$tmp/metrics" ||
		{ echo "lab.sh: /metrics lacks the firewall_drop counter" >&2; exit 1; }
	echo "== edge's counters"
	stop_edge
	grep "stats:" "$tmp/edge.log" | sed 's/^.*stats: /  /'
fi

if [ -n "$COMPARE" ]; then
	echo "== the same downloads with Linux in the middle (in $E, edge stopped): nftables masquerade + conntrack + stateful rule"
	linux_middle
	both_families linux
	for round in $(seq 2 "$ROUNDS"); do
		echo "== round $round of $ROUNDS: edge, then Linux"
		linux_off
		start_edge "$tmp/edge-$round.log"
		both_families edge
		stop_edge
		linux_middle
		both_families linux
	done
	seen_by_server
	echo "== edge vs Linux: $STREAMS x $SIZE bytes from nginx to the client, same namespaces, $ROUNDS round(s) alternated"
	median() { sort -n | awk '{ a[NR] = $1 } END { print (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2 }'; }
	{
		echo "MIDDLE FAMILY MB/s Gbit/s SECONDS SERVER-TCP-RETRANSMITS"
		for f in $FAMILIES; do
			for who in edge linux; do
				awk -v w="$who" -v f="IPv$f" '{ print w, f, $1, $2, $3, $4 }' "$tmp/runs-$who-$f"
				[ "$ROUNDS" -eq 1 ] || echo "$who-median IPv$f $(cut -d' ' -f1 "$tmp/runs-$who-$f" | median) $(cut -d' ' -f2 "$tmp/runs-$who-$f" | median) - -"
			done
		done
	} | column -t | sed 's/^/  /'
	for f in $FAMILIES; do
		awk -v e="$(cut -d' ' -f1 "$tmp/runs-edge-$f" | median)" -v l="$(cut -d' ' -f1 "$tmp/runs-linux-$f" | median)" -v r="$ROUNDS" -v f="$f" \
			'BEGIN { printf "  IPv%s: edge / linux: %.2fx%s\n", f, e / l, (r > 1 ? " (medians)" : "") }'
	done
fi
echo "lab: OK"
