#!/usr/bin/env bash
# topo.sh: the pps lab's topology: client ns (generator) -- middle ns -- server ns (sink).
#
#   topo.sh up MODE [--queues N] [--max-flows N] [--middle-cpus LIST] [--other-cpu C] [--client-prefix LEN] [--ipv6]
#        MODE: direct     generator veth straight to the sink veth (no middle: the ceiling)
#              linux-fwd  Linux ip_forward in the middle
#              linux-nft  Linux forwarding + nftables masquerade + conntrack + a stateful rule
#              edge       edge run in the middle (built from ./cmd/edge, or EDGE_BIN=path)
#              nullfwd    the null AF_XDP forwarder in the middle (bench/cmd/nullfwd, or
#                         NULLFWD_BIN=path): edge's sockets and XDP program, no parsing, MACs
#                         rewritten; one queue, its worker on the first --middle-cpus CPU
#        prints the topology's ID on the last line of stdout; its variables are in
#        /tmp/edgetopo/ID/env (shell syntax: NS_C NS_M NS_S DEV_C DEV_IN DEV_OUT DEV_S
#        SRC_IP DST_IP DST_MAC EDGE_PID EDGE_SOCK EDGE_CONFIG ...; with --ipv6 also
#        SRC_IP6 DST_IP6)
#        EDGE_YAML: more top-level lines for edge's configuration (e.g. "xdp: {busy_poll: true}")
#   topo.sh pin ID     pin the veth NAPI kthreads (call again after attaching XDP)
#   topo.sh down ID    stop edge, remove the namespaces and links, restore sysctls
#   topo.sh list       topologies still up
#
#   client ns  DEV_C 10.0.0.2 ── DEV_IN 10.0.0.1 [ middle ] DEV_OUT 203.0.113.1 ── DEV_S 203.0.113.2  server ns
#   (--ipv6)         fd00:10::2       fd00:10::1               2001:db8:113::1        2001:db8:113::2
#
# --ipv6 makes the lab dual-stack (IPv6 is off on every veth otherwise): the
# addresses above (no duplicate address detection), static neighbours and
# the client's default route in IPv6 too; Linux forwards IPv6 as well, and
# linux-nft has an ip6 table like its ip one (masquerade, conntrack,
# stateful forward rule); edge's configuration gets the two IPv6 routes and
# its SNAT automap takes the outside interface's address of each family.
#
# --client-prefix LEN (default 24) widens the client's subnet to 10.0.0.0/LEN
# (both its addresses and edge's inside route), e.g. 16 for a lab whose
# traffic comes from many inside addresses.
#
# Names are unique per run (namespaces egtID-{c,m,s}, links eID{c,i,o,s}), so
# several topologies (and other labs) can coexist. A failed `up` removes what
# it made. Neighbours are static (no ARP during a run); transmit checksum and
# TSO offloads are off on every veth (kernel-sent packets leave complete, and
# veth then hands packets to the peer's NAPI), GRO is on and NAPI is threaded
# on the receiving ends, so the receive work of each hop is a kthread that
# `pin` places: the middle's receive kthreads on --middle-cpus (default 1),
# the sink's on --other-cpu (default 0). With edge, `queues: N` and one worker
# per queue pinned to the middle CPUs in turn.
#
# linux-nft raises net.netfilter.nf_conntrack_max (host-wide ceiling, then the
# middle's) and the conntrack hash size for the flow count (--max-flows,
# default 4194304), and sets the middle's UDP timeouts to 300 s (edge's
# default UDP timeout), restoring the host values at `down`.
# Needs root; installs ethtool / nftables with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"
BASE=/tmp/edgetopo

