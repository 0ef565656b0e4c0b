#!/usr/bin/env bash
# natlab.sh: how does the middle box NAT, as a real STUN client sees it?
# RFC 4787 / RFC 5780 behaviour of edge and of Linux nftables, side by side.
#
# Lab (scripts/topo.sh): client ns -- middle (edge, SNAT automap | Linux
# nftables masquerade) -- server ns. The server gets a second address (RFC
# 5780 needs an alternate address and port) and runs coturn's turnserver as
# a STUN server on 203.0.113.2 and 203.0.113.3, ports 3478 and 3479. The
# client gets a second address (host B). Nothing leaves the namespaces.
#
#   client ns  10.0.0.2 (A), 10.0.0.3 (B) ── [ middle: edge | nft ] 203.0.113.1 ── 203.0.113.2, .3  server ns (turnserver)
#
# Per middle box:
#   mapping    turnutils_natdiscovery -m: one local port, Binding requests to
#              203.0.113.2:3478, then .3:3478, then .3:3479; endpoint-independent
#              when the first two saw the same mapping, address-dependent when the
#              last two did, else address-and-port-dependent (RFC 5780 4.3)
#   filtering  turnutils_natdiscovery -f: a new local port; Binding to .2:3478,
#              then the same with CHANGE-REQUEST (answer from .3:3479), then change
#              port only (answer from .2:3479): which answers come back (4.4)
#   port       whether the mapping kept the client's source port (Linux does
#              when the port is free; edge allocates)
#   hairpin    two probes: coturn's -H (two sockets of A: the second sends a
#              Binding request to the first one's mapping), and bench/cmd/hairpin
#              (host B sends to host A's mapping learnt via STUN; prints the
#              source A saw: RFC 4787 REQ-9 wants B's external mapping)
#   counts     what the middle box counted during the -m -f run and during the
#              hairpin probes: edge's drop reasons (`edge stats`), the Linux
#              middle's UdpNoPorts (datagrams to its own address no socket took)
#
#   ./bench/natlab.sh                    (root; about 1 minute; make natlab)
#   MODES=edge ./bench/natlab.sh
#   GATE=eim ./bench/natlab.sh           exit 1 unless edge maps endpoint-independently
#   GATE=apdm EDGE_SNAT='{mode: automap, ...}' ./bench/natlab.sh
#                                        another snat section for edge (applied with
#                                        `edge config apply`), and the mapping it must give
#
# Environment: MODES ("edge linux-nft"), GATE ("": none; eim, adm or apdm:
# edge's mapping must be endpoint-independent, address-dependent or
# address-and-port-dependent), EDGE_SNAT (a YAML flow mapping replacing
# edge's snat section), EDGE_BIN (an edge binary; default: built from
# ./cmd/edge), QUEUES (1: edge's queues and workers, veth queues; with 2,
# flows of one client port may land on different workers), KEEP (keep the work directory with every tool's output).
#
# Exit status: 0 when every middle box was classified (a measurement, not a
# gate, unless GATE is set); 1 when GATE is set and edge missed it; 2 when
# it could not classify (a tool failed, no RFC 5780 answer, setup failed).
# Needs root; installs coturn, jq, nftables, ethtool with apt-get when missing.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:/usr/sbin:/sbin:$PATH"

MODES=${MODES:-"edge linux-nft"}
QUEUES=${QUEUES:-1}
GATE=${GATE:-}
SRV=203.0.113.2 SRV_ALT=203.0.113.3 PORT=3478 ALT_PORT=3479
HOST_A=10.0.0.2 HOST_B=10.0.0.3

die() { echo "natlab.sh: $*" >&2; exit 2; }
[ "$(id -u)" -eq 0 ] || die "needs root (network namespaces, XDP)"
case $GATE in "" | eim | adm | apdm) ;; *) die "GATE must be eim, adm or apdm" ;; esac
if [ -n "$GATE" ] && [[ " $MODES " != *" edge "* ]]; then die "GATE=$GATE needs edge in MODES"; fi
. scripts/need.sh
need turnserver:coturn turnutils_natdiscovery:coturn jq nft:nftables ethtool nstat:iproute2 || die "missing tools"

