#!/usr/bin/env bash
# Mutation testing: applies each named mutant of scripts/mutants/mutants.txt
# (a one-line bug) in a throwaway copy of the tree, runs the mutated
# package's tests and the data plane's pipeline tests, and prints killed /
# survived per package with the survivors. Survivors explained as
# equivalent are listed in scripts/mutants/equivalent.txt.
#
# Not part of ./scripts/test.sh (about 30 minutes on 2 vCPUs for the whole
# list). Exits non-zero if a mutant survives unexplained or is STALE (its
# source text changed: update its entry).
#
#   ./scripts/mutate.sh                    # all mutants, one at a time
#   JOBS=2 ./scripts/mutate.sh             # two at a time (one tree copy each)
#   RUN='^conntrack/window' ./scripts/mutate.sh   # a subset, by name
#   ./scripts/mutate.sh -list              # check the list against the tree
set -euo pipefail
cd "$(dirname "$0")/.."
exec go run ./scripts/mutants -j "${JOBS:-1}" -run "${RUN:-}" -timeout "${MUTANT_TIMEOUT:-5m}" "$@"
