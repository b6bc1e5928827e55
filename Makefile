# Cairn's commands. `make up` and `make test` are the README's two commands.
CARGO ?= cargo

.PHONY: setup build release up test verify fix bench clean

setup:
	@./scripts/setup.sh

build: setup
	$(CARGO) build --workspace

release: setup
	$(CARGO) build --release -p cairn-cli

## Start the local cluster (3 schedulers on loopback, data in ./.cairn); Ctrl-C stops it.
## The debug build: it shares its (long) RocksDB compile with `make test`.
up: setup
	$(CARGO) build -p cairn-cli
	$(CARGO) run -q -p cairn-cli -- up $(ARGS)

## Run every test: unit, in-process and multi-process (the real cairn binary).
test: setup
	$(CARGO) test --workspace -- --test-threads=2

## Check without changing anything: formatting, lints, tests.
verify: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) test

## Apply formatting and clippy fixes.
fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --workspace --all-targets --fix --allow-dirty --allow-staged

## Benchmarks that print figures, with Dask distributed side by side (see BENCHMARKS.md).
bench: setup
	python3 -c "import distributed" 2>/dev/null || pip install -q distributed
	python3 bench/dask_publish.py --requests 300 --clients 64 --seconds 10
	$(CARGO) run --release -p cairn-cli -- bench publish
	$(CARGO) run --release -p cairn-cli -- bench get
	$(CARGO) run --release -p cairn-cli -- bench failover --trials 10

clean:
	$(CARGO) clean