tmp=$(mktemp -d /tmp/natlab.XXXXXX)
topo_id= turn_pid=
# teardown: the current middle box's STUN server and topology.
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
# drop reasons (edge stats), or the Linux middle's UdpNoPorts (datagrams to
# its own address that no socket took: what becomes of a hairpinned packet
# or of an answer its filter refused).
snapshot() {
	if [ "$1" = edge ]; then
		"$EDGE_BIN" --socket "$EDGE_SOCK" stats -o json | jq -c '.drops // {}'
	else
		ip netns exec "$NS_M" nstat -az UdpNoPorts | awk '$1 == "UdpNoPorts" {printf "{\"UdpNoPorts\": %s}\n", $2}'
	fi
}
# grown BEFORE AFTER: the counters that grew, "name +n, ...".
grown() {
	jq -nr --argjson a "$1" --argjson b "$2" \
		'[$b | to_entries[] | select((.value | tonumber) > (($a[.key] // 0) | tonumber)) |
		  "\(.key) +\((.value | tonumber) - (($a[.key] // 0) | tonumber))"] | join(", ")'
}

# run_mode MODE: one middle box, measured; writes $tmp/MODE.result (shell
# variables) and returns non-zero when something could not be classified.
run_mode() {
	local mode=$1 out=$tmp/$1
	mkdir -p "$out"
	echo "== $mode: topology"
	topo_id=$(./scripts/topo.sh up "$mode" --max-flows 65536 --queues "$QUEUES" --middle-cpus 0,1 | tail -n 1) || { topo_id=; return 2; }
	# shellcheck disable=SC1090
	. "/tmp/edgetopo/$topo_id/env"
	local mac_c mac_s
	mac_c=$(ip netns exec "$NS_C" cat "/sys/class/net/$DEV_C/address")
	mac_s=$(ip netns exec "$NS_S" cat "/sys/class/net/$DEV_S/address")
	# (run_mode runs where set -e does not apply: each step checks itself.)
	ip -n "$NS_S" addr add "$SRV_ALT/24" dev "$DEV_S" || return 2
	ip -n "$NS_C" addr add "$HOST_B/24" dev "$DEV_C" || return 2
	# Static neighbours, as topo.sh does for the first addresses: no
	# resolution during a run (edge drops a packet it has no MAC for).
	ip -n "$NS_M" neigh replace "$SRV_ALT" lladdr "$mac_s" dev "$DEV_OUT" nud permanent || return 2
	ip -n "$NS_M" neigh replace "$HOST_B" lladdr "$mac_c" dev "$DEV_IN" nud permanent || return 2
	echo "   namespaces $NS_C $NS_M $NS_S"

	EDGE_SOCK=${EDGE_SOCK:-}
	local ctl=("$EDGE_BIN" --socket "$EDGE_SOCK")
	if [ "$mode" = edge ] && [ -n "${EDGE_SNAT:-}" ]; then
		sed "s|^snat: .*|snat: $EDGE_SNAT|" "$EDGE_CONFIG" >"$out/edge-snat.yaml"
		"${ctl[@]}" config apply -f "$out/edge-snat.yaml" | sed 's/^/   /' || return 2
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
	local ok= want="$SRV:$PORT $SRV:$ALT_PORT $SRV_ALT:$PORT $SRV_ALT:$ALT_PORT" a
	for _ in $(seq 100); do
		ok=1
		local socks
		socks=$(ip netns exec "$NS_S" ss -Hlun 2>/dev/null | awk '{print $4}')
		for a in $want; do grep -qx "$a" <<<"$socks" || ok=; done
		[ -n "$ok" ] && break
		kill -0 "$turn_pid" 2>/dev/null || break
		sleep 0.1
	done
	[ -n "$ok" ] || { echo "natlab.sh: turnserver is not listening on $want" >&2; tail -20 "$out/turnserver.log" >&2; return 2; }

	echo "== $mode: turnutils_natdiscovery -m -f (client $HOST_A, server $SRV:$PORT)"
	local t0=$SECONDS before after
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
	echo "== $mode: hairpin, coturn (turnutils_natdiscovery -H: A's second socket to A's first socket's mapping)"
	ip netns exec "$NS_C" timeout 30 turnutils_natdiscovery -H -L "$HOST_A" -p "$PORT" "$SRV" >"$out/natdiscovery-H.txt" 2>&1 ||
		{ echo "natlab.sh: turnutils_natdiscovery -H failed:" >&2; tail -20 "$out/natdiscovery-H.txt" >&2; return 2; }
	local hp_coturn=no
	grep -q "Received a request (maybe a successful hairpinning)" "$out/natdiscovery-H.txt" && hp_coturn=yes
	grep -q "UDP reflexive addr" "$out/natdiscovery-H.txt" ||
		{ echo "natlab.sh: turnutils_natdiscovery -H learnt no mapping" >&2; tail -20 "$out/natdiscovery-H.txt" >&2; return 2; }
	echo "   hairpin: $hp_coturn"
	echo "== $mode: hairpin, two hosts (bench/cmd/hairpin: B $HOST_B sends to A $HOST_A's mapping)"
	ip netns exec "$NS_C" "$tmp/bin/hairpin" --server "$SRV:$PORT" --a "$HOST_A" --b "$HOST_B" --json >"$out/hairpin.json" 2>"$out/hairpin.err" ||
		{ echo "natlab.sh: hairpin probe failed:" >&2; cat "$out/hairpin.err" >&2; return 2; }
	local hp hp_src
	hp=$(jq -r 'if .hairpin then "yes" else "no" end' "$out/hairpin.json")
	hp_src=$(jq -r 'if .hairpin then "\(.seen_from) (\(.source_kind))" else "-" end' "$out/hairpin.json")
	jq -r '"   A \(.a_local) -> \(.a_mapped), B \(.b_local) -> \(.b_mapped)"' "$out/hairpin.json"
	if [ "$hp" = yes ]; then echo "   hairpin: yes, A saw B as $hp_src"; else echo "   hairpin: no"; fi
	sleep 0.2
	after=$(snapshot "$mode") || return 2
	local counted
	counted=$(grown "$before" "$after")
	echo "   counted by the middle box during the hairpin probes: ${counted:-nothing}"

	local local_port mapped_port preserved
	local_port=$(awk '{print $1}' <<<"$locals"); local_port=${local_port##*:}
	mapped_port=$(awk '{print $1}' <<<"$mappeds"); mapped_port=${mapped_port##*:}
	preserved=no
	[ -n "$local_port" ] && [ "$local_port" = "$mapped_port" ] && preserved=yes
	cat >"$tmp/$mode.result" <<EOF
R_MAPPING='$(short "$mapping")'
R_FILTERING='$(short "$filtering")'
R_PORT='$local_port->$mapped_port ($preserved)'
R_MAPPED='$mappeds'
R_HP_COTURN='$hp_coturn'
R_HP='$hp'
R_HP_SRC='$hp_src'
R_COUNTED='${counted:-nothing}'
R_COUNTED_MF='${counted_mf:-nothing}'
EOF
	teardown
	[ -n "$(short "$mapping")" ] && [ -n "$(short "$filtering")" ] || {
		echo "natlab.sh: $mode: no RFC 5780 verdict (see $out/natdiscovery.txt; KEEP=1 keeps it):" >&2
		sed 's/^/  | /' "$out/natdiscovery.txt" | tail -30 >&2
		return 2
	}
}

start=$SECONDS
failed=
for mode in $MODES; do
	case $mode in edge | linux-nft) ;; *) die "MODES: edge or linux-nft, not $mode" ;; esac
	run_mode "$mode" || { failed="$failed $mode"; teardown; }
