#!/usr/bin/env bash
# test.sh: the one command that runs edge's tests on a fresh machine.
#
#   scripts/test.sh            generated-code check, vet, format check, unit tests, race tests, fuzz
#                              smoke, benchmark smoke, then (as root) the lab, the NAT behaviour
#                              gates, the short pps benchmark, the short NSX A/B, the doctor lab
#                              and the SYN-flood labs, each lab in IPv4 and IPv6, the SYN-flood
#                              labs; each lab again over IPv6 (FAMILY=6; pps and SYN floods with
#                              fewer rounds)
#   FUZZTIME=60s scripts/test.sh   fuzz longer (default 150000 executions per target)
#
# It installs what it needs first (Go comes with the machine; the apt packages
# of every stage, see scripts/need.sh: it waits for the dpkg lock and shows
# apt's error). Each stage prints its time, and a summary ends the run (also
# on failure, naming the stage that failed). Tests that need root create and
# remove their own resources and skip, saying why, without root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
. scripts/need.sh

# stage NAME: ends the running stage (printing its time) and starts NAME.
stages=() stage_name="" stage_start=0 run_start=$SECONDS
stage_end() {
	[ -n "$stage_name" ] || return 0
	local d=$((SECONDS - stage_start))
	echo "   ($stage_name: ${d} s)"
	stages+=("$(printf '%5d s  %s' "$d" "$stage_name")")
	stage_name=""
}
stage() {
	stage_end
	stage_name=$1 stage_start=$SECONDS
	echo "== $1"
}
summary() {
	local rc=$? failed=$stage_name
	stage_end
	echo "== stage times"
	printf '  %s\n' "${stages[@]}"
	printf '  %5d s  total\n' $((SECONDS - run_start))
	[ "$rc" -eq 0 ] || echo "test.sh: FAILED in stage: ${failed:-setup} (exit $rc)" >&2
}
trap summary EXIT
# A count, not a duration: with -fuzztime=Ns the fuzzer sometimes ends with a
# spurious "context deadline exceeded" when the clock runs out while a
# worker is minimizing a new input; a count has no deadline.
FUZZTIME=${FUZZTIME:-150000x}

command -v go >/dev/null || { echo "test.sh: Go not found (expected /usr/local/go)" >&2; exit 1; }
go version

if [ "$(id -u)" -eq 0 ]; then
	stage "packages (apt-get, only what is missing)"
	# genproto: protoc; lab: ethtool curl tcpdump python3; pps/topo: nft
	# taskset; NSX A/B: nginx conntrack; doctor lab: iptables jq.
	need protoc:protobuf-compiler ethtool curl tcpdump python3 nft:nftables taskset:util-linux nginx conntrack iptables jq tshark
fi

stage "go mod verify"
go mod verify

stage "gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '^third_party/'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

stage "generated code is current (scripts/genproto.sh, pinned generators)"
./scripts/genproto.sh
if [ -n "$(git status --porcelain -- ctl/edgepb)" ]; then
	echo "ctl/edgepb differs from what scripts/genproto.sh generates from edge.proto:"
	git status --porcelain -- ctl/edgepb; git diff -- ctl/edgepb | head -40
	exit 1
fi

stage "go vet"
go vet ./...

stage "go test"
go test -count=1 ./...

stage "go test -race (per-packet and concurrent packages)"
go test -count=1 -race ./conntrack/... ./header/... ./drop/... ./firewall/... ./snat/... ./icmp/... ./dataplane/... ./ctl/...

stage "fuzz smoke ($FUZZTIME per target)"
fuzz() { # package target
	for attempt in 1 2; do
		if go test -run XXX -fuzz "^$2\$" -fuzztime "$FUZZTIME" "$1" >/tmp/edge-fuzz.log 2>&1; then
			tail -1 /tmp/edge-fuzz.log
			return
		fi
		# Only the fuzzer's own shutdown race is retried; a real failure
		# ("Failing input written to testdata/fuzz/...") is not.
		grep -q "Failing input written" /tmp/edge-fuzz.log && break
		grep -q "context deadline exceeded" /tmp/edge-fuzz.log || break
		echo "fuzz $1 $2: fuzzer shutdown race (context deadline exceeded), retrying once"
	done
	cat /tmp/edge-fuzz.log; echo "fuzz $1 $2 failed" >&2; exit 1
}
for pkg in ./header ./conntrack ./firewall ./snat ./icmp ./config ./ctl ./dataplane; do
	for target in $(go test -list '^Fuzz' "$pkg" | grep '^Fuzz'); do
		fuzz "$pkg" "$target"
	done