die() { echo "topo.sh: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"

need_tools() {
	local need=""
	command -v ip >/dev/null || need="$need iproute2"
	command -v ethtool >/dev/null || need="$need ethtool"
	command -v taskset >/dev/null || need="$need util-linux"
	[ "${1:-}" = linux-nft ] && ! command -v nft >/dev/null && need="$need nftables"
	if [ -n "$need" ]; then
		echo "topo.sh: installing$need" >&2
		(apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $need) >/dev/null 2>&1 ||
			die "cannot install$need"
	fi
}

mac() { ip netns exec "$1" cat "/sys/class/net/$2/address"; }

# pin_napi NS DEV CPULIST: the NAPI kthreads of DEV, in queue order, to the CPUs in turn.
pin_napi() {
	local ns=$1 dev=$2 cpus=(${3//,/ }) i=0 pid
	# kthread names are "napi/DEV-NAPIID" (comm truncated to 15 characters);
	# veth creates them in queue order, so PID order is queue order.
	for pid in $(ps -eo pid=,comm= | awk -v p="napi/$dev-" 'index($2, p) == 1 {print $1}' | sort -n); do
		taskset -pc "${cpus[$((i % ${#cpus[@]}))]}" "$pid" >/dev/null 2>&1 || true
		i=$((i + 1))
	done
	echo "$i"
}

cmd_pin() {
	local id=$1 d n
	. "$BASE/$id/env"
	for d in $MIDDLE_RX; do
		n=$(pin_napi "$NS_M" "$d" "$MIDDLE_CPUS")
		[ "${VERBOSE:-}" ] && echo "pinned $n NAPI kthread(s) of $d to CPU(s) $MIDDLE_CPUS" >&2
	done
	for d in $SINK_RX; do
		n=$(pin_napi "$NS_S" "$d" "$OTHER_CPU")
		[ "${VERBOSE:-}" ] && echo "pinned $n NAPI kthread(s) of $d to CPU $OTHER_CPU" >&2
	done
	return 0
}

cmd_down() {
	local id=$1 dir=$BASE/$1
	[ -d "$dir" ] || die "no topology $id"
	# shellcheck disable=SC1091
	. "$dir/env" 2>/dev/null || true
	if [ -n "${EDGE_PID:-}" ] && kill -0 "$EDGE_PID" 2>/dev/null; then
		kill -INT "$EDGE_PID" 2>/dev/null || true
		for _ in $(seq 50); do kill -0 "$EDGE_PID" 2>/dev/null || break; sleep 0.1; done
		kill -KILL "$EDGE_PID" 2>/dev/null || true
	fi
	if [ -f "$dir/edge.log" ] && [ -n "${LOGDIR:-}" ]; then cp "$dir/edge.log" "$LOGDIR/edge-$id.log" 2>/dev/null || true; fi
	for ns in "${NS_C:-egt$id-c}" "${NS_M:-egt$id-m}" "${NS_S:-egt$id-s}"; do
		ip netns del "$ns" 2>/dev/null || true
	done
	for d in "e${id}c" "e${id}i" "e${id}o" "e${id}s"; do ip link del "$d" 2>/dev/null || true; done
	# Host-wide conntrack settings: back to what they were, unless someone changed them since.
	if [ -f "$dir/ct_max.orig" ] && [ "$(sysctl -n net.netfilter.nf_conntrack_max 2>/dev/null)" = "$(cat "$dir/ct_max.set")" ]; then
		sysctl -qw net.netfilter.nf_conntrack_max="$(cat "$dir/ct_max.orig")" || true
	fi
	if [ -f "$dir/hashsize.orig" ] && [ "$(cat /sys/module/nf_conntrack/parameters/hashsize)" = "$(cat "$dir/hashsize.set")" ]; then
		cat "$dir/hashsize.orig" >/sys/module/nf_conntrack/parameters/hashsize || true
	fi
	rm -rf "$dir"
}

cmd_up() {
	local mode=$1; shift
	local queues=1 maxflows=4194304 middle_cpus=1 other_cpu=0 cprefix=24 ipv6=
	while [ $# -gt 0 ]; do
		case $1 in
		--queues) queues=$2; shift 2 ;;
		--max-flows) maxflows=$2; shift 2 ;;
		--middle-cpus) middle_cpus=$2; shift 2 ;;
		--other-cpu) other_cpu=$2; shift 2 ;;
		--client-prefix) cprefix=$2; shift 2 ;;
		--ipv6) ipv6=1; shift ;;
		*) die "unknown option $1" ;;
		esac
	done
	case $mode in direct | linux-fwd | linux-nft | edge | nullfwd) ;; *) die "MODE must be direct, linux-fwd, linux-nft, edge or nullfwd" ;; esac
	[ "$mode" != nullfwd ] || [ "$queues" = 1 ] || die "nullfwd serves one queue (--queues 1)"
	[[ $cprefix =~ ^[0-9]+$ ]] && [ "$cprefix" -ge 8 ] && [ "$cprefix" -le 24 ] || die "--client-prefix must be 8 to 24"
	need_tools "$mode"
	mkdir -p "$BASE"
	local id dir
	for _ in $(seq 100); do
		id=$(( (RANDOM * 32768 + RANDOM + $$) % 90000 + 10000 ))
		dir=$BASE/$id
		mkdir "$dir" 2>/dev/null && ! ip netns list | grep -q "^egt$id-" && break
		id=
	done
	[ -n "$id" ] || die "no free ID"
	# From here on, a failure removes everything made so far.
	trap 'echo "topo.sh: up $mode failed, removing $id" >&2; cmd_down '"$id"' >/dev/null 2>&1 || true' ERR
	local C=egt$id-c M=egt$id-m S=egt$id-s
	local dc=e${id}c di=e${id}i do=e${id}o ds=e${id}s
	cat >"$dir/env" <<EOF
