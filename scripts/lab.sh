#!/usr/bin/env bash
# lab.sh: run edge between a client and a server namespace, send it real
# traffic, show what crossed, and tear everything down (also on failure).
#
#   ./scripts/lab.sh                   edge in the middle: one 20 MB HTTP download, an unsolicited
#                                      inbound connection (dropped: checked on the wire), edge's counters
#   PEER=linux ./scripts/lab.sh        the same with Linux in the middle instead: nftables
#                                      masquerade + conntrack + a stateful forward rule
#   SIZE=200000000 ./scripts/lab.sh    download size in bytes
#   KEEP=1 ./scripts/lab.sh            leave the lab up afterwards (prints how to remove it)
#   EDGE_ARGS="--cpuprofile /tmp/edge.prof" ./scripts/lab.sh   extra flags for edge run
#
# With edge in the middle it then drives the control plane as an operator
# would: edge status, edge flows, edge config apply (a rule that drops new
# HTTP connections, checked, then the original rules back), edge events,
# edge stats and the Prometheus /metrics page.
#
#   client ns  c0 10.0.0.2/24 ── in 10.0.0.1/24 [ edge ns: edge run ] out 203.0.113.1/24 ── s0 203.0.113.2/24  server ns
#
# The server has no route back to 10.0.0.0/24: it can only answer because
# edge translates the client to 203.0.113.1 (SNAT automap). Needs root;
# installs ethtool, curl, tcpdump (and nftables for PEER=linux) if missing
# (apt, scripts/need.sh).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$PATH"
[ "$(id -u)" -eq 0 ] || { echo "lab.sh: needs root (network namespaces, XDP)" >&2; exit 1; }
PEER=${PEER:-edge}
SIZE=${SIZE:-20000000}
. scripts/need.sh
need ethtool curl tcpdump python3
[ "$PEER" = linux ] && need nft:nftables

