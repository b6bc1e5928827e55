"""The seeds' gridded workloads as a Met Office scientist writes them today, with
xarray + dask.array on a `distributed.LocalCluster`, timed and checked against the
results of Cairn's example programs (`cairn bench seeds` runs this script; SPEC §7:
`wind_variance` at least 2x faster than the dask.array program).

  wind_variance  (client/examples/wind_variance.rs, "Iris, dask, distributed and SPICE")
      u = xr.open_mfdataset("model_run/x_wind_*.nc", combine="by_coords",
                            chunks={"time": chunk_rows})["x_wind"]      (v: y_wind)
      speed = np.hypot(u, v)
      direction = np.degrees(np.arctan2(u, v)) + 180    # where the wind blows from
      dask.compute(speed.var("time"), direction.var("time"))     # ddof=0, skipna
  regrid         (client/examples/regrid.rs, "Dicing with Dask")
      for each param: open_mfdataset as above, the longitude-0 column copied to 360
      (so that points between the last column and 360 interpolate, as Cairn wraps),
      then .interp(latitude=lats, longitude=lons % 360, method="linear") of every
      time step; every param computed together.

Each is timed from opening the files to having the results in memory (the examples'
`elapsed_seconds` covers reading the headers and computing), `--repeat` times; the
median is reported. The cluster is started, and the libraries imported on its
workers, before any timing (Cairn's workers are running binaries too), and each
workload runs `--warmup` times untimed first (Cairn's side does the same): a first
run on fresh processes pays for first touches of their memory.

The results are compared with the files Cairn's examples wrote into `--cairn-out`
(`wind_speed_variance.nc`, `wind_from_direction_variance.nc`, `regridded.nc`), each
variable with np.allclose(rtol=1e-5, atol=1e-6, equal_nan=True) after checking its
shape and coordinates; the largest relative difference printed is
|dask - cairn| / max(|cairn|, atol / rtol), the measure that bound limits.
  - A variance that fails rtol 1e-5 is compared with rtol 1e-4, and the output says
    so: Cairn reduces in f64 (two passes per chunk, Chan's pairwise combination),
    while dask's var over float32 data accumulates its sums in float32 (the dtype
    np.var gives float32), a relative error growing with the time steps summed per
    chunk (~n x 6e-8). Element-wise, numpy's np.degrees on float32 multiplies by
    the float32 57.295776 and Rust's f32::to_degrees by 57.29578 (one ulp apart), and
    atan2f may differ by an ulp: differences of a few 1e-6 in the variances.
  - wind_from_direction's variance: atan2 has its branch cut at +-pi (a wind from due
    north is 0 or 360 degrees), so a float32 rounding difference can put a rare value
    on the other side and change that cell's variance by a lot: the number of
    differing cells is printed, and the direction agrees when at most 0.01 % of the
    cells differ.

Run (`cairn bench seeds --compare-dask "$(scripts/bench-venv)"` does it for you):
  PY bench/seeds.py --data DIR --cairn-out OUTDIR --cairn-wind-seconds S1 \\
     --cairn-regrid-seconds S2 --workers 2 --threads 1 [--chunk-rows N] \\
     --lats 40:65:0.1 --lons -15:10:0.1 --regrid-params x_wind,y_wind \\
     [--repeat 3] [--warmup 1] [--json RESULT.json] [--engine netcdf4]
Without --cairn-out the Dask side runs alone (nothing is checked). Exit status 1 when
a result disagrees. Needs distributed, xarray, netCDF4 and scipy: `scripts/bench-venv`
prints a Python that has them.
"""

import argparse
import glob
import json
import math
import os
import statistics
import sys
import time

import dask
import distributed
import numpy as np
import xarray as xr
from distributed import Client, LocalCluster

# As the Cairn client's NetcdfOptions default: about 32 MiB of values per chunk,
# never across files.
DEFAULT_CHUNK_BYTES = 32 << 20
RTOL = 1e-5
ATOL = 1e-6
# Variances only, when RTOL fails: dask sums float32 in float32 (module docs).
VARIANCE_RTOL = 1e-4
# The direction's variance agrees when at most this fraction of cells differ.
BRANCH_CUT_FRACTION = 1e-4


def axis(text):
    """`start:stop:step`, stop included: the example's `axis()` (regrid.rs)."""
    parts = text.split(":")
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:STOP:STEP")
    try:
        start, stop, step = (float(part) for part in parts)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not START:STOP:STEP") from None
    if step <= 0 or stop < start:
        raise argparse.ArgumentTypeError(f"{text!r}: STEP must be positive and STOP at least START")
    count = math.floor((stop - start) / step + 1e-9) + 1
    return np.array([start + i * step for i in range(count)], dtype=np.float64)


