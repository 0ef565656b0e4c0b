#!/usr/bin/env bash
# nsx-ab.sh: the NSX A/B lab. An HTTP load client, nginx as a reverse proxy,
# a middle box with SNAT automap over a small port range, one backend; a
# fault injector on the backend's interface re-sends the backend's FINs
# after a delay (the incident's delayed FIN). The same run for three middle
# boxes, one table at the end:
#
#   edge      edge run, its own mode (nsx_compat: false)
#   edge-nsx  edge run, nsx_compat: true (same file otherwise)
#   linux     nftables masquerade (same port range) + conntrack + a stateful rule
#
#   ./bench/nsx-ab.sh                      all three, REQUESTS=10000 each
#   SHORT=1 ./bench/nsx-ab.sh              CI: REQUESTS=2000, edge and edge-nsx only
#   REQUESTS=N CONC=C RATE=R MIDDLES="edge linux" DELAY=300ms PORTS=20000-20063 ...
#   PCAP=DIR                               keep a capture of the backend's interface per middle
#   EDGE_BIN=/path/to/edge                 use this edge binary instead of building ./cmd/edge
#   OUT=bench/out/nsx-ab.txt               where the table is written too (full runs only)
#   FAMILY=6 SHORT=1 ./bench/nsx-ab.sh     nginx to the backend over IPv6 through the middle box
#                                          (below)
#
# Every failed request (a status other than 200, a transport error) is
# attributed to a cause (abtool attribute): the load client gives each
# request an id (?ab=N), nginx's error log names it in the line it writes
# about that request, and the errno or words of that line say what
# happened. Reset, refused, timed out, premature close, ICMP unreachable:
# the middle box's. nginx's own source ports exhausted (EADDRNOTAVAIL),
# nginx's own limits, the load client unable to reach nginx: the lab's. A
# failure with no such line is unattributed and counts as the middle box's.
# The table has a column for each side.
#
# Exit status (any mode): non-zero if a middle box in GATE (default "edge")
# has a failure attributed to the middle box, or no request succeeded
# through it, or more than LAB_MAX_PCT (1) % of its requests failed for the
# lab's reasons (the run measured too little to say anything); or if a
# middle box in REPRO (default "edge-nsx") shows no middle box failure (the
# lab did not reproduce the incident, so a clean run proves nothing).
#
#   client ns  c0 10.9.1.2 ── n0 10.9.1.1 [nginx ns] n1 10.0.0.2 ── in 10.0.0.1 [middle ns] out 203.0.113.1 ── s0 203.0.113.2 [server ns]
#                                                                                                   backend :8080, injector on s0
#
# FAMILY=6: the upstream leg is IPv6 (nginx n1 fd00:10::2, middle in
# fd00:10::1 | out 2001:db8:113::1, backend s0 2001:db8:113::2; the client
# to nginx stays IPv4): edge translates with NAT66 (automap's IPv6 address),
# Linux with an ip6 masquerade table; the injector marks its FINs in the
# IPv6 flow label and the NSX mode's port unreachable is ICMPv6 1/4.
#
# nginx: one upstream, proxy_next_upstream off, no upstream keep-alive
# (HTTP/1.0 upstream: every request is a new upstream connection), so every
# failure reaches the client. The backend closes first (keep-alive off), so
# its FIN is the one delayed. Needs root; installs nginx, nftables, ethtool,
# conntrack, tcpdump with apt-get only if missing. Tears everything down on exit.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "nsx-ab.sh: needs root (network namespaces, XDP)" >&2; exit 1; }

SHORT=${SHORT:-}
if [ -n "$SHORT" ]; then
	REQUESTS=${REQUESTS:-2000}
	MIDDLES=${MIDDLES:-"edge edge-nsx"}
else
	REQUESTS=${REQUESTS:-10000}
	MIDDLES=${MIDDLES:-"edge edge-nsx linux"}
