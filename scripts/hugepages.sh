#!/usr/bin/env bash
# hugepages.sh: reserve hugepages for edge's flow table and UMEM, and undo it.
#
#   scripts/hugepages.sh status            print the current reservation
#   scripts/hugepages.sh reserve N [G]     reserve N 2 MiB pages (and G 1 GiB pages where the
#                                          CPU supports them), mount hugetlbfs at /dev/hugepages
#   scripts/hugepages.sh undo              restore the counts found before the first reserve
#
# Idempotent: reserving the same numbers twice changes nothing; the state
# before the first reservation is kept in /run/edge-hugepages.saved for undo.
# A 1M-flow table needs 128 MiB (64 pages of 2 MiB) per million flows.
set -euo pipefail

SAVED=/run/edge-hugepages.saved
MNT=/dev/hugepages
H2M=/sys/kernel/mm/hugepages/hugepages-2048kB
H1G=/sys/kernel/mm/hugepages/hugepages-1048576kB

status() {
	printf '%-8s %8s %8s %8s\n' size total free reserved
	for d in "$H2M" "$H1G"; do
		[ -d "$d" ] || continue
		printf '%-8s %8s %8s %8s\n' "$(basename "$d" | sed 's/hugepages-//')" \
			"$(cat "$d/nr_hugepages")" "$(cat "$d/free_hugepages")" "$(cat "$d/resv_hugepages")"
	done
	if mountpoint -q "$MNT" 2>/dev/null && grep -q " $MNT hugetlbfs " /proc/mounts; then
		echo "hugetlbfs mounted at $MNT"
	else
		echo "hugetlbfs not mounted at $MNT"
	fi
}

need_root() {
	[ "$(id -u)" -eq 0 ] || { echo "hugepages.sh: $1 needs root" >&2; exit 1; }
}

set_count() { # dir count
	local d=$1 want=$2 got
	echo "$want" >"$d/nr_hugepages"
	got=$(cat "$d/nr_hugepages")
	if [ "$got" -lt "$want" ]; then
		echo "hugepages.sh: asked for $want pages in $(basename "$d"), the kernel gave $got (memory fragmented?)" >&2
	fi
}

reserve() {
	need_root reserve
	local n2m=${1:?usage: hugepages.sh reserve N [G]} n1g=${2:-0}
	echo "before:"; status
	if [ ! -f "$SAVED" ]; then
		{
			echo "h2m=$(cat "$H2M/nr_hugepages")"
			[ -d "$H1G" ] && echo "h1g=$(cat "$H1G/nr_hugepages")"
			if grep -q " $MNT hugetlbfs " /proc/mounts; then echo "mounted=1"; else echo "mounted=0"; fi
		} >"$SAVED"
	fi
	set_count "$H2M" "$n2m"
	if [ "$n1g" -gt 0 ]; then
		if [ -d "$H1G" ]; then set_count "$H1G" "$n1g"; else echo "hugepages.sh: no 1 GiB page support here; skipped" >&2; fi
	fi
	mkdir -p "$MNT"
	grep -q " $MNT hugetlbfs " /proc/mounts || mount -t hugetlbfs nodev "$MNT"
	echo "after:"; status
}

undo() {
	need_root undo
	[ -f "$SAVED" ] || { echo "hugepages.sh: nothing to undo"; status; exit 0; }
	echo "before:"; status
	# shellcheck disable=SC1090
	. "$SAVED"
	set_count "$H2M" "${h2m:-0}"
	[ -d "$H1G" ] && set_count "$H1G" "${h1g:-0}"
	if [ "${mounted:-0}" = 0 ] && grep -q " $MNT hugetlbfs " /proc/mounts; then umount "$MNT"; fi
	rm -f "$SAVED"
	echo "after:"; status
}

case "${1:-status}" in
status) status ;;
reserve) shift; reserve "$@" ;;
undo) undo ;;
*) echo "usage: $0 status | reserve N [G] | undo" >&2; exit 2 ;;
esac
