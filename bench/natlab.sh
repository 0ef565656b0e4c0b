#!/usr/bin/env bash
# natlab.sh: how does the middle box NAT, as a real STUN client sees it?
# RFC 4787 / RFC 5780 behaviour of edge and of Linux nftables, side by side;
# with gates, the acceptance test of edge's NAT behaviour (issue 14).
#
# Lab (scripts/topo.sh): client ns -- middle (edge, SNAT automap | Linux
# nftables masquerade) -- server ns. The server gets a second address (RFC
# 5780 needs an alternate address and port) and runs coturn's turnserver as
# a STUN server on 203.0.113.2 and 203.0.113.3, ports 3478 and 3479. The
# client gets a second address (host B). Nothing leaves the namespaces.
#
#   client ns  10.0.0.2 (A), 10.0.0.3 (B) ── [ middle: edge | nft ] 203.0.113.1 ── 203.0.113.2, .3  server ns (turnserver)
#
# Per middle box (a case: a middle box and, for edge, its snat section):
#   mapping    turnutils_natdiscovery -m: one local port, Binding requests to
#              203.0.113.2:3478, then .3:3478, then .3:3479; endpoint-independent
#              when the first two saw the same mapping, address-dependent when the
#              last two did, else address-and-port-dependent (RFC 5780 4.3)
#   filtering  turnutils_natdiscovery -f: a new local port; Binding to .2:3478,
#              then the same with CHANGE-REQUEST (answer from .3:3479), then change
#              port only (answer from .2:3479): which answers come back (4.4)
#   port       whether the mapping kept the client's source port (Linux does
#              when the port is free)
#   hairpin    one-way, two tools: coturn's -H (A's second socket sends a Binding
#              request to A's first socket's mapping) and bench/cmd/hairpin's
#              one-way phase (host B sends to host A's mapping learnt via STUN
#              before A sent anything to B). Both are unsolicited as far as A's
#              mapping is concerned: they get through a NAT that hairpins only
#              under endpoint-independent filtering.
#              two-way, bench/cmd/hairpin: then A and B both send to each other's
#              mapping 5 times, 100 ms apart (hole punching, as ICE does): passes
#              when each received the other's datagrams from the other's EXTERNAL
#              mapping (RFC 4787 REQ-9), whatever the filtering
#   TCP        bench/cmd/hairpin --tcp-servers: two TCP connections from one local
#              port of A, open at once, STUN over TCP to 203.0.113.2:3478 and
#              .3:3479: the same mapping for both is endpoint-independent (RFC 5382
#              REQ-1), and whether it kept the local port; then --tcp-hairpin: A and
#              B learn their TCP mappings over STUN and connect to each other's at
#              once from the same ports (a simultaneous open, as TCP hole punching
#              does: RFC 5382 REQ-8)
#   counts     what the middle box counted during the -m -f run and during the
#              hairpin probes: edge's drop reasons (`edge stats`), the Linux
#              middle's UdpNoPorts (datagrams to its own address no socket took)
#
#   ./bench/natlab.sh                    (root; about 1 minute; make natlab)
#   MODES=edge ./bench/natlab.sh
#   GATE=eim FGATE=apdf HAIRPIN_GATE=1 MODES=edge ./bench/natlab.sh
#   GATE=apdm EDGE_SNAT='+mapping: endpoint-dependent' MODES=edge ./bench/natlab.sh
#   CI=1 ./bench/natlab.sh               (make natlab-ci; the stage of scripts/test.sh)
#   FAMILY=6 CI=1 ./bench/natlab.sh      the same over IPv6 (NAT66, below)
#
# CI=1 runs edge only, three cases in a row, each gated, each on a new
# topology (fresh state), and checks that every namespace it made is gone:
#   edge          the default snat section: endpoint-independent mapping (UDP
#                 and TCP), source ports kept, address-and-port-dependent
#                 filtering, one-way (coturn -H), two-way and TCP hairpin through
#   edge-edm      mapping: endpoint-dependent: address-and-port-dependent mapping
#                 (TCP: dependent), address-and-port-dependent filtering, one-way
#                 hairpin dropped
#   edge-eif      filtering: endpoint-independent: endpoint-independent mapping,
#                 source ports kept, endpoint-independent filtering, one-way,
#                 two-way and TCP hairpin through
# (it ignores MODES, GATE, FGATE, HAIRPIN_GATE, PORT_GATE and EDGE_SNAT).
#
# FAMILY=6 runs every case over IPv6 (scripts/topo.sh up --ipv6): client
# fd00:10::2 (A) and ::3 (B), server 2001:db8:113::2 and ::3, edge's automap
# taking its outside IPv6 address (NAT66), Linux's ip6 masquerade. coturn's
# turnutils_natdiscovery and bench/cmd/hairpin speak STUN over IPv6 (RFC
# 5780's tests do not depend on the family), so the cases and gates are
# the same. CI_CASES (a list of labels, e.g. "edge") runs only those CI
# cases.
#
# Environment: FAMILY (4 or 6), MODES ("edge linux-nft"); the gates, on edge only:
#   GATE          "" (none), eim, adm or apdm: edge's UDP mapping (RFC 5780's
#                 verdict) must be endpoint-independent, address-dependent or
#                 address-and-port-dependent, and its TCP mapping endpoint-
#                 independent (eim) or dependent (adm, apdm)
#   FGATE         "" (none), eif, adf or apdf: edge's filtering verdict must be
#                 endpoint-independent, address-dependent or address-and-port-
#                 dependent; with adf or apdf and no HAIRPIN_GATE both one-way
#                 hairpin probes must also be dropped (no hairpinning: the filter
#                 admits nothing unsolicited)
#   HAIRPIN_GATE  1: both one-way hairpin probes, the two-way hairpin and the TCP
#                 hairpin must pass (hairpinned datagrams come from inside
#                 endpoints: the receiving mapping's filter does not apply)
#   PORT_GATE     1: the UDP and TCP mappings must keep the client's source port
# EDGE_SNAT (a YAML flow mapping replacing edge's snat section; with a
# leading "+", keys added to the topology's own: "+mapping: endpoint-dependent"),
# EDGE_BIN (an edge binary; default: built from ./cmd/edge), QUEUES (1: edge's
# queues and workers, veth queues; with 2, flows of one client port may land
# on different workers), KEEP (keep the work directory with every tool's output).
#
# Exit status: 0 when every case was classified and met its gates (without
# gates a measurement); 1 when a gate was missed or a namespace was left
# behind; 2 when a case could not be classified (a tool failed, no RFC 5780
# answer, setup failed, edge refused the snat section), after the gates of
# the cases that were.
# Needs root; installs coturn, jq, nftables, ethtool with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