fi
CONC=${CONC:-16}                 # concurrent client requests
RATE=${RATE:-400}                # client requests started per second, at most (0: unpaced)
GATE=${GATE-edge}                # middles that must show 0 middle-box failures
REPRO=${REPRO-edge-nsx}          # middles that must show middle-box failures (when run)
LAB_MAX_PCT=${LAB_MAX_PCT:-1}    # a gated middle's lab failures above this % of its requests: inconclusive, fail
PORTS=${PORTS:-20000-20063}      # SNAT port range (64 ports)
QUARANTINE=${QUARANTINE:-100ms}  # SNAT quarantine (edge)
DELAY=${DELAY:-1s}            # injector: re-send each backend FIN this long after it
EVERY=${EVERY:-1}                # injector: one FIN in EVERY
# Timer profile "lab" (edge, both modes; Linux conntrack gets the same
# closing timers): NSX-T gateway firewall defaults (closing 900 s, fin-wait
# 4 s, closed 2 s). nginx reuses each of its ports well within 4 s, so the
# reuse meets the old entry, and the injector's FIN (DELAY after the
# original) meets the new connection on the same tuple.
T_FIN_WAIT=${T_FIN_WAIT:-900s} T_LAST_ACK=${T_LAST_ACK:-4s} T_TIME_WAIT=${T_TIME_WAIT:-4s} T_CLOSE=${T_CLOSE:-2s}
# nginx's own ephemeral ports toward the backend ("source ports get reused
# under load"): as many as SNAT has, so the middle box sees each nginx port
# come back every 64 connections (every 160 ms at 400 requests/s).
# The budget: a port is busy while its request is in flight (at most CONC),
# then, if nginx closed first, in TIME_WAIT until TW_REUSE_DELAY has passed;
# ports busy <= CONC + RATE * TW_REUSE_DELAY = 16 + 400 * 0.01 = 20 of 64,
# so nginx's connect() does not run out (EADDRNOTAVAIL) at the offered rate.
NGINX_PORTS=${NGINX_PORTS:-"40000 40063"}
TW_REUSE_DELAY=${TW_REUSE_DELAY:-10}    # ms, nginx ns net.ipv4.tcp_tw_reuse_delay
CONNECT_TIMEOUT=${CONNECT_TIMEOUT:-5s}  # nginx proxy_connect_timeout (its 504 for a handshake that never completes)
READ_TIMEOUT=${READ_TIMEOUT:-10s}
RUN_LIMIT=${RUN_LIMIT:-$([ -n "$SHORT" ] && echo 15 || echo 60)}  # seconds: a load run starts no request after this (stopped_early=1)
OUT=${OUT-bench/out/nsx-ab.txt}
FAMILY=${FAMILY:-4}
# The upstream leg's addresses: nginx's, the middle's inside and outside,
# the backend's; the prefix length, the nft family and tcpdump's filter for
# a port unreachable.
case $FAMILY in
4) UP_N=10.0.0.2 UP_IN=10.0.0.1 UP_OUT=203.0.113.1 UP_S=203.0.113.2 UP_LEN=24 NFT_FAM=ip
   UNREACH_FILTER='icmp[icmptype]==3 and icmp[icmpcode]==3' ;;
6) UP_N=fd00:10::2 UP_IN=fd00:10::1 UP_OUT=2001:db8:113::1 UP_S=2001:db8:113::2 UP_LEN=64 NFT_FAM=ip6
   UNREACH_FILTER='icmp6 and ip6[40]==1 and ip6[41]==4' ;;
*) echo "nsx-ab.sh: FAMILY must be 4 or 6" >&2; exit 1 ;;
esac
# BACKEND: the backend's ADDR:PORT (IPv6 in brackets).
if [ "$FAMILY" = 6 ]; then BACKEND="[$UP_S]:8080"; else BACKEND="$UP_S:8080"; fi

