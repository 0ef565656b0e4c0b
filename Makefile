# Convenience targets; each is one script so the README's commands work without make.
.PHONY: test bench fuzz
test:
	./scripts/test.sh
bench:
	./bench/conntrack.sh
fuzz:
	FUZZTIME=120s ./scripts/test.sh