ID=$id
MODE=$mode
QUEUES=$queues
NS_C=$C
NS_M=$M
NS_S=$S
DEV_C=$dc
DEV_IN=$di
DEV_OUT=$do
DEV_S=$ds
SRC_IP=10.0.0.2
DST_IP=203.0.113.2
MIDDLE_CPUS=$middle_cpus
OTHER_CPU=$other_cpu
EOF
	[ -z "$ipv6" ] || printf 'SRC_IP6=fd00:10::2\nDST_IP6=2001:db8:113::2\n' >>"$dir/env"
	local q=(numtxqueues "$queues" numrxqueues "$queues")
	ip netns add "$C"; ip netns add "$S"
	if [ "$mode" = direct ]; then
		ip link add "$dc" "${q[@]}" type veth peer name "$ds" "${q[@]}"
		ip link set "$dc" netns "$C"; ip link set "$ds" netns "$S"
		set -- "$C $dc 10.0.0.2/24 fd00:10::2/64" "$S $ds 203.0.113.2/24 2001:db8:113::2/64"
	else
		ip netns add "$M"
		ip link add "$dc" "${q[@]}" type veth peer name "$di" "${q[@]}"
		ip link add "$do" "${q[@]}" type veth peer name "$ds" "${q[@]}"
		ip link set "$dc" netns "$C"; ip link set "$di" netns "$M"
		ip link set "$do" netns "$M"; ip link set "$ds" netns "$S"
		ip -n "$M" link set lo up
		set -- "$C $dc 10.0.0.2/$cprefix fd00:10::2/64" "$M $di 10.0.0.1/$cprefix fd00:10::1/64" \
			"$M $do 203.0.113.1/24 2001:db8:113::1/64" "$S $ds 203.0.113.2/24 2001:db8:113::2/64"
	fi
	ip -n "$C" link set lo up; ip -n "$S" link set lo up
	local x
	for x in "$@"; do
		set -- $x
		if [ -n "$ipv6" ]; then
			ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".accept_dad=0 net.ipv6.conf."$2".disable_ipv6=0
			ip -n "$1" addr add "$4" dev "$2" nodad
		else
			ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".disable_ipv6=1
		fi
		ip -n "$1" addr add "$3" dev "$2"
		ip netns exec "$1" ethtool -K "$2" tx off tso off gro on >/dev/null 2>&1 || true
		ip -n "$1" link set "$2" up
	done
	# Threaded NAPI on the receiving ends (accepted once GRO or XDP gives the veth a NAPI).
	echo 1 | ip netns exec "$S" tee "/sys/class/net/$ds/threaded" >/dev/null
	local dst_mac
	if [ "$mode" = direct ]; then
		dst_mac=$(mac "$S" "$ds")
		echo "MIDDLE_RX=" >>"$dir/env"
	else
		echo 1 | ip netns exec "$M" tee "/sys/class/net/$di/threaded" >/dev/null
		echo "MIDDLE_RX=$di" >>"$dir/env"
		dst_mac=$(mac "$M" "$di")
		# Static neighbours everywhere: nothing is resolved during a run.
		ip -n "$M" neigh replace 10.0.0.2 lladdr "$(mac "$C" "$dc")" dev "$di" nud permanent
		ip -n "$M" neigh replace 203.0.113.2 lladdr "$(mac "$S" "$ds")" dev "$do" nud permanent
		ip -n "$C" neigh replace 10.0.0.1 lladdr "$dst_mac" dev "$dc" nud permanent
		ip -n "$S" neigh replace 203.0.113.1 lladdr "$(mac "$M" "$do")" dev "$ds" nud permanent
		ip -n "$C" route add default via 10.0.0.1
		if [ -n "$ipv6" ]; then
			ip -n "$M" neigh replace fd00:10::2 lladdr "$(mac "$C" "$dc")" dev "$di" nud permanent
			ip -n "$M" neigh replace 2001:db8:113::2 lladdr "$(mac "$S" "$ds")" dev "$do" nud permanent
			ip -n "$C" neigh replace fd00:10::1 lladdr "$dst_mac" dev "$dc" nud permanent
			ip -n "$S" neigh replace 2001:db8:113::1 lladdr "$(mac "$M" "$do")" dev "$ds" nud permanent
			ip -n "$C" -6 route add default via fd00:10::1
		fi
	fi
	echo "SINK_RX=$ds" >>"$dir/env"
	echo "DST_MAC=$dst_mac" >>"$dir/env"
	case $mode in
	linux-fwd | linux-nft)
		ip netns exec "$M" sysctl -qw net.ipv4.ip_forward=1
		ip netns exec "$M" sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0
		[ -z "$ipv6" ] || ip netns exec "$M" sysctl -qw net.ipv6.conf.all.forwarding=1
		;;
	esac
	if [ "$mode" = linux-nft ]; then
		ip netns exec "$M" nft -f - <<NFT