need=""
command -v nginx >/dev/null || need="$need nginx"
command -v nft >/dev/null || need="$need nftables"
command -v ethtool >/dev/null || need="$need ethtool"
command -v conntrack >/dev/null || need="$need conntrack"
command -v tcpdump >/dev/null || need="$need tcpdump"
if [ -n "$need" ]; then
	echo "== installing$need"
	(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/dev/null 2>&1 ||
		{ echo "nsx-ab.sh: cannot install$need" >&2; exit 1; }
fi

id=$$
C=nsxab-c-$id N=nsxab-n-$id M=nsxab-m-$id S=nsxab-s-$id
tmp=$(mktemp -d /tmp/nsxab.XXXXXX)
chmod 755 "$tmp"
pids=()       # background processes of the current run
edge_pid=
stop_run() {
	# Stop what one run started, politely first; edge on SIGINT prints its counters.
	if [ -n "$edge_pid" ] && kill -0 "$edge_pid" 2>/dev/null; then
		kill -INT "$edge_pid" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$edge_pid" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$edge_pid" 2>/dev/null || true
		wait "$edge_pid" 2>/dev/null || true
	fi
	edge_pid=
	for p in "${pids[@]}"; do
		kill -TERM "$p" 2>/dev/null || true
	done
	for p in "${pids[@]}"; do
		for _ in $(seq 30); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$p" 2>/dev/null || true
		wait "$p" 2>/dev/null || true
	done
	pids=()
}
cleanup() {
	stop_run
	for ns in $C $N $M $S; do ip netns del "$ns" 2>/dev/null || true; done
	if [ -n "${KEEP:-}" ]; then echo "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

echo "== build (edge, abtool)"
if [ -n "${EDGE_BIN:-}" ]; then
	cp "$EDGE_BIN" "$tmp/edge"   # a prebuilt edge (EDGE_BIN=path), else the working tree's
else
	go build -o "$tmp/edge" ./cmd/edge
fi
go build -o "$tmp/abtool" ./bench/abtool

setup_lab() {
	for ns in $C $N $M $S; do ip netns del "$ns" 2>/dev/null || true; done
	for ns in $C $N $M $S; do ip netns add "$ns"; ip -n "$ns" link set lo up; done
	ip link add ab$id-a type veth peer name ab$id-b
	ip link set ab$id-a netns $C name c0
	ip link set ab$id-b netns $N name n0
	ip link add ab$id-c type veth peer name ab$id-d
	ip link set ab$id-c netns $N name n1
	ip link set ab$id-d netns $M name in
	ip link add ab$id-e type veth peer name ab$id-f
	ip link set ab$id-e netns $M name out
	ip link set ab$id-f netns $S name s0
	for x in "$C c0 10.9.1.2/24" "$N n0 10.9.1.1/24" "$N n1 10.0.0.2/24 $UP_N" "$M in 10.0.0.1/24 $UP_IN" "$M out 203.0.113.1/24 $UP_OUT" "$S s0 203.0.113.2/24 $UP_S"; do
		set -- $x
		if [ "$FAMILY" = 6 ] && [ -n "${4:-}" ]; then
			ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".accept_dad=0 net.ipv6.conf."$2".disable_ipv6=0
			ip -n "$1" addr add "$4/$UP_LEN" dev "$2" nodad
		else
			ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".disable_ipv6=1
		fi
		ip -n "$1" addr add "$3" dev "$2"
		ip -n "$1" link set "$2" up
	done
	ip -n $N route add default via 10.0.0.1
	[ "$FAMILY" = 4 ] || ip -n $N -6 route add default via "$UP_IN"
	# The backend has no route to 10.0.0.0/24: it answers only through SNAT.
	# veth hands kernel-sent TCP over with a partial checksum; real NICs
	# complete it, so the lab does too (edge and the injector see full ones).
	ip netns exec $N ethtool -K n1 tx off >/dev/null
	ip netns exec $S ethtool -K s0 tx off >/dev/null
	ip netns exec $N sysctl -qw net.core.somaxconn=4096
	ip netns exec $N sysctl -qw net.ipv4.ip_local_port_range="$NGINX_PORTS"
	# nginx closes its upstream connections as soon as the response is in
	# (often before the backend's FIN): its side holds TIME_WAIT. A proxy
	# under load reuses those ports (tcp_tw_reuse, timestamps make it safe).
	ip netns exec $N sysctl -qw net.ipv4.tcp_tw_reuse=1
	ip netns exec $N sysctl -qw net.ipv4.tcp_tw_reuse_delay="$TW_REUSE_DELAY" 2>/dev/null || true
	ip netns exec $S sysctl -qw net.core.somaxconn=4096
}

write_edge_conf() { # $1: true|false (nsx_compat)
	cat >"$tmp/edge.yaml" <<EOF
interfaces:
  inside: {name: in}
  outside: {name: out}
routes:
  - {dst: 10.0.0.0/24, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
$([ "$FAMILY" = 6 ] && printf '  - {dst: "fd00:10::/64", interface: inside}\n  - {dst: "2001:db8:113::/64", interface: outside}')
snat: {mode: automap, ports: "$PORTS", quarantine: $QUARANTINE}
profiles:
  - {name: lab, fin_wait: $T_FIN_WAIT, last_ack: $T_LAST_ACK, time_wait: $T_TIME_WAIT, close: $T_CLOSE}
rules:
  - {name: outbound, zone: inside, action: allow, profile: lab}
  # NSX's allow-any toward the backend's answers: lets the backend's TCP
  # segments reach the table whatever it decides (edge: only a SYN creates
  # state, so this changes nothing in edge's own mode).
  - {name: from-backend, zone: outside, proto: tcp, src: ["$UP_S"], action: allow, profile: lab}
default_action: drop
nsx_compat: $1
EOF
}

start_middle() { # $1: edge|edge-nsx|linux
	case $1 in
	edge | edge-nsx)
		write_edge_conf "$([ "$1" = edge-nsx ] && echo true || echo false)"
		# Its own control socket: another edge on the machine (a lab, a test)
		# holds the default one.
		ip netns exec $M "$tmp/edge" run --config "$tmp/edge.yaml" --socket "$tmp/edge.sock" --stats "${STATS:-5s}" >"$tmp/middle.log" 2>&1 &
		edge_pid=$!
		for _ in $(seq 100); do grep -q "forwarding between" "$tmp/middle.log" && break; sleep 0.1; done
		grep -q "forwarding between" "$tmp/middle.log" || { cat "$tmp/middle.log"; echo "nsx-ab.sh: edge did not start" >&2; exit 1; }
		;;
	linux)
		local lo=${PORTS%-*} hi=${PORTS#*-}
		ip netns exec $M sysctl -qw net.ipv4.ip_forward=1
		[ "$FAMILY" = 4 ] || ip netns exec $M sysctl -qw net.ipv6.conf.all.forwarding=1
		ip netns exec $M nft -f - <<NFT
table $NFT_FAM nsxab {
	chain filter_forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related counter accept
		iifname "in" oifname "out" ct state new counter accept
		ct state invalid counter drop comment "invalid"
		counter drop comment "other"
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100;
		oifname "out" meta l4proto tcp counter masquerade to :$lo-$hi
		oifname "out" masquerade
	}
}
NFT
		# The same closing timers as edge's "lab" profile (whole seconds: Linux's unit).
		sec() { local v=$1; case $v in *ms) echo $(( (${v%ms} + 999) / 1000 ));; *s) echo "${v%s}";; *) echo "$v";; esac; }
		for t in "fin_wait $T_FIN_WAIT" "close_wait $T_FIN_WAIT" "last_ack $T_LAST_ACK" "time_wait $T_TIME_WAIT" "close $T_CLOSE"; do
			set -- $t
			ip netns exec $M sysctl -qw net.netfilter.nf_conntrack_tcp_timeout_$1="$(sec "$2")"
		done
		;;
	esac
}