id=$$
C=edgelab-c-$id E=edgelab-e-$id S=edgelab-s-$id
tmp=$(mktemp -d /tmp/edgelab.XXXXXX)
edge_pid= http_pid= capture_pid=
cleanup() {
	[ -n "$http_pid" ] && kill "$http_pid" 2>/dev/null || true
	[ -n "$capture_pid" ] && kill "$capture_pid" 2>/dev/null || true
	if [ -n "$edge_pid" ] && kill -0 "$edge_pid" 2>/dev/null; then
		kill -INT "$edge_pid"; wait "$edge_pid" 2>/dev/null || true
	fi
	if [ -z "${KEEP:-}" ]; then
		for ns in $C $E $S; do ip netns del "$ns" 2>/dev/null || true; done
		rm -rf "$tmp"
	else
		echo "lab kept: namespaces $C $E $S; remove with: ip netns del $C; ip netns del $E; ip netns del $S"
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
for x in "$C c0 10.0.0.2/24" "$E in 10.0.0.1/24" "$E out 203.0.113.1/24" "$S s0 203.0.113.2/24"; do
	set -- $x
	ip netns exec "$1" sysctl -qw net.ipv6.conf."$2".disable_ipv6=1
	ip -n "$1" addr add "$3" dev "$2"
	ip -n "$1" link set "$2" up
done
ip -n $C route add default via 10.0.0.1
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
snat: {mode: automap, ports: "1024-65535"}
rules:
  - {name: outbound, zone: inside, action: allow}
default_action: drop
EOF

if [ "$PEER" = linux ]; then
	echo "== Linux in the middle (in $E): forwarding, nftables masquerade + conntrack + stateful rule"
	ip netns exec $E sysctl -qw net.ipv4.ip_forward=1
	ip netns exec $E nft -f - <<NFT
table ip lab {
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
else
	echo "== edge run (in $E)"
	ip netns exec $E ip link set lo up
	ip netns exec $E "$tmp/edge" run --config "$tmp/edge.yaml" --socket "$tmp/edge.sock" \
		--metrics 127.0.0.1:9100 ${EDGE_ARGS:-} >"$tmp/edge.log" 2>&1 &
	edge_pid=$!
	for _ in $(seq 50); do grep -q "forwarding between" "$tmp/edge.log" && break; sleep 0.1; done
	grep -q "forwarding between" "$tmp/edge.log" || { cat "$tmp/edge.log"; echo "lab.sh: edge did not start" >&2; exit 1; }
	sed 's/^/  edge: /' "$tmp/edge.log"
fi

echo "== HTTP server (in $S) and a $SIZE-byte download from the client"
mkdir -p "$tmp/www" && head -c "$SIZE" /dev/urandom >"$tmp/www/blob"
ip netns exec $S python3 -m http.server 8080 --bind 203.0.113.2 --directory "$tmp/www" >"$tmp/http.log" 2>&1 &
http_pid=$!
for _ in $(seq 50); do ip netns exec $S bash -c 'exec 3<>/dev/tcp/203.0.113.2/8080' 2>/dev/null && break; sleep 0.1; done
ip netns exec $C curl -sS --retry 3 --retry-connrefused --max-time 120 -o "$tmp/got" \
	-w '  curl: HTTP %{http_code}, %{size_download} bytes in %{time_total} s (%{speed_download} B/s)\n' \
	http://203.0.113.2:8080/blob | tee "$tmp/curl.out"
cmp -s "$tmp/got" "$tmp/www/blob" || { echo "lab.sh: the file arrived damaged or incomplete" >&2; exit 1; }
echo "  the file arrived intact"
if [ -n "${RESULT:-}" ]; then grep -o '([0-9.]* B/s)' "$tmp/curl.out" | tr -d '()B/s ' >"$RESULT"; fi
echo "  the server saw the request from: $(grep -o '^[0-9.]*' "$tmp/http.log" | sort -u | tr '\n' ' ')(the SNAT address; the client is 10.0.0.2)"

echo "== unsolicited connection from the server side to the SNAT address (must fail; checked on the wire)"
# What comes back is captured on the server's interface: with edge in the
# middle nothing may (default_action: drop); Linux answers for its own
# address with the kernel's TCP reset (nothing listens on port 22, and the
# forward chain's policy does not see traffic to the box itself).
ip netns exec $S tcpdump -i s0 -n -U --immediate-mode -w "$tmp/inbound.pcap" "tcp port 22 and host 203.0.113.1" 2>"$tmp/tcpdump.log" &
capture_pid=$!
for _ in $(seq 50); do grep -q "listening on" "$tmp/tcpdump.log" && break; sleep 0.1; done
if ip netns exec $S timeout 2 bash -c 'exec 3<>/dev/tcp/203.0.113.1/22' 2>/dev/null; then
	echo "lab.sh: an inbound connection got through" >&2; exit 1
fi
sleep 0.5 # a reset or a retransmission still on its way
kill -INT "$capture_pid"; wait "$capture_pid" 2>/dev/null || true; capture_pid=
count() { tcpdump -r "$tmp/inbound.pcap" -n "$1" 2>/dev/null | wc -l; }
syns=$(count "src 203.0.113.2 and tcp[tcpflags] & tcp-syn != 0")
answers=$(count "src 203.0.113.1")
resets=$(count "src 203.0.113.1 and tcp[tcpflags] & tcp-rst != 0")
[ "$syns" -gt 0 ] || { echo "lab.sh: the capture saw no SYN from the server" >&2; exit 1; }
if [ "$PEER" = linux ]; then
	[ "$resets" -gt 0 ] || { echo "lab.sh: Linux sent no reset for its closed port ($answers packets back)" >&2; exit 1; }
	echo "  refused by the Linux box's own stack: $syns SYN(s), $resets TCP reset(s) from 203.0.113.1 (its closed port 22, not a policy)"
else
	[ "$answers" -eq 0 ] || { echo "lab.sh: edge let $answers packet(s) answer an unsolicited connection" >&2; tcpdump -r "$tmp/inbound.pcap" -n >&2; exit 1; }
	echo "  dropped by policy (default_action: drop): $syns SYN(s) from the server, nothing came back on the wire"
fi

if [ "$PEER" = edge ]; then
	# The control plane, as an operator drives it (README "Operating edge").
	ctl() { "$tmp/edge" --socket "$tmp/edge.sock" "$@"; }
	echo "== edge status"
	ctl status | sed 's/^/  /'
	echo "== edge flows"
	ctl flows | sed 's/^/  /'
	echo "== edge config apply: a rule that drops new HTTP connections to the server"
	"$tmp/edge" events --socket "$tmp/edge.sock" --kind dropped,opened,closed --for 8s >"$tmp/events.txt" 2>&1 &
	events_pid=$!
	sleep 0.3
	# edge saves an applied document to its --config file: keep the original.
	cp "$tmp/edge.yaml" "$tmp/edge-orig.yaml"
	sed 's/^rules:$/rules:\n  - {name: block-http, zone: inside, proto: tcp, dst: [203.0.113.2], dst_ports: ["8080"], action: drop}/' \
		"$tmp/edge.yaml" >"$tmp/edge-block.yaml"
	ctl config apply -f "$tmp/edge-block.yaml" | sed 's/^/  /'
	if ip netns exec $C curl -sS --max-time 2 -o /dev/null http://203.0.113.2:8080/blob 2>/dev/null; then
		echo "lab.sh: a connection crossed the rule applied to drop it" >&2; exit 1
	fi
	echo "  a new download now fails (dropped by rule block-http)"
	grep -q block-http "$tmp/edge.yaml" || { echo "lab.sh: the applied configuration was not saved to --config" >&2; exit 1; }
	ctl config apply -f "$tmp/edge-orig.yaml" | sed 's/^/  /'
	ip netns exec $C curl -sS --max-time 10 -o /dev/null -w '  after restoring the rules: HTTP %{http_code}\n' http://203.0.113.2:8080/blob
	wait "$events_pid" || true
	echo "== edge events (during the above)"
	head -20 "$tmp/events.txt" | sed 's/^/  /'
	grep -q "dropped tcp 10.0.0.2:[0-9]* -> 203.0.113.2:8080 .*reason firewall_drop" "$tmp/events.txt" ||
		{ echo "lab.sh: no firewall_drop event for the dropped connection" >&2; exit 1; }
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
	kill -INT "$edge_pid"; wait "$edge_pid" || true; edge_pid=
	grep "stats:" "$tmp/edge.log" | sed 's/^.*stats: /  /'
fi
echo "lab: OK"