table ip pps {
	chain filter_forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "$di" oifname "$do" ct state new accept
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100;
		oifname "$do" masquerade
	}
}
NFT
		if [ -n "$ipv6" ]; then
			ip netns exec "$M" nft -f - <<NFT
table ip6 pps6 {
	chain filter_forward {
		type filter hook forward priority 0; policy drop;
		ct state established,related accept
		iifname "$di" oifname "$do" ct state new accept
	}
	chain nat_postrouting {
		type nat hook postrouting priority 100;
		oifname "$do" masquerade
	}
}
NFT
		fi
		local cur
		cur=$(sysctl -n net.netfilter.nf_conntrack_max)
		if [ "$cur" -lt "$maxflows" ]; then
			echo "$cur" >"$dir/ct_max.orig"; echo "$maxflows" >"$dir/ct_max.set"
			sysctl -qw net.netfilter.nf_conntrack_max="$maxflows"
		fi
		cur=$(cat /sys/module/nf_conntrack/parameters/hashsize)
		local hs=$(( maxflows / 4 ))
		if [ "$cur" -lt "$hs" ]; then
			echo "$cur" >"$dir/hashsize.orig"; echo "$hs" >"$dir/hashsize.set"
			echo "$hs" >/sys/module/nf_conntrack/parameters/hashsize
		fi
		# On 6.x a child namespace follows the host's nf_conntrack_max (it refuses writes).
		ip netns exec "$M" sysctl -qw net.netfilter.nf_conntrack_max="$maxflows" 2>/dev/null || true
		ip netns exec "$M" sysctl -qw net.netfilter.nf_conntrack_udp_timeout=300
		ip netns exec "$M" sysctl -qw net.netfilter.nf_conntrack_udp_timeout_stream=300
	fi
	if [ "$mode" = edge ]; then
		local bin=${EDGE_BIN:-}
		if [ -z "$bin" ]; then
			bin=$dir/edge
			go build -o "$bin" ./cmd/edge
		fi
		local cpus=(${middle_cpus//,/ }) wcpus="" i routes6=""
		[ -z "$ipv6" ] || routes6=$(printf '  - {dst: "fd00:10::/64", interface: inside}\n  - {dst: "2001:db8:113::/64", interface: outside}')
		for ((i = 0; i < queues; i++)); do wcpus="$wcpus${wcpus:+, }${cpus[$((i % ${#cpus[@]}))]}"; done
		cat >"$dir/edge.yaml" <<EOF
interfaces:
  inside: {name: $di}
  outside: {name: $do}
routes:
  - {dst: 10.0.0.0/$cprefix, interface: inside}
  - {dst: 203.0.113.0/24, interface: outside}
$routes6
snat: {mode: automap, ports: "1024-65535"}
rules:
  - {name: outbound, zone: inside, action: allow}
default_action: drop
conntrack: {max_flows: $maxflows}
queues: $queues
cpus: [$wcpus]
${EDGE_YAML:-}
EOF
		# The whole process on the middle CPUs (EDGE_PROC_CPUS overrides: e.g.
		# the control plane on another CPU than the workers); each worker is
		# pinned by edge itself. The control socket is the topology's own.
		setsid ip netns exec "$M" taskset -c "${EDGE_PROC_CPUS:-$middle_cpus}" "$bin" run --config "$dir/edge.yaml" \
			--socket "$dir/edge.sock" >"$dir/edge.log" 2>&1 </dev/null &
		echo "EDGE_PID=$!" >>"$dir/env"
		echo "EDGE_LOG=$dir/edge.log" >>"$dir/env"
		echo "EDGE_SOCK=$dir/edge.sock" >>"$dir/env"
		echo "EDGE_CONFIG=$dir/edge.yaml" >>"$dir/env"
		local ok=
		for _ in $(seq 300); do
			grep -q "forwarding between" "$dir/edge.log" && { ok=1; break; }
			kill -0 "$!" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$ok" ] || { sed 's/^/  edge: /' "$dir/edge.log" >&2; false; }
	fi
	if [ "$mode" = nullfwd ]; then
		local nbin=${NULLFWD_BIN:-}
		if [ -z "$nbin" ]; then
			nbin=$dir/nullfwd
			go build -o "$nbin" ./bench/cmd/nullfwd
		fi
		# Run and stopped as edge is: EDGE_PID and EDGE_LOG name the middle's
		# process and log, so `down` and pps.sh's CPU accounting treat it alike.
		setsid ip netns exec "$M" taskset -c "$middle_cpus" "$nbin" --in "$di" --out "$do" \
			--in-hop "$(mac "$C" "$dc")" --out-hop "$(mac "$S" "$ds")" --cpu "${middle_cpus%%,*}" \
			>"$dir/edge.log" 2>&1 </dev/null &
		echo "EDGE_PID=$!" >>"$dir/env"
		echo "EDGE_LOG=$dir/edge.log" >>"$dir/env"
		local ok=
		for _ in $(seq 300); do
			grep -q "forwarding between" "$dir/edge.log" && { ok=1; break; }
			kill -0 "$!" 2>/dev/null || break
			sleep 0.1
		done
		[ -n "$ok" ] || { sed 's/^/  nullfwd: /' "$dir/edge.log" >&2; false; }
	fi
	cmd_pin "$id"
	trap - ERR
	echo "$id"
}

case ${1:-} in
up) shift; [ $# -ge 1 ] || die "usage: topo.sh up MODE [--queues N]"; cmd_up "$@" ;;
down) [ $# -eq 2 ] || die "usage: topo.sh down ID"; cmd_down "$2" ;;
pin) [ $# -eq 2 ] || die "usage: topo.sh pin ID"; cmd_pin "$2" ;;
list) ls "$BASE" 2>/dev/null || true ;;
*) die "usage: topo.sh up MODE [--queues N] [--max-flows N] [--ipv6] | pin ID | down ID | list" ;;
esac