MODES=${MODES:-"edge linux-nft"}
QUEUES=${QUEUES:-1}
GATE=${GATE:-} FGATE=${FGATE:-} HAIRPIN_GATE=${HAIRPIN_GATE:-} PORT_GATE=${PORT_GATE:-}
FAMILY=${FAMILY:-4}
PORT=3478 ALT_PORT=3479

die() { echo "natlab.sh: $*" >&2; exit 2; }
# The family's addresses (the server's and client's second ones are added
# per case), their prefix length and the topology option.
case $FAMILY in
4) SRV=203.0.113.2 SRV_ALT=203.0.113.3 HOST_A=10.0.0.2 HOST_B=10.0.0.3 PLEN=24 topo_fam=() ;;
6) SRV=2001:db8:113::2 SRV_ALT=2001:db8:113::3 HOST_A=fd00:10::2 HOST_B=fd00:10::3 PLEN=64 topo_fam=(--ipv6) ;;
*) die "FAMILY must be 4 or 6" ;;
esac
# ep ADDR PORT: ADDR:PORT, with IPv6 addresses in brackets.
ep() { if [[ $1 == *:* ]]; then echo "[$1]:$2"; else echo "$1:$2"; fi; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"

# The cases: "LABEL|MODE|SNAT|GATE|FGATE|HAIRPIN_GATE|PORT_GATE" (SNAT: as
# EDGE_SNAT; empty: the topology's own snat section).
cases=()
if [ -n "${CI:-}" ]; then
	cases=(
		"edge|edge||eim|apdf|1|1"
		"edge-edm|edge|+mapping: endpoint-dependent|apdm|apdf||"
		"edge-eif|edge|+filtering: endpoint-independent|eim|eif|1|1"
	)
	if [ -n "${CI_CASES:-}" ]; then
		keep=()
		for c in "${cases[@]}"; do [[ " $CI_CASES " == *" ${c%%|*} "* ]] && keep+=("$c"); done
		cases=("${keep[@]}")
	fi
else
	case $GATE in "" | eim | adm | apdm) ;; *) die "GATE must be eim, adm or apdm" ;; esac
	case $FGATE in "" | eif | adf | apdf) ;; *) die "FGATE must be eif, adf or apdf" ;; esac
	case $HAIRPIN_GATE in "" | 0 | 1) ;; *) die "HAIRPIN_GATE must be 1 or empty" ;; esac
	case $PORT_GATE in "" | 0 | 1) ;; *) die "PORT_GATE must be 1 or empty" ;; esac
	[ "$HAIRPIN_GATE" = 0 ] && HAIRPIN_GATE=
	[ "$PORT_GATE" = 0 ] && PORT_GATE=
	if [ -n "$GATE$FGATE$HAIRPIN_GATE$PORT_GATE" ] && [[ " $MODES " != *" edge "* ]]; then die "the gates need edge in MODES"; fi
	for mode in $MODES; do
		case $mode in
		edge) cases+=("edge|edge|${EDGE_SNAT:-}|$GATE|$FGATE|$HAIRPIN_GATE|$PORT_GATE") ;;
		linux-nft) cases+=("linux-nft|linux-nft||||||") ;;
		*) die "MODES: edge or linux-nft, not $mode" ;;
		esac
	done
