#!/usr/bin/env bash
# Mutation testing: applies each named mutant of scripts/mutants/mutants.txt
# (a one-line bug) in a throwaway copy of the tree, runs the mutated
# package's tests and the data plane's pipeline tests, and prints killed /
# survived per package with the survivors. Survivors explained as
# equivalent are listed in scripts/mutants/equivalent.txt; see
# scripts/mutants/README.md.
#
# Not part of ./scripts/test.sh: 202 mutants take 8 to 12 minutes with
# JOBS=2 on 2 shared vCPUs (longer when many survive: a survivor runs every
# test).
# Exits non-zero if a mutant survives unexplained or is STALE (its source
# text changed: update its entry).
#
#   ./scripts/mutate.sh                    # all mutants, one at a time
#   JOBS=2 ./scripts/mutate.sh             # two at a time (one tree copy each)
#   RUN='^conntrack/window' ./scripts/mutate.sh   # a subset, by name
#   SKIP='^TestFlaky$' ./scripts/mutate.sh       # leave known-flaky tests out
#   ./scripts/mutate.sh -list              # check the list against the tree
#   GREMLINS=1 ./scripts/mutate.sh         # exploratory: gremlins v0.6.0's
#                                          # generated mutants instead (slow,
#                                          # many equivalent survivors)
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ -n "${GREMLINS:-}" ]]; then
	# gremlins times each mutant from the coverage run, far too tightly
	# here (most mutants were reported TIMED OUT): hence the coefficient.
	for pkg in ${PKGS:-conntrack snat icmp firewall header}; do
		echo "== $pkg"
		go run github.com/go-gremlins/gremlins/cmd/gremlins@v0.6.0 unleash \
			--workers "${JOBS:-1}" --timeout-coefficient 20 --output-statuses lt "./$pkg"
	done
	exit 0
fi
exec go run ./scripts/mutants -j "${JOBS:-1}" -run "${RUN:-}" -skip "${SKIP:-}" -timeout "${MUTANT_TIMEOUT:-5m}" "$@"
