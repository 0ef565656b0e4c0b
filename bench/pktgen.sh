#!/usr/bin/env bash
# pktgen.sh: the kernel's packet generator (/proc/net/pktgen) driven with
# edgegen's options, for machines that have the pktgen module. On a kernel
# without it (this project's VMs: no pktgen module, no modprobe) it says so
# and exits 2: use bench/cmd/edgegen (`edgegen tx`) instead.
#
#   sudo ./bench/pktgen.sh --dev IF --dst-mac MAC [--rate PPS] [--size 64|imix|N] [--flows N]
#                          [--duration SECONDS] [--count N] [--src IP] [--dst IP] [--cpu C]
#
# Differences from edgegen: pktgen's frames carry its own magic/sequence/
# timestamp (the edgegen sink does not read them: count at the receiver with
# interface counters); --flows uses pktgen's random UDP ports over the RFC
# 4814 ranges (1024-65535 / 1-49151) with FLOWS concurrent flows, not
# edgegen's seeded permutation; imix uses pktgen's "imix_weights 64,7 576,4
# 1500,1" (frame sizes without FCS, as pktgen counts them); --size counts the
# FCS like edgegen (pktgen's pkt_size is size - 4).
set -euo pipefail
dev= dst_mac= rate=0 size=64 flows=1 duration=0 count=0 src=10.0.0.2 dst=203.0.113.2 cpu=0
while [ $# -gt 0 ]; do
	case $1 in
	--dev) dev=$2; shift 2 ;;
	--dst-mac) dst_mac=$2; shift 2 ;;
	--rate) rate=$2; shift 2 ;;
	--size) size=$2; shift 2 ;;
	--flows) flows=$2; shift 2 ;;
	--duration) duration=${2%s}; shift 2 ;;
	--count) count=$2; shift 2 ;;
	--src) src=$2; shift 2 ;;
	--dst) dst=$2; shift 2 ;;
	--cpu) cpu=$2; shift 2 ;;
	*) echo "pktgen.sh: unknown option $1" >&2; exit 1 ;;
	esac
done

if [ ! -d /proc/net/pktgen ]; then
	if command -v modprobe >/dev/null && modprobe pktgen 2>/dev/null && [ -d /proc/net/pktgen ]; then
		:
	else
		cat >&2 <<EOF
pktgen.sh: the kernel packet generator is not available on this machine:
  /proc/net/pktgen does not exist and 'modprobe pktgen' $(command -v modprobe >/dev/null && echo failed || echo "is not installed (no kmod)").
  Kernel $(uname -r) was built without CONFIG_NET_PKTGEN or without the module.
Use the Go generator instead (same options):
  go build -o edgegen ./bench/cmd/edgegen && ./edgegen tx --dev IF --dst-mac MAC ...
EOF
		exit 2
	fi
fi
[ "$(id -u)" -eq 0 ] || { echo "pktgen.sh: needs root" >&2; exit 1; }
[ -n "$dev" ] && [ -n "$dst_mac" ] || { echo "pktgen.sh: --dev and --dst-mac are required" >&2; exit 1; }
[ "$duration" != 0 ] || [ "$count" != 0 ] || { echo "pktgen.sh: give --duration or --count" >&2; exit 1; }

pg() { echo "$2" >"$1"; }
th=/proc/net/pktgen/kpktgend_$cpu
[ -e "$th" ] || { echo "pktgen.sh: no pktgen thread on CPU $cpu" >&2; exit 1; }
pg "$th" "rem_device_all"
pg "$th" "add_device $dev"
d=/proc/net/pktgen/$dev
pg "$d" "count $count"
pg "$d" "clone_skb 0"
pg "$d" "dst_mac $dst_mac"
pg "$d" "src_min $src"
pg "$d" "src_max $src"
pg "$d" "dst $dst"
if [ "$size" = imix ]; then
	pg "$d" "imix_weights 60,7 572,4 1496,1"
else
	pg "$d" "pkt_size $((size - 4))"
fi
if [ "$flows" -gt 1 ]; then
	pg "$d" "udp_src_min 1024"
	pg "$d" "udp_src_max 65535"
	pg "$d" "udp_dst_min 1"
	pg "$d" "udp_dst_max 49151"
	pg "$d" "flag UDPSRC_RND"
	pg "$d" "flag UDPDST_RND"
	pg "$d" "flows $flows"
	pg "$d" "flowlen 1"
fi
[ "$rate" != 0 ] && pg "$d" "ratep $rate"
pg "$d" "flag UDPCSUM"
if [ "$duration" != 0 ]; then
	(sleep "$duration"; echo stop >/proc/net/pktgen/pgctrl) &
fi
echo start >/proc/net/pktgen/pgctrl || true
grep -A2 "^Result" "$d" || cat "$d"
pg "$th" "rem_device_all"