middle_counters() { # $1: middle; prints "key=value ..." for the table and the log
	case $1 in
	edge | edge-nsx)
		stop_edge_only
		# the counters edge printed on SIGINT (after "stopping")
		sed -n '/stopping/,$p' "$tmp/middle.log" | grep "stats:" | sed 's/^.*stats: //' >"$tmp/middle.stats" || true
		cp "$tmp/middle.log" "$tmp/middle-$1.log"
		# drop lines: "drop NAME N"
		awk '/^drop /{printf "%s=%s ", $2, $3}' "$tmp/middle.stats"
		;;
	linux)
		ip netns exec $M conntrack -S 2>/dev/null | awk '{for(i=2;i<=NF;i++){split($i,a,"="); if(a[2]>0 && a[1]!="cpu") s[a[1]]+=a[2]}} END{for(k in s) printf "ct_%s=%d ", k, s[k]}'
		ip netns exec $M nft list table "$NFT_FAM" nsxab | awk '/counter/ {
			name="";
			if ($0 ~ /established/) name="nft_established"; else if ($0 ~ /ct state new/) name="nft_new";
			else if ($0 ~ /invalid/) name="nft_invalid_drop"; else if ($0 ~ /masquerade/) name="nft_masq"; else name="nft_other_drop";
			for(i=1;i<=NF;i++) if ($i=="packets") printf "%s=%s ", name, $(i+1) }'
		;;
	esac
}

