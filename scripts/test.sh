#!/usr/bin/env bash
# test.sh: the one command that runs edge's tests on a fresh machine.
#
#   scripts/test.sh            generated-code check, vet, format check, unit tests, race tests, fuzz
#                              smoke, benchmark smoke, then (as root) the lab, the short pps
#                              benchmark and the short NSX A/B
#   FUZZTIME=60s scripts/test.sh   fuzz longer (default 150000 executions per target)
#
# It installs what it needs (Go comes with the machine; apt packages are
# added here as later stages need them). Tests that need root create and
# remove their own resources and skip, saying why, without root.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/usr/local/go/bin:$HOME/go/bin:$PATH"
# A count, not a duration: with -fuzztime=Ns the fuzzer sometimes ends with a
# spurious "context deadline exceeded" when the clock runs out while a
# worker is minimizing a new input; a count has no deadline.
FUZZTIME=${FUZZTIME:-150000x}

command -v go >/dev/null || { echo "test.sh: Go not found (expected /usr/local/go)" >&2; exit 1; }
go version

echo "== go mod verify"
go mod verify

echo "== gofmt"
unformatted=$(gofmt -l $(git ls-files '*.go' | grep -v '^third_party/'))
if [ -n "$unformatted" ]; then echo "gofmt would change:"; echo "$unformatted"; exit 1; fi

echo "== generated code is current (scripts/genproto.sh, pinned generators)"
./scripts/genproto.sh
if [ -n "$(git status --porcelain -- ctl/edgepb)" ]; then
	echo "ctl/edgepb differs from what scripts/genproto.sh generates from edge.proto:"
	git status --porcelain -- ctl/edgepb; git diff -- ctl/edgepb | head -40
	exit 1
fi

echo "== go vet"
go vet ./...

echo "== go test"
go test -count=1 ./...

echo "== go test -race (per-packet and concurrent packages)"
go test -count=1 -race ./conntrack/... ./header/... ./drop/... ./firewall/... ./snat/... ./icmp/... ./dataplane/... ./ctl/...

echo "== fuzz smoke ($FUZZTIME per target)"
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

echo "== benchmark smoke (they run; figures come from bench/conntrack.sh)"
go test -count=1 -run XXX -bench . -benchtime 200x -short ./conntrack/ ./header/ ./firewall/ ./snat/ ./icmp/ ./dataplane/ | grep -E '^(Benchmark|ok|FAIL)'

echo "== the lab: edge forwarding real traffic between namespaces (scripts/lab.sh)"
if [ "$(id -u)" -eq 0 ]; then
	./scripts/lab.sh
	echo "== pps benchmark, short (bench/pps.sh SHORT=1: fails if edge forwards nearly nothing)"
	SHORT=1 OUT=/tmp/edge-ci-bench ./bench/pps.sh
	echo "== NSX A/B, short (bench/nsx-ab.sh SHORT=1: fails on any failed request through edge's default mode not attributed to the lab)"
	SHORT=1 ./bench/nsx-ab.sh
else
	echo "skipped: needs root (CI runs as root)"
fi

echo "all tests passed"
