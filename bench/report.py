"""`make bench`: every benchmark of Cairn and of Dask distributed on this machine, in
one run, alternating (Cairn then Dask in each repetition), printed as one table.

Per row: Cairn's figure, Dask's figure, and the ratio — how many times better Cairn
is (higher is better for Cairn, whichever way the figure itself points), `23.4x` —
or "no failover" where Dask has none, with the SPEC §7 target and whether this run
meets it. Each figure is the median over the repetitions. Also written:
OUT/bench.json (every sample, the machine, the command) and OUT/bench.svg (the
ratios as a chart).

The figures come from `cairn bench … --figures FILE` and bench/dask_publish.py
`--figures FILE` (one JSON object per line); nothing is parsed from printed text.

Run from the source tree, with the Python that has Dask (scripts/bench-venv):
  PY=$(scripts/bench-venv) && "$PY" bench/report.py --cairn target/release/cairn
"""

import argparse
import datetime
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))

# (figure, label, unit, better, target, target text). `better` is "higher" or
# "lower"; target is the SPEC §7 bound on Cairn's figure (None: no bound).
ROWS = [
    ("tasks_per_s", "task throughput (100k inc + tree sum)", "tasks/s", "higher", 100_000, ">= 100,000/s and >= 100x Dask"),
    ("chain_us_per_task", "chain of 1,000 inc", "us/task", "lower", 200, "<= 200 us"),
    ("publish_p50_ms", "publish p50, 1 client", "ms", "lower", 1.0, "<= 1 ms"),
    ("publish_p99_ms", "publish p99, 1 client", "ms", "lower", 5.0, "<= 5 ms"),
    ("publish_per_s_64_clients", "publishes/s, 64 clients", "1/s", "higher", 20_000, ">= 20,000/s"),
    ("get_p50_ms", "get_dataset p50, 1 client", "ms", "lower", 0.5, "<= 0.5 ms"),
    ("get_p99_ms", "get_dataset p99, 1 client", "ms", "lower", None, ""),
    ("failover_p50_ms", "leader SIGKILL -> next publish, p50", "ms", "lower", 400, "<= 400 ms"),
    ("failover_p99_ms", "leader SIGKILL -> next publish, p99", "ms", "lower", 1000, "<= 1 s"),
    ("stream_gb_per_s", "chunk stream of 1 GiB to a client", "GB/s", "higher", 2.0, ">= 2 GB/s"),
    ("spill_peak_rss_over_limit", "spill: worker peak RSS / memory limit", "x", "lower", 1.1, "<= 1.1x"),
    ("spill_read_back_s", "spill: read 1 GiB back (stream)", "s", "lower", None, ""),
    ("wind_variance_s", "seeds: wind_variance (1 GiB NetCDF)", "s", "lower", None, ">= 2x faster than xarray+Dask"),
    ("regrid_s", "seeds: regrid (1 GiB NetCDF)", "s", "lower", None, ""),
]

# Rows Dask has no counterpart for, and what the table says instead.
NO_DASK = {
    "failover_p50_ms": "no failover",
    "failover_p99_ms": "no failover",
    "stream_gb_per_s": "-",
    "spill_peak_rss_over_limit": "-",
    "spill_read_back_s": "-",
}


def run(command, log):
    """Runs a benchmark command; its output goes to the terminal and to the log."""
    line = " ".join(command)
    print(f"\n$ {line}", flush=True)
    log.write(f"\n$ {line}\n")
    log.flush()
    started = time.monotonic()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    for output in process.stdout:
        sys.stdout.write(output)
        log.write(output)
    status = process.wait()
    log.write(f"(exit {status}, {time.monotonic() - started:.0f} s)\n")
    if status != 0:
        raise SystemExit(f"report: `{line}` failed (exit {status}); see above")


def read_figures(path):
    """{(system, figure): [values]} from a figures file."""
    figures = {}
    if os.path.exists(path):
        with open(path) as lines:
            for line in lines:
                line = line.strip()
                if line:
                    entry = json.loads(line)
                    figures.setdefault((entry["system"], entry["figure"]), []).append(entry["value"])
    return figures