stop_edge_only() {
	if [ -n "$edge_pid" ] && kill -0 "$edge_pid" 2>/dev/null; then
		kill -INT "$edge_pid"
		for _ in $(seq 50); do kill -0 "$edge_pid" 2>/dev/null || break; sleep 0.1; done
		wait "$edge_pid" 2>/dev/null || true
	fi
	edge_pid=
}

start_backend_nginx() {
	ip netns exec $S "$tmp/abtool" server -listen "$BACKEND" >"$tmp/backend.log" 2>&1 &
	pids+=($!)
	mkdir -p "$tmp/ngx"
	cat >"$tmp/nginx.conf" <<EOF
user root;
worker_processes 1;
daemon off;
pid $tmp/ngx/nginx.pid;
error_log $tmp/nginx-error.log error;
events { worker_connections 8192; }
http {
	access_log off;
	client_body_temp_path $tmp/ngx/body;
	proxy_temp_path $tmp/ngx/proxy;
	fastcgi_temp_path $tmp/ngx/fastcgi;
	uwsgi_temp_path $tmp/ngx/uwsgi;
	scgi_temp_path $tmp/ngx/scgi;
	upstream backend {
		server $BACKEND;   # one backend: no other server to retry on
	}
	server {
		listen 10.9.1.1:80 backlog=4096;
		keepalive_requests 100000;
		location / {
			proxy_pass http://backend;   # HTTP/1.0 upstream, no keepalive: a new connection per request
			proxy_next_upstream off;
			proxy_connect_timeout $CONNECT_TIMEOUT;
			proxy_read_timeout $READ_TIMEOUT;
			proxy_send_timeout $READ_TIMEOUT;
		}
	}
}
EOF
	: >"$tmp/nginx-error.log"
	ip netns exec $N nginx -c "$tmp/nginx.conf" -p "$tmp/ngx" -e "$tmp/nginx-error.log" >"$tmp/nginx.out" 2>&1 &
	pids+=($!)
	for _ in $(seq 100); do
		ip netns exec $C bash -c 'exec 3<>/dev/tcp/10.9.1.1/80' 2>/dev/null && ip netns exec $N bash -c "exec 3<>/dev/tcp/$UP_S/8080" 2>/dev/null && break
		sleep 0.1
	done
}