def joined_axis_args(argv):
    """`--lons -15:10:0.1` as `--lons=-15:10:0.1`: argparse takes a value starting
    with '-' (that is not a plain negative number) for an option."""
    joined = []
    index = 0
    while index < len(argv):
        if argv[index] in ("--lats", "--lons") and index + 1 < len(argv):
            joined.append(f"{argv[index]}={argv[index + 1]}")
            index += 2
        else:
            joined.append(argv[index])
            index += 1
    return joined


def files_of(data, param):
    pattern = os.path.join(data, "model_run", f"{param}_*.nc")
    files = sorted(glob.glob(pattern))
    if not files:
        raise SystemExit(f"seeds: no files match {pattern} (make them with `cairn seed-data --out {data}`)")
    return pattern, files


def default_chunk_rows(path, param, engine):
    """Cairn's default chunking: time steps per about 32 MiB of values."""
    with xr.open_dataset(path, engine=engine) as ds:
        var = ds[param]
        cells = math.prod(size for dim, size in var.sizes.items() if dim != "time")
        return max(1, DEFAULT_CHUNK_BYTES // max(1, cells * var.dtype.itemsize))


def open_param(pattern, param, chunk_rows, engine):
    """What the scientist writes: every day file of one parameter, lazily."""
    ds = xr.open_mfdataset(pattern, combine="by_coords", chunks={"time": chunk_rows}, engine=engine)
    return ds, ds[param]


def wind_variance(data, chunk_rows, engine):
    """Returns (seconds, {variable: computed variance DataArray (latitude, longitude)})."""
    u_files, _ = files_of(data, "x_wind")
    v_files, _ = files_of(data, "y_wind")
    started = time.perf_counter()
    u_ds, u = open_param(u_files, "x_wind", chunk_rows, engine)
    v_ds, v = open_param(v_files, "y_wind", chunk_rows, engine)
    speed = np.hypot(u, v)
    direction = np.degrees(np.arctan2(u, v)) + 180
    speed_var, direction_var = dask.compute(speed.var("time", skipna=True), direction.var("time", skipna=True))
    elapsed = time.perf_counter() - started
    u_ds.close()
    v_ds.close()
    return elapsed, {"wind_speed": speed_var, "wind_from_direction": direction_var}


def with_wrap_column(source):
    """The source with its first longitude column repeated at first + 360, so that
    targets between the last column and 360 interpolate (a global 0..360 grid)."""
    lon = source["longitude"].values
    wrap = source.isel(longitude=[0]).assign_coords(longitude=[float(lon[0]) + 360.0])
    return xr.concat([source, wrap], dim="longitude").chunk({"longitude": -1})


def regrid(data, params, lats, lons, chunk_rows, engine):
    """Returns (seconds, {param: computed DataArray (time, latitude, longitude)})."""
    patterns = [files_of(data, param)[0] for param in params]
    started = time.perf_counter()
    opened = []
    lazy = []
    for param, pattern in zip(params, patterns):
        ds, source = open_param(pattern, param, chunk_rows, engine)
        opened.append(ds)
        target = source.pipe(with_wrap_column).interp(latitude=lats, longitude=np.mod(lons, 360.0), method="linear")
        lazy.append(target.assign_coords(longitude=lons))
    computed = dask.compute(*lazy)
    elapsed = time.perf_counter() - started
    for ds in opened:
        ds.close()
    return elapsed, dict(zip(params, computed))


def relative_differences(got, expected):
    """|got - expected| / max(|expected|, ATOL / RTOL) where both are present: the
    measure np.isclose(rtol=RTOL, atol=ATOL) bounds (about RTOL at most when close;
    below |expected| = 0.1 the absolute tolerance dominates)."""
    both = np.isfinite(got) & np.isfinite(expected)
    return np.abs(got[both] - expected[both]) / np.maximum(np.abs(expected[both]), ATOL / RTOL)


def compare_field(label, got, expected, variance=False, branch_cut=False):
    """Compares two arrays of the same shape; returns a dict describing the outcome.
    A variance that fails RTOL is compared again with VARIANCE_RTOL (module docs),
    and the outcome says so."""
    got = np.asarray(got, dtype=np.float64)
    expected = np.asarray(expected, dtype=np.float64)
    if got.shape != expected.shape:
        return {"field": label, "agree": False, "problem": f"shape {got.shape} here, {expected.shape} in Cairn's file"}
    allowed = math.floor(BRANCH_CUT_FRACTION * got.size) if branch_cut else 0

    def differing_at(rtol):
        close = np.isclose(got, expected, rtol=rtol, atol=ATOL, equal_nan=True)
        return close, int(close.size - np.count_nonzero(close))

    rtol = RTOL
    close, differing = differing_at(rtol)
    if variance and differing > allowed:
        rtol = VARIANCE_RTOL
        close, differing = differing_at(rtol)
    relative = relative_differences(got, expected)
    outcome = {
        "field": label,
        "cells": int(close.size),
        "rtol": rtol,
        "atol": ATOL,
        "largest_relative_difference": float(relative.max()) if relative.size else 0.0,
        "largest_absolute_difference": float(np.nanmax(np.abs(got - expected))) if relative.size else 0.0,
        "differing_cells": differing,
        "missing_here": int(np.count_nonzero(np.isnan(got))),
        "missing_in_cairn": int(np.count_nonzero(np.isnan(expected))),
        "agree": differing <= allowed,
    }
    if rtol != RTOL and outcome["agree"]:
        outcome["note"] = (
            f"rtol {RTOL:g} fails for a variance: dask accumulates float32 sums in float32, Cairn in f64; "
            f"compared with rtol {VARIANCE_RTOL:g}"
        )
    elif rtol != RTOL:
        outcome["note"] = f"beyond rtol {RTOL:g} and beyond {VARIANCE_RTOL:g}, the bound of float32 accumulation"
    if branch_cut:
        outcome["allowed_differing_cells"] = allowed
        if differing:
            # What agrees once the cells across the branch cut are set aside.
            outcome["largest_relative_difference_elsewhere"] = float(
                relative_differences(np.where(close, got, np.nan), expected).max(initial=0.0)
            )
    return outcome


def coords_problem(got, cairn, dims):
    for dim in dims:
        a = np.asarray(got[dim].values, dtype=np.float64)
        b = np.asarray(cairn[dim].values, dtype=np.float64)
        if a.shape != b.shape or not np.allclose(a, b, rtol=0, atol=1e-9):
            return f"{dim}: {a.size} values {a[:1]}..{a[-1:]} here, {b.size} values {b[:1]}..{b[-1:]} in Cairn's file"
    return None


def check_wind(results, cairn_out, engine):
    outcomes = []
    for variable, branch_cut in [("wind_speed", False), ("wind_from_direction", True)]:
        path = os.path.join(cairn_out, f"{variable}_variance.nc")
        label = f"{variable} variance"
        if not os.path.exists(path):
            outcomes.append({"field": label, "agree": False, "problem": f"{path} does not exist"})
            continue
        with xr.open_dataset(path, engine=engine) as ds:
            if variable not in ds:
                outcomes.append({"field": label, "agree": False, "problem": f"{path} has no variable {variable}"})
                continue
            cairn = ds[variable].load()
        if "time" in cairn.dims:
            if cairn.sizes["time"] != 1:
                outcomes.append({"field": label, "agree": False, "problem": f"{path}: time has {cairn.sizes['time']} steps, not 1"})
                continue
            cairn = cairn.isel(time=0)
        got = results[variable].transpose(*cairn.dims)
        problem = coords_problem(got, cairn, cairn.dims)
        if problem:
            outcomes.append({"field": label, "agree": False, "problem": problem})
            continue
        outcomes.append(compare_field(label, got.values, cairn.values, variance=True, branch_cut=branch_cut))
    return outcomes


def check_regrid(results, cairn_out, engine):
    path = os.path.join(cairn_out, "regridded.nc")
    if not os.path.exists(path):
        return [{"field": "regridded", "agree": False, "problem": f"{path} does not exist"}]
    outcomes = []
    with xr.open_dataset(path, engine=engine) as ds:
        for param, got in results.items():
            label = f"{param} regridded"
            if param not in ds:
                outcomes.append({"field": label, "agree": False, "problem": f"{path} has no variable {param}"})
                continue
            cairn = ds[param].load()
            got = got.transpose(*cairn.dims)
            problem = coords_problem(got, cairn, [dim for dim in cairn.dims if dim != "time"])
            if problem is None and got.sizes.get("time") != cairn.sizes.get("time"):
                problem = f"time: {got.sizes.get('time')} steps here, {cairn.sizes.get('time')} in Cairn's file"
            if problem is None and "time" in cairn.coords and got["time"].dtype == cairn["time"].dtype:
                if not np.array_equal(got["time"].values, cairn["time"].values):
                    problem = "time: the steps differ from those in Cairn's file"
            if problem:
                outcomes.append({"field": label, "agree": False, "problem": problem})
                continue
            outcomes.append(compare_field(label, got.values, cairn.values))
    return outcomes


def describe(outcome):
    if "problem" in outcome:
        return f"{outcome['field']}: DISAGREES: {outcome['problem']}"
    text = (
        f"{outcome['field']}: largest relative difference {outcome['largest_relative_difference']:.2e}, "
        f"{outcome['differing_cells']} of {outcome['cells']} cells beyond rtol {outcome['rtol']:g} atol {outcome['atol']:g}"
    )
    if "allowed_differing_cells" in outcome:
        text += f" (branch cut rule: at most {outcome['allowed_differing_cells']} = 0.01 % may differ"
        if "largest_relative_difference_elsewhere" in outcome:
            text += f"; elsewhere {outcome['largest_relative_difference_elsewhere']:.2e}"
        text += ")"
    if "note" in outcome:
        text += f" [{outcome['note']}]"
    if outcome["missing_in_cairn"] or outcome["missing_here"]:
        text += f", missing: {outcome['missing_in_cairn']} in Cairn's, {outcome['missing_here']} here"
    return text + (": agrees" if outcome["agree"] else ": DISAGREES")


def warm_workers():
    """Imports what the tasks use (run on each worker before timing)."""
    import netCDF4  # noqa: F401
    import scipy.interpolate  # noqa: F401
    import xarray  # noqa: F401

    return True


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", required=True, help="the seed data directory (DIR/model_run/*.nc)")
    parser.add_argument("--cairn-out", help="where Cairn's examples wrote their results (omit: Dask only)")
    parser.add_argument("--cairn-wind-seconds", type=float, help="Cairn's wind_variance time")
    parser.add_argument("--cairn-regrid-seconds", type=float, help="Cairn's regrid time")
    parser.add_argument("--workers", type=int, default=2, help="worker processes")
    parser.add_argument("--threads", type=int, default=1, help="threads per worker process")
    parser.add_argument("--chunk-rows", type=int, help="time steps per chunk (default: about 32 MiB, as Cairn)")
    parser.add_argument("--lats", type=axis, default="40:65:0.1", help="target latitudes START:STOP:STEP")
    parser.add_argument("--lons", type=axis, default="-15:10:0.1", help="target longitudes START:STOP:STEP")
    parser.add_argument("--regrid-params", default="x_wind,y_wind", help="parameters to regrid, comma-separated")
    parser.add_argument("--repeat", type=int, default=3, help="runs of each workload (median reported)")
    parser.add_argument("--warmup", type=int, default=1, help="untimed runs of each workload before the timed ones")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
    parser.add_argument("--engine", default="netcdf4", help="xarray engine for the NetCDF-4 files (netcdf4, h5netcdf)")
    args = parser.parse_args(joined_axis_args(sys.argv[1:]))
    if args.workers < 1 or args.threads < 1 or args.repeat < 1 or (args.chunk_rows is not None and args.chunk_rows < 1):
        parser.error("--workers, --threads, --repeat and --chunk-rows must be at least 1")
    if args.warmup < 0:
        parser.error("--warmup must be 0 or more")
    params = [param for param in args.regrid_params.split(",") if param]
    if not params:
        parser.error("--regrid-params names no parameter")

    if args.cairn_out is not None and not os.path.isdir(args.cairn_out):
        parser.error(f"--cairn-out {args.cairn_out}: no such directory")
    _, u_files = files_of(args.data, "x_wind")
    chunk_rows = args.chunk_rows or default_chunk_rows(u_files[0], "x_wind", args.engine)
    print(
        f"dask: xarray {xr.__version__}, dask {dask.__version__}, distributed {distributed.__version__}, "
        f"numpy {np.__version__}; {args.workers} worker processes x {args.threads} thread(s); "
        f"{len(u_files)} file(s) per wind component, {chunk_rows} time steps per chunk, engine {args.engine}",
        flush=True,
    )

    timings = {"wind_variance": [], "regrid": []}
    results = {}
    with LocalCluster(
        n_workers=args.workers, threads_per_worker=args.threads, processes=True, dashboard_address=None
    ) as cluster, Client(cluster) as client:
        client.run(warm_workers)
        for _ in range(args.warmup):
            warm_wind, _ = wind_variance(args.data, chunk_rows, args.engine)
            warm_regrid, _ = regrid(args.data, params, args.lats, args.lons, chunk_rows, args.engine)
            print(f"dask: warm-up (not counted): wind_variance {warm_wind:.3f} s, regrid {warm_regrid:.3f} s", flush=True)
        for run in range(args.repeat):
            elapsed, results["wind_variance"] = wind_variance(args.data, chunk_rows, args.engine)
            timings["wind_variance"].append(elapsed)
            print(f"dask: wind_variance run {run + 1}/{args.repeat}: {elapsed:.3f} s", flush=True)
        for run in range(args.repeat):
            elapsed, results["regrid"] = regrid(args.data, params, args.lats, args.lons, chunk_rows, args.engine)
            timings["regrid"].append(elapsed)
            print(f"dask: regrid ({','.join(params)}) run {run + 1}/{args.repeat}: {elapsed:.3f} s", flush=True)

    checked = args.cairn_out is not None
    outcomes = {}
    if checked:
        outcomes["wind_variance"] = check_wind(results["wind_variance"], args.cairn_out, args.engine)
        outcomes["regrid"] = check_regrid(results["regrid"], args.cairn_out, args.engine)
        print(
            f"checks against {args.cairn_out}: np.isclose(rtol={RTOL:g}, atol={ATOL:g}, equal_nan=True) per "
            f"variable (a variance failing it: rtol {VARIANCE_RTOL:g}, as dask sums float32 in float32 and "
            f"Cairn in f64); the wind_from_direction variance agrees when at most 0.01 % of cells differ "
            f"(atan2's branch cut at +-180 degrees)"
        )
        for workload in outcomes.values():
            for outcome in workload:
                print("  " + describe(outcome))

    cairn_seconds = {"wind_variance": args.cairn_wind_seconds, "regrid": args.cairn_regrid_seconds}
    rows = []
    for workload in ["wind_variance", "regrid"]:
        dask_seconds = statistics.median(timings[workload])
        cairn = cairn_seconds[workload]
        ratio = dask_seconds / cairn if cairn else None
        row = {
            "workload": workload,
            "cairn_seconds": cairn,
            "dask_seconds": dask_seconds,
            "dask_runs_seconds": timings[workload],
            "ratio": ratio,
        }
        if checked:
            fields = outcomes[workload]
            row["agree"] = all(outcome["agree"] for outcome in fields)
            differences = [o["largest_relative_difference"] for o in fields if "largest_relative_difference" in o]
            row["largest_relative_difference"] = max(differences) if differences else None
            row["checks"] = fields
        else:
            row["agree"] = None
        rows.append(row)

    header = f"{'workload':<15} {'cairn (s)':>10} {'xarray+dask (s)':>16} {'dask/cairn':>11}  results agree"
    print()
    print(header)
    print("-" * len(header))
    for row in rows:
        cairn = f"{row['cairn_seconds']:.3f}" if row["cairn_seconds"] else "-"
        ratio = f"{row['ratio']:.1f}x" if row["ratio"] else "-"
        if row["agree"] is None:
            agree = "not checked (no --cairn-out)"
        else:
            largest = row["largest_relative_difference"]
            detail = f"largest relative difference {largest:.1e}" if largest is not None else "see above"
            agree = f"{'yes' if row['agree'] else 'NO'} ({detail})"
        print(f"{row['workload']:<15} {cairn:>10} {row['dask_seconds']:>16.3f} {ratio:>11}  {agree}")
    print(f"(xarray+dask: median of {args.repeat} run(s); dask/cairn above 1 means Cairn is faster)")

    if args.json:
        document = {
            "workloads": rows,
            "dask": {
                "xarray": xr.__version__,
                "dask": dask.__version__,
                "distributed": distributed.__version__,
                "numpy": np.__version__,
                "workers": args.workers,
                "threads_per_worker": args.threads,
                "engine": args.engine,
            },
            "chunk_rows": chunk_rows,
            "repeat": args.repeat,
            "regrid_params": params,
            "target_grid": {"lats": len(args.lats), "lons": len(args.lons)},
            "tolerances": {
                "rtol": RTOL,
                "variance_rtol_fallback": VARIANCE_RTOL,
                "atol": ATOL,
                "direction_branch_cut_fraction": BRANCH_CUT_FRACTION,
            },
            "agree": None if not checked else all(row["agree"] for row in rows),
        }
        with open(args.json, "w") as out:
            json.dump(document, out, indent=2)
            out.write("\n")

    if checked and not all(row["agree"] for row in rows):
        print("seeds: the xarray+dask results and Cairn's DISAGREE (above)", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