def ratio(row, cairn, dask):
    """How many times better Cairn is than Dask on this row (None: no ratio)."""
    figure, _, _, better, _, _ = row
    if cairn is None or dask is None or cairn <= 0 or dask <= 0:
        return None
    return cairn / dask if better == "higher" else dask / cairn


def meets(row, cairn, dask):
    """Whether Cairn's figure meets the SPEC §7 target (None: no target)."""
    figure, _, _, better, target, _ = row
    if cairn is None:
        return None
    if figure == "tasks_per_s":
        return cairn >= 100_000 and (dask is None or cairn >= 100 * dask)
    if figure == "wind_variance_s":
        return None if dask is None else dask >= 2 * cairn
    if target is None:
        return None
    return cairn >= target if better == "higher" else cairn <= target


def number(value):
    if value is None:
        return "-"
    if value >= 1000:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    if value >= 0.1:
        return f"{value:.2f}"
    return f"{value:.3f}"


def machine():
    info = {"python": platform.python_version(), "kernel": platform.release(), "cpus": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        with open("/proc/meminfo") as meminfo:
            info["memory_gib"] = round(int(meminfo.readline().split()[1]) / 2**20, 1)
    except OSError:
        pass
    try:
        import distributed

        info["distributed"] = distributed.__version__
    except ImportError:
        pass
    return info


def svg_chart(table, path):
    """The ratios as horizontal bars on a log scale (1x = parity with Dask)."""
    rows = [entry for entry in table if entry["ratio"] is not None]
    width, left, bar, gap = 900, 330, 22, 8
    height = 60 + len(rows) * (bar + gap)
    low = min([0.1] + [entry["ratio"] for entry in rows])
    high = max([1000.0] + [entry["ratio"] for entry in rows])
    span = math.log10(high) - math.log10(low)
    scale = (width - left - 40) / span

    def x(value):
        return left + (math.log10(value) - math.log10(low)) * scale

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" font-family="sans-serif" font-size="12">',
        f'<text x="10" y="20" font-size="14">Cairn vs Dask distributed: times better (log scale; right of 1x, Cairn is faster)</text>',
    ]
    decade = 10 ** math.floor(math.log10(low))
    while decade <= high:
        parts.append(f'<line x1="{x(decade):.1f}" y1="35" x2="{x(decade):.1f}" y2="{height - 10}" stroke="#ccc"/>')
        parts.append(f'<text x="{x(decade):.1f}" y="32" text-anchor="middle" fill="#666">{decade:g}x</text>')
        decade *= 10
    for index, entry in enumerate(rows):
        top = 45 + index * (bar + gap)
        value = entry["ratio"]
        start, end = sorted([x(1.0), x(value)])
        colour = "#2a7" if value >= 1 else "#c44"
        parts.append(f'<text x="{left - 8}" y="{top + bar * 0.7:.1f}" text-anchor="end">{entry["label"]}</text>')
        parts.append(f'<rect x="{start:.1f}" y="{top}" width="{max(end - start, 1):.1f}" height="{bar}" fill="{colour}"/>')
        parts.append(f'<text x="{end + 4:.1f}" y="{top + bar * 0.7:.1f}">{value:.1f}x</text>')
    parts.append(f'<line x1="{x(1.0):.1f}" y1="35" x2="{x(1.0):.1f}" y2="{height - 10}" stroke="#000"/>')
    parts.append("</svg>")
    with open(path, "w") as out:
        out.write("\n".join(parts) + "\n")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cairn", required=True, help="the release cairn binary")
    parser.add_argument("--out", default="target/bench", help="where bench.json, bench.svg and bench.log go")
    parser.add_argument("--repeat", type=int, default=3, help="repetitions of the fast rows (median reported)")
    parser.add_argument("--failover-trials", type=int, default=20)
    parser.add_argument("--data-gib", type=float, default=1.0)
    parser.add_argument("--seed-data", default="target/seed-data")
    parser.add_argument("--seed-size", default="1GiB")
    parser.add_argument("--skip", default="", help="comma-separated: tasks,publish,get,failover,data,seeds")
    args = parser.parse_args()
    skip = {name for name in args.skip.split(",") if name}
    os.makedirs(args.out, exist_ok=True)
    figures_path = os.path.join(args.out, "figures.jsonl")
    if os.path.exists(figures_path):
        os.remove(figures_path)
    python = sys.executable
    cairn = [args.cairn, "bench", "--figures", figures_path]
    started = time.monotonic()
    with open(os.path.join(args.out, "bench.log"), "w") as log:
        for repetition in range(1, args.repeat + 1):
            print(f"\n=== repetition {repetition} of {args.repeat} ===", flush=True)
            if "tasks" not in skip:
                # Cairn, then Dask (bench/dask_graph.py), in the one command.
                run(cairn + ["tasks", "--compare-dask", python], log)
            if "publish" not in skip:
                run(cairn + ["publish", "--requests", "2000", "--clients", "64", "--seconds", "10"], log)
                run([python, os.path.join(HERE, "dask_publish.py"), "--requests", "2000", "--clients", "64",
                     "--seconds", "10", "--figures", figures_path], log)
            if "get" not in skip:
                run(cairn + ["get", "--requests", "3000"], log)
        # The long rows once each (failover has its own trials, seeds its own repeats).
        if "failover" not in skip:
            run(cairn + ["failover", "--trials", str(args.failover_trials)], log)
        if "data" not in skip:
            run(cairn + ["data", "--gib", str(args.data_gib), "--memory-limit", "256MiB"], log)
        if "seeds" not in skip:
            run(cairn + ["seeds", "--data", args.seed_data, "--size", args.seed_size, "--compare-dask", python], log)

    figures = read_figures(figures_path)
    table = []
    for row in ROWS:
        figure, label, unit, better, _, target_text = row
        cairn_values = figures.get(("cairn", figure), [])
        dask_values = figures.get(("dask", figure), [])
        cairn_value = statistics.median(cairn_values) if cairn_values else None
        dask_value = statistics.median(dask_values) if dask_values else None
        if cairn_value is None and dask_value is None:
            continue
        table.append({
            "figure": figure,
            "label": label,
            "unit": unit,
            "better": better,
            "cairn": cairn_value,
            "dask": dask_value,
            "cairn_samples": cairn_values,
            "dask_samples": dask_values,
            "ratio": ratio(row, cairn_value, dask_value),
            "target": target_text,
            "meets_target": meets(row, cairn_value, dask_value),
        })

    header = f"{'row':<40} {'unit':>8} {'Cairn':>11} {'Dask':>12} {'Cairn vs Dask':>14}  SPEC §7 target"
    print("\n" + header)
    print("-" * (len(header) + 24))
    for entry in table:
        dask_text = NO_DASK.get(entry["figure"]) if entry["dask"] is None else number(entry["dask"])
        ratio_text = f"{entry['ratio']:.1f}x" if entry["ratio"] is not None else (NO_DASK.get(entry["figure"]) or "-")
        verdict = {True: "met", False: "MISSED", None: ""}[entry["meets_target"]]
        target = f"{entry['target']} {verdict}".strip()
        print(f"{entry['label']:<40} {entry['unit']:>8} {number(entry['cairn']):>11} {dask_text or '-':>12} {ratio_text:>14}  {target}")
    print(f"(medians of {args.repeat} repetition(s) for the first rows; 'Cairn vs Dask' is how many times better Cairn is)")

    document = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "command": " ".join(sys.argv),
        "machine": machine(),
        "repeat": args.repeat,
        "seconds": round(time.monotonic() - started),
        "rows": table,
    }
    with open(os.path.join(args.out, "bench.json"), "w") as out:
        json.dump(document, out, indent=2)
        out.write("\n")
    svg_chart(table, os.path.join(args.out, "bench.svg"))
    print(f"written: {args.out}/bench.json, {args.out}/bench.svg, {args.out}/bench.log")


if __name__ == "__main__":
    main()