fi
[[ "${cases[*]}" == *"|"* ]] || die "no case to run"

. scripts/need.sh
need turnserver:coturn turnutils_natdiscovery:coturn jq nft:nftables ethtool nstat:iproute2 || die "missing tools"

tmp=$(mktemp -d /tmp/natlab.XXXXXX)
topo_id= turn_pid= topo_ids=()
# teardown: the current case's STUN server and topology.
teardown() {
	if [ -n "$turn_pid" ]; then kill "$turn_pid" 2>/dev/null || true; wait "$turn_pid" 2>/dev/null || true; fi
	turn_pid=
	if [ -n "$topo_id" ]; then ./scripts/topo.sh down "$topo_id" >/dev/null 2>&1 || true; fi
	topo_id=
}
cleanup() {
	local rc=$?
	teardown
	if [ -n "${KEEP:-}" ]; then echo "natlab: work directory kept: $tmp"; else rm -rf "$tmp"; fi
	exit "$rc"
}
trap cleanup EXIT
trap 'exit 2' INT TERM

echo "== build"
if [ -z "${EDGE_BIN:-}" ]; then go build -o "$tmp/bin/edge" ./cmd/edge; EDGE_BIN=$tmp/bin/edge; fi
go build -o "$tmp/bin/hairpin" ./bench/cmd/hairpin
export EDGE_BIN

# verdict FILE TITLE: the decision turnutils_natdiscovery printed in its
# TITLE section ("Mapping", "Filtering"): the first "NAT with ..." or
# "No NAT! ..." line there; none when the test could not decide (no RFC
# 5780 answer, or the first request unanswered).
verdict() {
	awk -v t="-= $2 Behavior Discovery =-" '
		$0 == t { on = 1; next }
		/^-= .* Behavior Discovery =-$/ { on = 0 }
		on && /^(NAT with|No NAT)/ { print; exit }' "$1"
}
# short VERDICT: the table's name for a decision.
short() {
	case $1 in
	*"No NAT"*) echo "no-NAT" ;;
	*"Endpoint Independent"*) echo "endpoint-independent" ;;
	*"Address and Port Dependent"*) echo "address-and-port-dependent" ;;
	*"Address Dependent"*) echo "address-dependent" ;;
	*) echo "" ;;
	esac
}

