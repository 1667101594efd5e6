# The two commands of the README: `make demo` (the main job) and `make test`. Each sets the machine up first.
.PHONY: setup demo test lint parity bench

setup:
	@bash scripts/setup.sh

demo: setup
	@node dist/src/cli/main.js segment assets/images/chelsea.png --classes "cat; wall; floor; sky; grass" --out out/demo

test: setup
	@npx biome check src test bench scripts
	@node scripts/run-tests.mjs

lint: setup
	@npx biome check src test bench scripts

parity: setup
	@node dist/src/cli/main.js parity test/fixtures/*/

bench: setup
	@node dist/bench/run.js
