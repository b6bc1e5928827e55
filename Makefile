# Cairn's commands. `make up` and `make test` are the README's two commands.
CARGO ?= cargo
TARGET_DIR := $(or $(CARGO_TARGET_DIR),target)
JEPSEN := $(TARGET_DIR)/debug/cairn-jepsen

.PHONY: setup build release up test verify fix bench jepsen jepsen-smoke clean

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

## Run every test: unit, in-process, multi-process (the real cairn binary), and the
## fault-injection smoke run.
test: setup
	$(CARGO) test --workspace -- --test-threads=2
	$(MAKE) jepsen-smoke

## The fault-injection suite (jepsen/README.md): the catalog workload on 3 nodes and
## the durable workload on 5, every nemesis; then the data plane, with 3 `cairn worker`
## processes: persisted datasets (data) and task graphs (graph) under every nemesis, and
## task graphs under scheduler faults only (where nothing may be recomputed). As root
## the processes run in network namespaces and each worker's data dir is a tmpfs;
## otherwise partition, partition-worker, netem and full-disk are skipped.
jepsen: setup
	$(CARGO) build --workspace
	$(JEPSEN) run --workload catalog --nodes 3 --nemesis all --time-limit 150 --concurrency 10 --min-ops 10000
	$(JEPSEN) run --workload durable --nodes 5 --nemesis all --time-limit 90 --concurrency 10 --min-ops 5000
	$(JEPSEN) run --workload data --nodes 3 --workers 3 --nemesis all --time-limit 150 --concurrency 10 --min-ops 4000
	$(JEPSEN) run --workload graph --nodes 3 --workers 3 --nemesis all --time-limit 120 --concurrency 10 --min-ops 2000
	$(JEPSEN) run --workload graph --nodes 3 --workers 3 --nemesis kill,pause,partition,netem,membership --one-fault-at-a-time --time-limit 90 --concurrency 10 --min-ops 1500

## About four minutes: kill, pause and partition against the catalog workload; worker
## faults (kill, pause, partition, full disk) and restarts of everything against the data
## workload; scheduler faults, one at a time (a majority always up: SPEC §4's fault
## model), against the graph workload (no recomputation allowed).
jepsen-smoke:
	$(CARGO) build --workspace
	$(JEPSEN) run --workload catalog --nodes 3 --nemesis kill,pause,partition --time-limit 80 --nemesis-interval 5 --min-ops 2000
	$(JEPSEN) run --workload data --nodes 3 --workers 3 --nemesis kill-worker,pause-worker,partition-worker,full-disk,restart-all --time-limit 40 --nemesis-interval 4 --min-ops 800
	$(JEPSEN) run --workload graph --nodes 3 --workers 3 --nemesis kill,pause,partition --one-fault-at-a-time --time-limit 40 --nemesis-interval 4 --min-ops 500

## Check without changing anything: formatting, lints, tests.
verify: setup
	$(CARGO) fmt --all --check
	$(CARGO) clippy --workspace --all-targets -- -D warnings
	$(MAKE) test

## Apply formatting and clippy fixes.
fix:
	$(CARGO) fmt --all
	$(CARGO) clippy --workspace --all-targets --fix --allow-dirty --allow-staged

## Benchmarks that print figures, Cairn and Dask distributed side by side in one run
## (bench/report.py; see BENCHMARKS.md): one table with each row's ratio, plus
## $(TARGET_DIR)/bench/bench.json and bench.svg. Release build; the seeds rows write 1 GiB
## of NetCDF seed data under the target dir once; Dask runs from a virtual environment
## that scripts/bench-venv makes once under the target dir.
bench: setup
	$(CARGO) build --release -p cairn-cli -p cairn-client --bins --examples
	PY=$$(scripts/bench-venv) && "$$PY" bench/report.py --cairn $(TARGET_DIR)/release/cairn --out $(TARGET_DIR)/bench --seed-data $(TARGET_DIR)/seed-data $(ARGS)

clean:
	$(CARGO) clean