kv() { # kv KEY FILE: the value of KEY=... in a key=value line
	{ grep -o "\b$1=[^ ]*" "$2" || echo "$1=?"; } | head -1 | cut -d= -f2
}

rows=()
details=()
verdicts=()
fail=0
for mid in $MIDDLES; do
	echo "== $mid: lab up, $REQUESTS requests, $CONC concurrent, SNAT ports $PORTS, injector delay $DELAY"
	setup_lab
	start_middle "$mid"
	start_backend_nginx
	# Warm-up request (also checks the path end to end).
	ip netns exec $C curl -sS -o /dev/null --max-time 10 -w '  warm-up: HTTP %{http_code}\n' http://10.9.1.1/ || true
	ip netns exec $S "$tmp/abtool" inject -iface s0 -backend "$BACKEND" -delay "$DELAY" -every "$EVERY" \
		>"$tmp/inject.out" 2>"$tmp/inject.err" &
	inj_pid=$!
	pids+=($inj_pid)
	ip netns exec $S tcpdump -i s0 -nn -U -w "$tmp/icmp.pcap" "$UNREACH_FILTER" >/dev/null 2>&1 &
	pids+=($!)
	if [ -n "${PCAP:-}" ]; then # PCAP=DIR: keep every packet at the backend, DIR/MIDDLE.pcap
		mkdir -p "$PCAP"
		ip netns exec $S tcpdump -i s0 -nn -U -s 128 -w "$PCAP/$mid.pcap" >/dev/null 2>&1 &
		pids+=($!)
	fi
	sleep 0.5
	: >"$tmp/failures.txt"
	timeout $((RUN_LIMIT + 60)) ip netns exec $C "$tmp/abtool" load -url http://10.9.1.1/ -n "$REQUESTS" -c "$CONC" -rate "$RATE" \
		-timeout 30s -max-time "${RUN_LIMIT}s" -failures "$tmp/failures.txt" >"$tmp/load.out" 2>"$tmp/load.err" || echo "  load: exit $?"
	sed 's/^/  /' "$tmp/load.err" | tail -3
	# Let delayed FINs and retransmissions settle, then collect.
	sleep 1
	kill -TERM "$inj_pid" 2>/dev/null || true
	for _ in $(seq 30); do kill -0 "$inj_pid" 2>/dev/null || break; sleep 0.1; done
	mc=$(middle_counters "$mid")
	stop_run
	pcap_icmp=$( (command -v tcpdump >/dev/null && tcpdump -nn -r "$tmp/icmp.pcap" 2>/dev/null | wc -l) || echo "?")
	[ -s "$tmp/load.out" ] || echo "requests=0 ok=0 s502=0 s504=0 other_status=0 errors=0" >"$tmp/load.out"
	l="$tmp/load.out" i="$tmp/inject.out"
	[ -s "$i" ] || echo "injected=? icmp3_3=?" >"$i"
	# Every failed request to its cause (see the header); the attribution
	# line is key=value: failed, middle, lab, then mb_CAUSE and lab_CAUSE.
	"$tmp/abtool" attribute -failures "$tmp/failures.txt" -nginx-log "$tmp/nginx-error.log" >"$tmp/attr.out" ||
		echo "failed=? middle=? lab=?" >"$tmp/attr.out"
	a="$tmp/attr.out"
	rows+=("$(printf '%-9s %8s %7s %6s %6s %6s %7s %7s %7s %9s %9s %7s' "$mid" "$(kv requests $l)" "$(kv ok $l)" "$(kv s502 $l)" \
		"$(kv s504 $l)" "$(kv other_status $l)" "$(kv errors $l)" "$(kv middle $a)" "$(kv lab $a)" \
		"$(kv injected $i)" "$(kv icmp3_3 $i)" "$(kv slow_over_1s $l)")")
	details+=("$mid: client: $(cat $l)"
		"$mid: failures by cause: $(cat $a)"
		"$mid: injector: $(cat $i); tcpdump icmp 3/3 at the backend: $pcap_icmp"
		"$mid: middle: $mc")
	if [ -s "$tmp/nginx-error.log" ]; then
		details+=("$mid: nginx first errors: $(grep -v '^$' "$tmp/nginx-error.log" | sed 's/^[0-9/]* [0-9:]* //' | cut -c1-200 | head -2 | tr '\n' '|' || true)")
	fi
	verdict=-
	mb=$(kv middle $a) lab=$(kv lab $a) req=$(kv requests $l) ok=$(kv ok $l)
	if [[ " $GATE " == *" $mid "* ]]; then
		verdict=pass
		if [ "$mb" != 0 ]; then
			echo "  $mid: $mb failed requests attributed to the middle box ($(tr ' ' '\n' <"$a" | grep '^mb_' | grep -v '=0$' | tr '\n' ' '))" >&2
			verdict=fail-middle
		elif [ "$ok" = 0 ] || [ -z "$ok" ] || [ "$ok" = "?" ]; then
			echo "  $mid: no request succeeded" >&2
			verdict=fail-no-ok
		elif [ "$lab" = "?" ] || [ $((lab * 100)) -gt $((req * LAB_MAX_PCT)) ]; then
			echo "  $mid: $lab of $req requests failed for the lab's reasons (over $LAB_MAX_PCT%): inconclusive" >&2
			verdict=fail-lab
		fi
	elif [[ " $REPRO " == *" $mid "* ]]; then
		verdict=repro
		if [ "$mb" = 0 ] || [ "$mb" = "?" ]; then
			echo "  $mid: no failure attributed to the middle box: the lab did not reproduce the incident" >&2
			verdict=fail-no-repro
		fi
	fi
	[[ "$verdict" == fail* ]] && fail=1
	verdicts+=("$mid=$verdict")
	for ns in $C $N $M $S; do ip netns del "$ns" 2>/dev/null || true; done