# snapshot MODE: the middle box's drop counters as a JSON object: edge's
# drop reasons (edge stats), or the Linux middle's UdpNoPorts (IPv6:
# Udp6NoPorts; datagrams to
# its own address that no socket took: what becomes of a hairpinned packet
# or of an answer its filter refused).
snapshot() {
	if [ "$1" = edge ]; then
		"$EDGE_BIN" --socket "$EDGE_SOCK" stats -o json | jq -c '.drops // {}'
	else
		local c=UdpNoPorts
		[ "$FAMILY" = 6 ] && c=Udp6NoPorts
		ip netns exec "$NS_M" nstat -az "$c" | awk -v c="$c" '$1 == c {printf "{\"%s\": %s}\n", c, $2}'
	fi
}
# grown BEFORE AFTER: the counters that grew, "name +n, ...".
grown() {
	jq -nr --argjson a "$1" --argjson b "$2" \
		'[$b | to_entries[] | select((.value | tonumber) > (($a[.key] // 0) | tonumber)) |
		  "\(.key) +\((.value | tonumber) - (($a[.key] // 0) | tonumber))"] | join(", ")'
}

# snat_section TOPO_LINE SNAT: the snat section a case applies: SNAT
# itself, or with a leading "+" the topology's flow mapping with SNAT's keys
# added ("snat: {mode: automap}" and "+mapping: x" make "{mode: automap, mapping: x}").
snat_section() {
	local own=${1#snat: }
	if [ "${2:0:1}" = + ]; then echo "${own%\}}, ${2:1}}"; else echo "$2"; fi
}

# run_case LABEL MODE SNAT: one case, measured; writes $tmp/LABEL.result
# (shell variables) and returns non-zero when something could not be
# classified.
run_case() {
	local label=$1 mode=$2 snat=$3 out=$tmp/$1
	mkdir -p "$out"
	echo "== $label: topology"
	local t0=$SECONDS
	topo_id=$(./scripts/topo.sh up "$mode" --max-flows 65536 --queues "$QUEUES" --middle-cpus 0,1 "${topo_fam[@]}" | tail -n 1) || { topo_id=; return 2; }
	topo_ids+=("$topo_id")
	# shellcheck disable=SC1090
	. "/tmp/edgetopo/$topo_id/env"
	local mac_c mac_s
	mac_c=$(ip netns exec "$NS_C" cat "/sys/class/net/$DEV_C/address")
	mac_s=$(ip netns exec "$NS_S" cat "/sys/class/net/$DEV_S/address")
	# (run_case runs where set -e does not apply: each step checks itself.)
	local nodad=()
	[ "$FAMILY" = 6 ] && nodad=(nodad)
	ip -n "$NS_S" addr add "$SRV_ALT/$PLEN" dev "$DEV_S" "${nodad[@]}" || return 2
	ip -n "$NS_C" addr add "$HOST_B/$PLEN" dev "$DEV_C" "${nodad[@]}" || return 2
	# Static neighbours, as topo.sh does for the first addresses: no
	# resolution during a run (edge drops a packet it has no MAC for).
	ip -n "$NS_M" neigh replace "$SRV_ALT" lladdr "$mac_s" dev "$DEV_OUT" nud permanent || return 2
	ip -n "$NS_M" neigh replace "$HOST_B" lladdr "$mac_c" dev "$DEV_IN" nud permanent || return 2
	echo "   namespaces $NS_C $NS_M $NS_S"

	EDGE_SOCK=${EDGE_SOCK:-}
	local ctl=("$EDGE_BIN" --socket "$EDGE_SOCK")
	if [ "$mode" = edge ] && [ -n "$snat" ]; then
		local section
		section=$(snat_section "$(grep '^snat: ' "$EDGE_CONFIG")" "$snat")
		sed "s|^snat: .*|snat: $section|" "$EDGE_CONFIG" >"$out/edge-snat.yaml"
		"${ctl[@]}" config apply -f "$out/edge-snat.yaml" | sed 's/^/   /' || return 2
		# (EDGE_CONFIG is the file edge started with, so the next line
		# shows what the case applied.)
		cp "$out/edge-snat.yaml" "$EDGE_CONFIG"
	fi
	[ "$mode" = edge ] && grep '^snat:' "$EDGE_CONFIG" | sed 's/^/   edge /'

	# coturn as a STUN server only, on the two server addresses; its own
	# configuration file (not /etc/turnserver.conf), no CLI, no TLS, no
	# relay, its database and pid file in the work directory.
	cat >"$out/turnserver.conf" <<EOF
listening-ip=$SRV
listening-ip=$SRV_ALT
listening-port=$PORT
alt-listening-port=$ALT_PORT
stun-only
no-cli
no-tls
no-dtls
no-auth
userdb=$out/turndb
pidfile=$out/turnserver.pid
log-file=stdout
EOF
	ip netns exec "$NS_S" turnserver -c "$out/turnserver.conf" >"$out/turnserver.log" 2>&1 </dev/null &
	turn_pid=$!
	# (UDP and TCP: the TCP mapping probe uses STUN over TCP.)
	local ok= want="$(ep "$SRV" "$PORT") $(ep "$SRV" "$ALT_PORT") $(ep "$SRV_ALT" "$PORT") $(ep "$SRV_ALT" "$ALT_PORT")" a
	for _ in $(seq 100); do
		ok=1
		local socks tsocks
		socks=$(ip netns exec "$NS_S" ss -Hlun 2>/dev/null | awk '{print $4}')
		tsocks=$(ip netns exec "$NS_S" ss -Hltn 2>/dev/null | awk '{print $4}')
		for a in $want; do grep -Fqx "$a" <<<"$socks" && grep -Fqx "$a" <<<"$tsocks" || ok=; done
		[ -n "$ok" ] && break
		kill -0 "$turn_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "natlab.sh: turnserver is not listening on $want (UDP and TCP)" >&2; tail -20 "$out/turnserver.log" >&2; return 2; }
	echo "   ($((SECONDS - t0)) s)"

	echo "== $label: turnutils_natdiscovery -m -f (client $HOST_A, server $SRV:$PORT)"
	t0=$SECONDS
	local before after
	before=$(snapshot "$mode") || return 2
	ip netns exec "$NS_C" timeout 60 turnutils_natdiscovery -m -f -L "$HOST_A" -p "$PORT" "$SRV" >"$out/natdiscovery.txt" 2>&1 ||
		{ echo "natlab.sh: turnutils_natdiscovery failed:" >&2; tail -20 "$out/natdiscovery.txt" >&2; return 2; }
	local mapping filtering
	mapping=$(verdict "$out/natdiscovery.txt" Mapping)
	filtering=$(verdict "$out/natdiscovery.txt" Filtering)
	echo "   ${mapping:-no mapping verdict}"
	echo "   ${filtering:-no filtering verdict}"
	after=$(snapshot "$mode") || return 2
	local counted_mf
	counted_mf=$(grown "$before" "$after")
	echo "   ($((SECONDS - t0)) s; counted by the middle box meanwhile: ${counted_mf:-nothing})"
	# The mapping test's three answers, for the report: the local address
	# and the mapping each request got.
	local locals mappeds
	locals=$(awk '/^-= Mapping/ {on=1} /^-= Filtering/ {on=0} on && /Local addr/ {print $NF}' "$out/natdiscovery.txt" | tr '\n' ' ')
	mappeds=$(awk '/^-= Mapping/ {on=1} /^-= Filtering/ {on=0} on && /UDP reflexive addr/ {print $NF}' "$out/natdiscovery.txt" | tr '\n' ' ')
	echo "   mapping test: local $locals-> mapped $mappeds"

	before=$(snapshot "$mode") || return 2
	echo "== $label: hairpin one-way, coturn (turnutils_natdiscovery -H: A's second socket to A's first socket's mapping)"
	t0=$SECONDS
	ip netns exec "$NS_C" timeout 30 turnutils_natdiscovery -H -L "$HOST_A" -p "$PORT" "$SRV" >"$out/natdiscovery-H.txt" 2>&1 ||
		{ echo "natlab.sh: turnutils_natdiscovery -H failed:" >&2; tail -20 "$out/natdiscovery-H.txt" >&2; return 2; }
	local hp_coturn=no
	grep -q "Received a request (maybe a successful hairpinning)" "$out/natdiscovery-H.txt" && hp_coturn=yes
	grep -q "UDP reflexive addr" "$out/natdiscovery-H.txt" ||
		{ echo "natlab.sh: turnutils_natdiscovery -H learnt no mapping" >&2; tail -20 "$out/natdiscovery-H.txt" >&2; return 2; }
	echo "   hairpin: $hp_coturn ($((SECONDS - t0)) s)"
	echo "== $label: hairpin, two hosts (bench/cmd/hairpin: B $HOST_B to A $HOST_A's mapping, then both to each other's)"
	t0=$SECONDS
	ip netns exec "$NS_C" "$tmp/bin/hairpin" --server "$(ep "$SRV" "$PORT")" --a "$HOST_A" --b "$HOST_B" --count 5 --interval 100ms --json \
		>"$out/hairpin.json" 2>"$out/hairpin.err" ||
		{ echo "natlab.sh: hairpin probe failed:" >&2; cat "$out/hairpin.err" >&2; return 2; }
	# dir KEY: one direction in a word: "5/5 external", "0/5".
	local jdir='def dir: if .received > 0 then "\(.received)/\(.sent) \(.source_kind)" else "0/\(.sent)" end;'
	local hp_one hp_two one_way a_to_b b_to_a
	hp_one=$(jq -r 'if .one_way_hairpin then "yes" else "no" end' "$out/hairpin.json")
	hp_two=$(jq -r 'if .hairpin then "yes" else "no" end' "$out/hairpin.json")
	one_way=$(jq -r "$jdir .one_way | dir" "$out/hairpin.json")
	a_to_b=$(jq -r "$jdir .a_to_b | dir" "$out/hairpin.json")
	b_to_a=$(jq -r "$jdir .b_to_a | dir" "$out/hairpin.json")
	jq -r '"   A \(.a_local) -> \(.a_mapped), B \(.b_local) -> \(.b_mapped)"' "$out/hairpin.json"
	jq -r "$jdir"' "   one-way B -> A: \(.one_way | dir)\(if .one_way.seen_from then " from \(.one_way.seen_from)" else "" end)",
		"   two-way A -> B: \(.a_to_b | dir)\(if .a_to_b.seen_from then " from \(.a_to_b.seen_from)" else "" end)",
		"   two-way B -> A: \(.b_to_a | dir)\(if .b_to_a.seen_from then " from \(.b_to_a.seen_from)" else "" end)"' "$out/hairpin.json"
	echo "   hairpin: one-way $hp_one, two-way $hp_two ($((SECONDS - t0)) s)"
	sleep 0.2
	after=$(snapshot "$mode") || return 2
	local counted
	counted=$(grown "$before" "$after")
	echo "   counted by the middle box during the hairpin probes: ${counted:-nothing}"

	echo "== $label: TCP mapping (bench/cmd/hairpin --tcp-servers: one local port of A, STUN over TCP to $SRV:$PORT and $SRV_ALT:$ALT_PORT, both open)"
	ip netns exec "$NS_C" "$tmp/bin/hairpin" --tcp-servers "$(ep "$SRV" "$PORT"),$(ep "$SRV_ALT" "$ALT_PORT")" --a "$HOST_A" --json \
		>"$out/tcp.json" 2>"$out/tcp.err" ||
		{ echo "natlab.sh: TCP mapping probe failed:" >&2; cat "$out/tcp.err" >&2; return 2; }
	local tcp_mapping tcp_port tcp_kept
	tcp_mapping=$(jq -r 'if .endpoint_independent then "endpoint-independent" else "dependent" end' "$out/tcp.json")
	tcp_port=$(jq -r '"\(.local | split(":") | last)->\(.mapped[0] | split(":") | last)"' "$out/tcp.json")
	tcp_kept=$(jq -r 'if .port_kept then "yes" else "no" end' "$out/tcp.json")
	jq -r '"   local \(.local) -> mapped \(.mapped | join(" "))"' "$out/tcp.json"
	echo "   TCP mapping: $tcp_mapping, port $tcp_port ($tcp_kept)"
	echo "== $label: TCP hairpin (bench/cmd/hairpin --tcp-hairpin: A and B connect to each other's TCP mapping at once)"
	t0=$SECONDS
	ip netns exec "$NS_C" "$tmp/bin/hairpin" --tcp-hairpin --server "$(ep "$SRV" "$PORT")" --a "$HOST_A" --b "$HOST_B" --timeout 3s --json \
		>"$out/tcp-hairpin.json" 2>"$out/tcp-hairpin.err" ||
		{ echo "natlab.sh: TCP hairpin probe failed:" >&2; cat "$out/tcp-hairpin.err" >&2; return 2; }
	local tcp_hp
	tcp_hp=$(jq -r 'if .hairpin then "yes" else "no" end' "$out/tcp-hairpin.json")
	jq -r '"   A \(.a_local) -> \(.a_mapped), B \(.b_local) -> \(.b_mapped)",
		"   A -> B'"'"'s mapping: \(.a_err // "connected"); B -> A'"'"'s mapping: \(.b_err // "connected")"' "$out/tcp-hairpin.json"
	echo "   TCP hairpin: $tcp_hp ($((SECONDS - t0)) s)"

	local local_port mapped_port preserved
	local_port=$(awk '{print $1}' <<<"$locals"); local_port=${local_port##*:}
	mapped_port=$(awk '{print $1}' <<<"$mappeds"); mapped_port=${mapped_port##*:}
	preserved=no
	[ -n "$local_port" ] && [ "$local_port" = "$mapped_port" ] && preserved=yes
	cat >"$tmp/$label.result" <<EOF
R_MAPPING='$(short "$mapping")'
R_FILTERING='$(short "$filtering")'
R_PORT='$local_port->$mapped_port'
R_PRESERVED='$preserved'
R_MAPPED='$mappeds'
R_HP_COTURN='$hp_coturn'
R_HP_ONE='$hp_one'
R_HP_TWO='$hp_two'
R_ONE_WAY='$one_way'
R_A_TO_B='$a_to_b'
R_B_TO_A='$b_to_a'
R_COUNTED='${counted:-nothing}'
R_TCP_MAPPING='$tcp_mapping'
R_TCP_PORT='$tcp_port'
R_TCP_KEPT='$tcp_kept'
R_TCP_HP='$tcp_hp'
R_COUNTED_MF='${counted_mf:-nothing}'
EOF
	teardown
	[ -n "$(short "$mapping")" ] && [ -n "$(short "$filtering")" ] || {
		echo "natlab.sh: $label: no RFC 5780 verdict (see $out/natdiscovery.txt; KEEP=1 keeps it):" >&2
		sed 's/^/  | /' "$out/natdiscovery.txt" | tail -30 >&2
		return 2
	}
}

# check_gates LABEL GATE FGATE HAIRPIN_GATE PORT_GATE: prints one line per
# gate of the case; returns 1 when one was missed.
check_gates() {
	local label=$1 gate=$2 fgate=$3 hpgate=$4 pgate=$5 missed=0
	# shellcheck disable=SC1090
	. "$tmp/$label.result"
	# expect WHAT GOT WANT
	expect() {
		if [ "$2" = "$3" ]; then
			echo "  $label: $1: $2 (met)"
		else
			echo "  $label: $1: $2, want $3 (MISSED)"
			missed=1
		fi
	}
	long() { case $1 in eim | eif) echo endpoint-independent ;; adm | adf) echo address-dependent ;; apdm | apdf) echo address-and-port-dependent ;; esac; }
	if [ -n "$gate" ]; then
		expect "UDP mapping (GATE=$gate)" "$R_MAPPING" "$(long "$gate")"
		# The TCP probe tells endpoint-independent from dependent only.
		expect "TCP mapping (GATE=$gate)" "$R_TCP_MAPPING" "$([ "$gate" = eim ] && echo endpoint-independent || echo dependent)"
	fi
	if [ -n "$pgate" ]; then
		expect "UDP source port kept (PORT_GATE) $R_PORT" "$R_PRESERVED" yes
		expect "TCP source port kept (PORT_GATE) $R_TCP_PORT" "$R_TCP_KEPT" yes
	fi
	if [ -n "$fgate" ]; then
		expect "filtering (FGATE=$fgate)" "$R_FILTERING" "$(long "$fgate")"
		if [ "$fgate" != eif ] && [ -z "$hpgate" ]; then
			# No hairpinning (endpoint-dependent mapping): a hairpinned
			# datagram is an unsolicited one, and the filter drops it.
			expect "one-way hairpin, coturn -H, dropped (FGATE=$fgate)" "$R_HP_COTURN" no
			expect "one-way hairpin B -> A $R_ONE_WAY, dropped (FGATE=$fgate)" "$R_HP_ONE" no
		fi
	fi
	if [ -n "$hpgate" ]; then
		# Hairpinned datagrams come from inside endpoints: the receiving
		# mapping's filter does not apply to them (RFC 4787 REQ-9), so one
		# side's datagram gets through whatever the filtering.
		expect "one-way hairpin, coturn -H (HAIRPIN_GATE)" "$R_HP_COTURN" yes
		expect "one-way hairpin B -> A $R_ONE_WAY (HAIRPIN_GATE)" "$R_HP_ONE" yes
		expect "two-way hairpin A -> B $R_A_TO_B, B -> A $R_B_TO_A (HAIRPIN_GATE)" "$R_HP_TWO" yes
		expect "TCP hairpin, simultaneous open (HAIRPIN_GATE)" "$R_TCP_HP" yes
	fi
	return "$missed"
}

start=$SECONDS
failed=
for c in "${cases[@]}"; do
	IFS='|' read -r label mode snat _ <<<"$c"
	run_case "$label" "$mode" "$snat" || { failed="$failed $label"; teardown; }
done

echo
echo "== NAT behaviour over IPv$FAMILY (RFC 4787 / RFC 5780; coturn $(dpkg-query -W -f '${Version}' coturn 2>/dev/null) turnutils_natdiscovery and bench/cmd/hairpin; $((SECONDS - start)) s)"
{
	printf 'CASE\tMAPPING\tFILTERING\tSRC PORT KEPT\tONE-WAY (coturn -H)\tONE-WAY B->A\tTWO-WAY A->B\tTWO-WAY B->A\tTCP MAPPING\tTCP PORT KEPT\tTCP HAIRPIN\tCOUNTED: -m -f\tCOUNTED: HAIRPIN\n'
	for c in "${cases[@]}"; do
		IFS='|' read -r label _ <<<"$c"
		if [ -f "$tmp/$label.result" ]; then
			# shellcheck disable=SC1090
			. "$tmp/$label.result"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$label" "${R_MAPPING:-?}" "${R_FILTERING:-?}" "$R_PORT ($R_PRESERVED)" \
				"$R_HP_COTURN" "$R_ONE_WAY" "$R_A_TO_B" "$R_B_TO_A" "$R_TCP_MAPPING" "$R_TCP_PORT ($R_TCP_KEPT)" "$R_TCP_HP" "$R_COUNTED_MF" "$R_COUNTED"
		else
			printf '%s\t%s\n' "$label" "(not measured)"
		fi
	done
} | column -t -s $'\t'
for c in "${cases[@]}"; do
	IFS='|' read -r label _ snat _ <<<"$c"
	[ -f "$tmp/$label.result" ] || continue
	. "$tmp/$label.result"
	echo "  $label${snat:+ (snat $snat)}: mappings of one local port toward $SRV:$PORT, $SRV_ALT:$PORT[, $SRV_ALT:$ALT_PORT]: $R_MAPPED"
done

# Every namespace of every case is gone (CI runs on a shared machine).
leftover=
for id in "${topo_ids[@]}"; do
	for ns in "egt$id-c" "egt$id-m" "egt$id-s"; do
		[ -e "/run/netns/$ns" ] && leftover="$leftover $ns"
	done
done
[ -z "$leftover" ] || echo "natlab.sh: namespaces left behind:$leftover" >&2

missed=
gated=
for c in "${cases[@]}"; do
	IFS='|' read -r label _ _ gate fgate hpgate pgate <<<"$c"
	[ -n "$gate$fgate$hpgate$pgate" ] && [ -f "$tmp/$label.result" ] || continue
	[ -n "$gated" ] || { echo "== gates"; gated=1; }
	check_gates "$label" "$gate" "$fgate" "$hpgate" "$pgate" || missed="$missed $label"
done
[ -z "$failed" ] || die "could not classify:$failed"
if [ -n "$missed" ]; then
	echo "natlab: gates missed:$missed" >&2
	exit 1
fi
if [ -n "$leftover" ]; then exit 1; fi
[ -z "$gated" ] || echo "natlab: every gate met"
echo "natlab: OK${CI:+ (CI: ${#cases[@]} cases, every namespace removed)}"
