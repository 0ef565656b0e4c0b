# Convenience targets; each is one script so the README's commands work without make.
.PHONY: test bench bench-short bench-conntrack ab ab-short fuzz mutate synflood synflood2 natlab natlab-ci tcp doctorlab
test:
	./scripts/test.sh
# issue #10's targets in one table: floor (nullfwd), Linux nftables and edge side by side, met or not, with profiles
# of the targets not met (pps, iperf3 TCP, ctl-load, pipeline benchmarks, perf; root, about 12 min; SHORT=1: < 2 min)
bench:
	./bench/report.sh
bench-short:
	SHORT=1 ./bench/pps.sh
# conntrack micro-benchmarks (benchstat medians)
bench-conntrack:
	./bench/conntrack.sh
# the NSX A/B: nginx -> middle box (edge, edge nsx_compat, Linux) -> backend, with port reuse and delayed FINs (root)
ab:
	./bench/nsx-ab.sh
ab-short:
	SHORT=1 ./bench/nsx-ab.sh
fuzz:
	FUZZTIME=120s ./scripts/test.sh
# mutation testing over named mutants (scripts/mutants/), not part of test (minutes; JOBS=2 to halve)
mutate:
	./scripts/mutate.sh
# SYN flood into a full table: a paced TCP stream's throughput and largest gap, edge and Linux (root, ~2 min; exit 1 when edge misses the gate)
synflood:
	./bench/synflood.sh
# two floods back to back (random ports, then random inside sources) while a paced TCP stream crosses (root, ~5.5 min)
synflood2:
	FLOODS="ports addrs" RUNS=5 ./bench/synflood.sh
# NAT behaviour as a STUN client sees it (coturn turnutils_natdiscovery, RFC 5780): mapping, filtering, hairpin, edge and Linux (root, < 1 min; GATE/FGATE/HAIRPIN_GATE/PORT_GATE: exit 1 unless edge meets them)
natlab:
	./bench/natlab.sh
# the NAT gates of CI: edge with its default snat section, with mapping: endpoint-dependent, with filtering: endpoint-independent (root, about 1 min)
natlab-ci:
	CI=1 ./bench/natlab.sh

# iperf3 TCP, 1 and 8 streams, through edge and Linux nftables alternated, medians and edge/Linux (root, ~2 min; SHORT=1: a 30 s smoke check)
tcp:
	./bench/tcp.sh
# edge doctor on the four 502 patterns with real processes (nginx, python3 backlog 1, delayed FINs) and on clean traffic (root, about 70 s; exit 1 unless each is named for its backend and clean traffic gives no finding)
doctorlab:
	CI=1 ./bench/doctorlab.sh