done

{
	echo "NSX A/B lab, $(date -u +%Y-%m-%dT%H:%MZ), $(uname -r), $(nproc) vCPU, nginx to the backend over IPv$FAMILY"
	echo "client -> nginx (proxy, one upstream, proxy_next_upstream off, no upstream keep-alive, connect timeout $CONNECT_TIMEOUT)"
	echo "  -> middle (SNAT automap, ports $PORTS, quarantine $QUARANTINE; closing timers fin_wait $T_FIN_WAIT last_ack $T_LAST_ACK time_wait $T_TIME_WAIT close $T_CLOSE)"
	echo "  -> backend $BACKEND (closes first); injector re-sends each backend FIN after $DELAY (one in $EVERY)"
	echo "$REQUESTS requests per middle, $CONC concurrent, at most $RATE/s; nginx source ports $NGINX_PORTS, tcp_tw_reuse_delay ${TW_REUSE_DELAY} ms"
	echo "failed requests by cause: mb_fail = the middle box's (reset, refused, timed out, premature close, ICMP, unattributed),"
	echo "  lab_fail = the lab's (nginx's own ports or limits, the load client), from nginx's error log line for each request"
	echo
	printf '%-9s %8s %7s %6s %6s %6s %7s %7s %7s %9s %9s %7s\n' middle requests ok 502 504 other errors mb_fail lab_fail inj_FINs icmp3/3 slow\>1s
	for r in "${rows[@]}"; do echo "$r"; done
	echo
	for d in "${details[@]}"; do echo "$d"; done
	echo
	echo "verdicts (gate: $GATE; must reproduce: $REPRO): ${verdicts[*]}"
} | tee "$tmp/table.txt"
if [ -z "$SHORT" ] && [ -n "$OUT" ]; then
	mkdir -p "$(dirname "$OUT")"
	cp "$tmp/table.txt" "$OUT"
	chmod 644 "$OUT"
	echo "(written to $OUT)"
fi
exit $fail
