"""Dask distributed's published-dataset latency, for comparison with `cairn bench`.

Measures, on a local Dask cluster (1 scheduler + 2 worker processes, as a
`dask.distributed.LocalCluster`):
  - publish_dataset latency (1 client, sequential), p50/p99;
  - get_dataset latency (1 client, sequential), p50/p99;
  - publish throughput with N concurrent client threads.

Run: python3 bench/dask_publish.py [--requests 2000] [--clients 64] [--seconds 10]
[--figures FILE] (needs `pip install distributed`; `make bench` installs it when
missing). With --figures, each figure is also appended to FILE as a JSON line, as
`cairn bench --figures` does (bench/report.py reads both).
"""

import argparse
import json
import statistics
import threading
import time

from distributed import Client, LocalCluster


def percentile(samples, q):
    ordered = sorted(samples)
    index = max(1, min(len(ordered), int(-(-len(ordered) * q // 1)))) - 1
    return ordered[index]


def ms(seconds):
    return f"{seconds * 1000:.3f} ms"


def record(path, figure, value, unit):
    """Appends one figure of Dask's, as `cairn bench --figures` writes Cairn's."""
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"system": "dask", "figure": figure, "value": value, "unit": unit}) + "\n")


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--figures", metavar="FILE", help="also append each figure to FILE as a JSON line")
    args = parser.parse_args()

    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster:
        client = Client(cluster)
        value = "x" * 100
        for i in range(50):
            client.publish_dataset(**{f"warmup-{i}": value})
        samples = []
        for i in range(args.requests):
            started = time.perf_counter()
            client.publish_dataset(**{f"latency-{i}": value})
            samples.append(time.perf_counter() - started)
        print(
            f"dask: 1 client, {len(samples)} sequential publishes: p50 {ms(percentile(samples, 0.5))}  "
            f"p99 {ms(percentile(samples, 0.99))}  mean {ms(statistics.mean(samples))}"
        )
        record(args.figures, "publish_p50_ms", percentile(samples, 0.5) * 1000, "ms")
        record(args.figures, "publish_p99_ms", percentile(samples, 0.99) * 1000, "ms")

        samples = []
        for _ in range(args.requests):
            started = time.perf_counter()
            client.get_dataset("latency-0")
            samples.append(time.perf_counter() - started)
        print(
            f"dask: get_dataset, 1 client, {len(samples)} gets: p50 {ms(percentile(samples, 0.5))}  "
            f"p99 {ms(percentile(samples, 0.99))}"
        )
        record(args.figures, "get_p50_ms", percentile(samples, 0.5) * 1000, "ms")
        record(args.figures, "get_p99_ms", percentile(samples, 0.99) * 1000, "ms")

        stop = threading.Event()
        counts = [0] * args.clients
        clients = [Client(cluster.scheduler_address) for _ in range(args.clients)]

        def load(index):
            n = 0
            while not stop.is_set():
                clients[index].publish_dataset(**{f"load-{index}-{n}": value})
                n += 1
            counts[index] = n

        threads = [threading.Thread(target=load, args=(i,)) for i in range(args.clients)]
        started = time.perf_counter()
        for thread in threads:
            thread.start()
        time.sleep(args.seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        print(f"dask: {args.clients} clients for {elapsed:.1f} s: {sum(counts) / elapsed:.0f} publishes/s")
        record(args.figures, f"publish_per_s_{args.clients}_clients", sum(counts) / elapsed, "publishes/s")
        for extra in clients:
            extra.close()
        client.close()


if __name__ == "__main__":
    main()
