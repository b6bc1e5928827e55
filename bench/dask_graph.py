"""Dask distributed's task throughput and chained-task latency, for comparison with
`cairn bench tasks` (SPEC §7).

On a local Dask cluster (1 scheduler + 2 worker processes, `--threads` threads each,
as a `distributed.LocalCluster`), each graph submitted whole with one `client.get`:
  - throughput: N `inc` tasks (inc(i) = i + 1 for i in 0..N-1) and a tree sum of
    fan-in 8 over them; tasks/s = tasks in the graph / wall time from submit to
    result; the answer is checked against N(N+1)/2;
  - latency: a chain of M dependent `inc`s (x = inc(x), M times); µs per chained
    task = wall time from submit to result / M.

Run: python bench/dask_graph.py [--tasks 100000] [--chain 1000] [--threads 1] [--json]
With --json, stdout is one JSON line
  {"throughput_tasks_per_s": ..., "chain_us_per_task": ..., "tasks": N, "chain": M,
   "graph_tasks": ...}
("graph_tasks" counts every task of the throughput graph, sums included) and the
progress lines go to stderr. Needs `distributed`: `scripts/bench-venv` prints a Python that has it.
"""

import argparse
import json
import sys
import time

import distributed
from distributed import Client, LocalCluster

FAN_IN = 8


def inc(x):
    return x + 1


def total(parts):
    return sum(parts)


def throughput_graph(n, prefix):
    """The graph of n incs and their tree sum; returns (graph, root key)."""
    graph = {}
    level = []
    for i in range(n):
        key = f"{prefix}-inc-{i}"
        graph[key] = (inc, i)
        level.append(key)
    depth = 0
    while len(level) > 1 or depth == 0:
        parents = []
        for start in range(0, len(level), FAN_IN):
            key = f"{prefix}-sum-{depth}-{start // FAN_IN}"
            graph[key] = (total, list(level[start : start + FAN_IN]))
            parents.append(key)
        level = parents
        depth += 1
    return graph, level[0]


def chain_graph(m, prefix):
    """The graph of m dependent incs starting from 0; returns (graph, last key)."""
    graph = {f"{prefix}-chain-0": (inc, 0)}
    for i in range(1, m):
        graph[f"{prefix}-chain-{i}"] = (inc, f"{prefix}-chain-{i - 1}")
    return graph, f"{prefix}-chain-{m - 1}"


def run_throughput(client, n, prefix):
    """Runs the throughput graph; returns (tasks in the graph, seconds)."""
    graph, root = throughput_graph(n, prefix)
    started = time.perf_counter()
    answer = client.get(graph, root)
    elapsed = time.perf_counter() - started
    expected = n * (n + 1) // 2
    if answer != expected:
        raise SystemExit(f"dask: wrong tree sum {answer}, expected {expected}")
    return len(graph), elapsed


def run_chain(client, m, prefix):
    """Runs the chain; returns seconds."""
    graph, last = chain_graph(m, prefix)
    started = time.perf_counter()
    answer = client.get(graph, last)
    elapsed = time.perf_counter() - started
    if answer != m:
        raise SystemExit(f"dask: wrong chain result {answer}, expected {m}")
    return elapsed


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=100_000, help="inc tasks in the throughput graph")
    parser.add_argument("--chain", type=int, default=1000, help="dependent incs in the chain")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process")
    parser.add_argument("--json", action="store_true", help="print one JSON line on stdout")
    args = parser.parse_args()
    if args.tasks < 1 or args.chain < 1 or args.threads < 1:
        parser.error("--tasks, --chain and --threads must be at least 1")
    # With --json, stdout carries the JSON line only.
    progress = sys.stderr if args.json else sys.stdout

    def say(line):
        print(line, file=progress, flush=True)

    with LocalCluster(
        n_workers=2, threads_per_worker=args.threads, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        say(f"dask: distributed {distributed.__version__}, 2 worker processes x {args.threads} thread(s)")
        # Warm-up: worker processes, the function pickles, the connections.
        run_throughput(client, 1000, "warmup")
        run_chain(client, 20, "warmup")

        # The chain first, as `cairn bench tasks` does: a chain right after the big
        # graph would measure the cluster forgetting that graph.
        elapsed = run_chain(client, args.chain, "bench")
        chain_us = elapsed / args.chain * 1e6
        say(f"dask: chain of {args.chain} dependent inc: {elapsed:.2f} s, {chain_us:.0f} µs per task")

        tasks, elapsed = run_throughput(client, args.tasks, "bench")
        throughput = tasks / elapsed
        say(
            f"dask: throughput, {args.tasks} inc + tree sum (fan-in {FAN_IN}, {tasks} tasks): "
            f"{elapsed:.2f} s, {throughput:.0f} tasks/s"
        )

    if args.json:
        print(
            json.dumps(
                {
                    "throughput_tasks_per_s": throughput,
                    "chain_us_per_task": chain_us,
                    "tasks": args.tasks,
                    "chain": args.chain,
                    "graph_tasks": tasks,
                }
            ),
            flush=True,
        )


if __name__ == "__main__":
    main()