done

echo
echo "== NAT behaviour (RFC 4787 / RFC 5780; coturn $(dpkg-query -W -f '${Version}' coturn 2>/dev/null) turnutils_natdiscovery and bench/cmd/hairpin; $((SECONDS - start)) s)"
{
	printf 'MIDDLE\tMAPPING\tFILTERING\tSRC PORT KEPT\tHAIRPIN (coturn -H)\tHAIRPIN (B->A)\tA SAW B AS\tCOUNTED: -m -f\tCOUNTED: HAIRPIN\n'
	for mode in $MODES; do
		if [ -f "$tmp/$mode.result" ]; then
			# shellcheck disable=SC1090
			. "$tmp/$mode.result"
			printf '%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n' "$mode" "${R_MAPPING:-?}" "${R_FILTERING:-?}" "$R_PORT" "$R_HP_COTURN" "$R_HP" "$R_HP_SRC" "$R_COUNTED_MF" "$R_COUNTED"
		else
			printf '%s\t%s\n' "$mode" "(not measured)"
		fi
	done
} | column -t -s $'\t'
for mode in $MODES; do
	[ -f "$tmp/$mode.result" ] || continue
	. "$tmp/$mode.result"
	echo "  $mode: mappings of one local port toward $SRV:$PORT, $SRV_ALT:$PORT[, $SRV_ALT:$ALT_PORT]: $R_MAPPED"
done

[ -z "$failed" ] || die "could not classify:$failed"
if [ -n "$GATE" ]; then
	. "$tmp/edge.result"
	want=$(case $GATE in eim) echo endpoint-independent ;; adm) echo address-dependent ;; apdm) echo address-and-port-dependent ;; esac)
	if [ "$R_MAPPING" != "$want" ]; then
		echo "natlab: GATE=$GATE missed: edge's mapping is $R_MAPPING, want $want" >&2
		exit 1
	fi
	echo "natlab: GATE=$GATE met: edge's mapping is $want"
fi
echo "natlab: OK"