done

stage "benchmark smoke (they run; figures come from bench/conntrack.sh)"
go test -count=1 -run XXX -bench . -benchtime 200x -short ./conntrack/ ./header/ ./firewall/ ./snat/ ./icmp/ ./dataplane/ | grep -E '^(Benchmark|ok|FAIL)'

stage "the lab: edge forwarding real traffic between namespaces (scripts/lab.sh)"
if [ "$(id -u)" -eq 0 ]; then
	./scripts/lab.sh
	stage "NAT behaviour (bench/natlab.sh CI=1: coturn's RFC 5780 client and a two-host hairpin through edge, default, mapping: endpoint-dependent, filtering: endpoint-independent: fails unless each shows its mapping, filtering and hairpinning)"
	CI=1 ./bench/natlab.sh
	stage "NAT behaviour over IPv6 (bench/natlab.sh FAMILY=6 CI=1: the same three cases and gates, NAT66)"
	FAMILY=6 CI=1 ./bench/natlab.sh
	stage "pps benchmark, short (bench/pps.sh SHORT=1: fails if edge forwards nearly nothing)"
	SHORT=1 OUT=/tmp/edge-ci-bench ./bench/pps.sh
	stage "pps benchmark, short, IPv6 (bench/pps.sh FAMILY=6 SHORT=1, 82 B, 1,000 flows, direct and edge-1w: fails if edge forwards nearly nothing)"
	FAMILY=6 SHORT=1 MIDDLES="direct edge-1w" FLOWS=1000 OUT=/tmp/edge-ci-bench6 ./bench/pps.sh
	stage "NSX A/B, short (bench/nsx-ab.sh SHORT=1: fails on any failed request through edge's default mode not attributed to the lab)"
	SHORT=1 ./bench/nsx-ab.sh
	stage "NSX A/B, short, over IPv6 (bench/nsx-ab.sh FAMILY=6 SHORT=1: nginx's upstream leg over IPv6; same gates)"
	FAMILY=6 SHORT=1 ./bench/nsx-ab.sh
	stage "edge doctor on real 502s (bench/doctorlab.sh CI=1: nginx keep-alive race, idle expiry (silent and reset), NSX stray FIN in nsx_compat, edge's mode and nsx_shadow, listen backlog 1: fails unless doctor names each for its backend, or if clean traffic gives a finding)"
	CI=1 ./bench/doctorlab.sh
	stage "edge doctor on real 502s over IPv6 (bench/doctorlab.sh FAMILY=6 CI=1, cases clean keepalive nsx backlog: the proxy's upstream leg over IPv6 through NAT66; same gates, destinations [addr]:port)"
	FAMILY=6 CI=1 CASES="clean keepalive nsx backlog" ./bench/doctorlab.sh
	stage "SYN flood into a full table (bench/synflood.sh, edge only, medians of 3: fails if a paced TCP stream loses > 20% or stalls > 100 ms)"
	RUNS=3 MODES=edge ./bench/synflood.sh
	stage "two SYN floods back to back, random ports then random inside sources (bench/synflood.sh FLOODS, edge only, 5 runs: fails if in any run a paced TCP stream keeps < 80% during a flood or < 20% in a second of it)"
	FLOODS="ports addrs" RUNS=5 MODES=edge ./bench/synflood.sh
	# (IPv6: the two-flood lab only, 2 runs; its ports flood is the single
	# flood's SYN flood into a full table, so the single one is not repeated.)
	stage "two SYN floods back to back over IPv6 (bench/synflood.sh FAMILY=6 FLOODS, edge only, 2 runs: same gate)"
	FAMILY=6 FLOODS="ports addrs" RUNS=2 MODES=edge ./bench/synflood.sh
else
	echo "skipped: needs root (CI runs as root)"
fi

stage_end
echo "all tests passed"
