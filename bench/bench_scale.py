"""`make bench-scale`: the whole pipeline on both warehouse backends beside plain pandas and polars
scripts at N = 10^4 .. 10^8 rows.

For each N: synthetic landing files (Parquet, season x island; generated once and reused), then
`penguin-pipeline run` on a fresh DuckDB file, board and Dagster instance, then the same on a fresh
DuckLake (a new Postgres catalog database, dropped after; Parquet files on the local disk), then
bench/pandas_peer.py and bench/polars_peer.py on the same files. Each is a whole process tree,
timed by wall clock, its peak memory the peak of the summed RSS of the tree, sampled every 0.1 s.
A peer is stopped when its tree passes the memory bound or the time bound; larger N are then not
tried for it. Never part of the test run.

Environment: BENCH_SCALE_N (comma list, default 1e4,1e5,1e6,1e7,1e8), BENCH_PANDAS_MEMORY_GIB (12),
BENCH_PANDAS_SECONDS (1800), BENCH_LAKE_SERVER (libpq string of the Postgres server for the lake
catalogs; default host=127.0.0.1 port=5432 user=postgres), BENCH_BACKENDS (default file,lake;
e.g. `lake` to measure the lake alone), BENCH_PANDAS=0 / BENCH_POLARS=0 to leave a peer out (the
bounds apply to both peers),
BENCH_SCALE_DIR (bench/results/scale; 10^8 needs ~4 GB of landing files and ~6 GB of warehouse),
BENCH_SCALE_KEEP=1 to keep the generated files. Each pipeline run's log is kept in
bench/results/scale-logs/ and its per-step times (from the run's step events) go to the results,
also when the run fails. docs/scale.png is redrawn only when the results cover every default size
on both backends (sizes measured earlier on this machine count, from bench/results/scale.json):
a run of one size or one backend leaves the sweep's plot as it was.
"""

from __future__ import annotations

import json
import os
import platform
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # the test helpers: a scratch Postgres database per lake catalog
import dagster as dg  # noqa: E402

from bench.results_file import append_results, machine, rows_from_markdown  # noqa: E402
from penguin_pipeline_tests.processes import (  # noqa: E402
    LAKE_BIN,
    instance_yaml_elsewhere,
    run_step_spans,
    scratch_database,
)

BIN = Path(sys.executable).parent
SWEEP = "1e4,1e5,1e6,1e7,1e8"  # the default sizes; docs/scale.png shows a whole sweep
SIZES = [int(float(n)) for n in os.environ.get("BENCH_SCALE_N", SWEEP).split(",")]
PANDAS_MEMORY = float(os.environ.get("BENCH_PANDAS_MEMORY_GIB", "12")) * 2**30
PANDAS_SECONDS = float(os.environ.get("BENCH_PANDAS_SECONDS", "1800"))
WORK = Path(os.environ.get("BENCH_SCALE_DIR", ROOT / "bench" / "results" / "scale"))
# Kept between sizes, so an interrupted run resumes; the docs read what append_results writes.
RESULTS = ROOT / "bench" / "results" / "scale.json"
LOGS = ROOT / "bench" / "results" / "scale-logs"
PLOT = ROOT / "docs" / "scale.png"
GIB = 2**30
LAKE_SERVER = os.environ.get("BENCH_LAKE_SERVER", "host=127.0.0.1 port=5432 user=postgres")
BACKENDS = os.environ.get("BENCH_BACKENDS", "file,lake").split(",")
WITH_PANDAS = os.environ.get("BENCH_PANDAS", "1") != "0"
WITH_POLARS = os.environ.get("BENCH_POLARS", "1") != "0"
# The peers: the same work as plain scripts (read every file, clean, aggregate, fit).
PEERS = {
    name: ROOT / "bench" / f"{name}_peer.py"
    for name, wanted in (("pandas", WITH_PANDAS), ("polars", WITH_POLARS))
    if wanted
}


def tree_rss(process: psutil.Process) -> int:
    total = 0
    for p in [process] + process.children(recursive=True):
        try:
            total += p.memory_info().rss
        except psutil.Error:
            pass
    return total


def measured(
    cmd: list[str], env: dict, memory_bound: float = float("inf"), seconds: float = float("inf")
) -> dict:
    """Run cmd; wall time, peak tree RSS, and whether (and why) it was stopped; `samples`: (epoch
    seconds, tree RSS) every 0.1 s, for each step's peak (step_peaks)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        cmd,
        env=env,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    ps, peak, stopped, samples = psutil.Process(proc.pid), 0, None, []
    while proc.poll() is None:
        samples.append((time.time(), tree_rss(ps)))
        peak = max(peak, samples[-1][1])
        elapsed = time.perf_counter() - start
        if peak > memory_bound or elapsed > seconds:
            stopped = (
                f"memory > {memory_bound / GIB:.0f} GiB"
                if peak > memory_bound
                else f"time > {seconds:.0f} s"
            )
            os.killpg(proc.pid, 9)
            proc.wait()
            break
        time.sleep(0.1)
    output = proc.stdout.read()
    wall = time.perf_counter() - start
    if proc.returncode and not stopped:
        raise SystemExit(
            f"{' '.join(cmd)} failed after {wall:.1f} s, peak {peak / GIB:.2f} GiB:\n"
            f"{output[-3000:]}"
        )
    return {
        "seconds": round(wall, 2),
        "peak_gib": round(peak / GIB, 3),
        "stopped": stopped,
        "output": output.strip().splitlines()[-1:] if output else [],
        "samples": samples,
    }


def landing_for(n: int, env: dict) -> Path:
    folder = WORK / f"raw-{n}"
    done = folder / ".complete"
    if not done.exists():
        shutil.rmtree(folder, ignore_errors=True)
        start = time.perf_counter()
        subprocess.run(
            [str(BIN / "penguin-pipeline"), "synth", "--rows", str(n), "--to", str(folder)],
            env=env,
            cwd=ROOT,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        done.write_text(f"{time.perf_counter() - start:.1f}")
    return folder


def pipeline_env(n: int, landing: Path) -> dict:
    tmp = WORK / f"run-{n}"
    shutil.rmtree(tmp, ignore_errors=True)
    home = tmp / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("PENGUIN_") or k.startswith("PENGUIN_DUCKDB")
    }
    env.update(
        DAGSTER_HOME=str(home), PENGUIN_DATA_DIR=str(tmp / "data"), PENGUIN_LANDING=str(landing)
    )
    # DuckDB's buffer limit plus the Python process (Dagster, pandas, sklearn: ~0.45 GiB) must stay
    # under the 2 GiB target for the whole tree; DuckDB spills to PENGUIN_DUCKDB_TEMP_DIR beyond it.
    env.setdefault("PENGUIN_DUCKDB_MEMORY_LIMIT", "1200MB")
    return env


def measured_on_lake(n: int, landing: Path) -> dict:
    env = pipeline_env(n, landing)
    with scratch_database(f"penguin_bench_{n}", LAKE_SERVER) as catalog:
        env.update(
            PENGUIN_WAREHOUSE=f"ducklake:postgres:{catalog}",
            PENGUIN_LAKE_DATA=str(WORK / f"run-{n}" / "lake"),
        )
        return measured_pipeline(n, "lake", env)


def measured_pipeline(n: int, backend: str, env: dict) -> dict:
    """`penguin-pipeline run`, measured; its log kept and each step's seconds added from the run's
    event log (printed instead when the run failed)."""
    try:
        bin_dir = LAKE_BIN if backend == "lake" else BIN
        result = measured([str(bin_dir / "penguin-pipeline"), "run"], env)
    except SystemExit:
        print(f"N={n:.0e} {backend} steps before the failure: {kept(n, backend, env)}", flush=True)
        raise
    spans = step_spans(n, backend, env)
    result["steps"] = {step: round(end - start, 1) if end else None for step, (start, end) in spans}
    result["step_peak_gib"] = step_peaks(result.pop("samples"), spans)
    return result


def kept(n: int, backend: str, env: dict) -> dict[str, float]:
    """Each step's seconds (a failed step's too)."""
    spans = step_spans(n, backend, env)
    return {step: round(end - start, 1) if end else None for step, (start, end) in spans}


def step_spans(n: int, backend: str, env: dict) -> list[tuple[str, tuple[float, float | None]]]:
    """Copy the run's log to LOGS; each step's (start, end) in epoch seconds, in the run's order."""
    logs = sorted((Path(env["PENGUIN_DATA_DIR"]) / "logs").glob("run-*.log"))
    if logs:
        LOGS.mkdir(parents=True, exist_ok=True)
        shutil.copy(logs[-1], LOGS / f"{backend}-{n}.log")
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        spans = [
            span
            for run in instance.get_runs()
            for span in run_step_spans(instance, run.run_id).items()
        ]
    return sorted(spans, key=lambda span: span[1][0])


def step_peaks(samples: list[tuple[float, int]], spans) -> dict[str, float]:
    """The process tree's peak RSS (GiB) while each step ran: which step sets the run's peak."""
    return {
        step: round(
            max((rss for t, rss in samples if start <= t <= (end or t)), default=0) / GIB, 3
        )
        for step, (start, end) in spans
    }


def covers_a_sweep(rows: list[dict]) -> bool:
    """Every default size measured on both backends: only then is docs/scale.png redrawn (a run of
    one size or one backend would replace its curves with a point)."""
    by_n = {r["n"]: r for r in rows}
    sizes = [int(float(n)) for n in SWEEP.split(",")]
    return all(n in by_n and by_n[n].get("pipeline") and by_n[n].get("lake") for n in sizes)


def plot(rows: list[dict]) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    for who, style in (("pipeline", "o-"), ("lake", "^-"), ("pandas", "s--"), ("polars", "d--")):
        done = [r for r in rows if r.get(who) and not r[who]["stopped"]]
        left.plot([r["n"] for r in done], [r[who]["seconds"] for r in done], style, label=who)
        right.plot([r["n"] for r in done], [r[who]["peak_gib"] for r in done], style, label=who)
        stopped = [r for r in rows if r.get(who) and r[who]["stopped"]]
        for r in stopped:
            right.annotate(
                f"{who} stopped\n({r[who]['stopped']})", (r["n"], r[who]["peak_gib"]), fontsize=8
            )
            right.plot([r["n"]], [r[who]["peak_gib"]], "x", color="red")
    for ax, label in ((left, "wall time (s)"), (right, "peak memory, process tree (GiB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("rows (N)")
        ax.set_ylabel(label)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    right.axhline(2, color="grey", linestyle=":", linewidth=1)
    fig.suptitle(
        "penguin_pipeline (DuckDB file, DuckLake) vs plain pandas and polars scripts (2 cores)"
    )
    fig.tight_layout()
    PLOT.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(PLOT, dpi=100)


def cells(measurement: dict | None) -> str:
    if measurement is None:
        return "not run | -"
    return f"{measurement['seconds']:.1f} | {measurement['peak_gib']:.2f}"


def peer_ratios(ours: dict | None, theirs: dict | None) -> tuple[str, str]:
    """A peer against the file backend: time and memory ratios (peer / pipeline)."""
    if ours is None or theirs is None:
        return "-", "-"
    if theirs["stopped"]:
        return "n/a (did not finish)", f">{theirs['peak_gib'] / ours['peak_gib']:.1f}x"
    return (
        f"{theirs['seconds'] / ours['seconds']:.1f}x",
        f"{theirs['peak_gib'] / ours['peak_gib']:.1f}x",
    )


def peer_cells(theirs: dict | None) -> str:
    if theirs is None:
        return "not run | not run"
    if theirs["stopped"]:
        return (
            f"stopped at {theirs['seconds']:.0f} ({theirs['stopped']}) | >{theirs['peak_gib']:.2f}"
        )
    return f"{theirs['seconds']:.1f} | {theirs['peak_gib']:.2f}"


def table(rows: list[dict]) -> str:
    lines = [
        "| N rows | files | pipeline time (s) | pipeline peak (GiB) "
        "| lake time (s) | lake peak (GiB) "
        "| pandas time (s) | pandas peak (GiB) | polars time (s) | polars peak (GiB) "
        "| pandas/pipeline time | pandas/pipeline memory "
        "| polars/pipeline time | polars/pipeline memory |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        ours, lake = r["pipeline"], r.get("lake")
        ratios = [x for who in ("pandas", "polars") for x in peer_ratios(ours, r.get(who))]
        lines.append(
            f"| {r['n']:.0e} | {r['files']} | {cells(ours)} | {cells(lake)} "
            f"| {peer_cells(r.get('pandas'))} | {peer_cells(r.get('polars'))} "
            f"| {' | '.join(ratios)} |"
        )
    return "\n".join(lines)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    # Sizes run before (e.g. 10^8 alone, later) are kept: the table and plot cover every N measured.
    earlier = json.loads(RESULTS.read_text())["rows"] if RESULTS.exists() else []
    rows = []
    # A peer stopped at a smaller N (memory or time bound) is not tried at a larger one.
    gave_up = {
        who: any(r.get(who) and r[who]["stopped"] and r["n"] < min(SIZES) for r in earlier)
        for who in PEERS
    }
    for n in SIZES:
        base_env = {k: v for k, v in os.environ.items()}
        landing = landing_for(n, base_env)
        env = pipeline_env(n, landing)
        ours = lake = None
        peers = {}
        if "file" in BACKENDS:
            ours = measured_pipeline(n, "file", env)
            print(
                f"N={n:.0e} pipeline {ours['seconds']} s, {ours['peak_gib']} GiB {ours['steps']}"
                f"\n  peak GiB per step {ours['step_peak_gib']}",
                flush=True,
            )
            shutil.rmtree(WORK / f"run-{n}", ignore_errors=True)
        if "lake" in BACKENDS:
            lake = measured_on_lake(n, landing)
            print(
                f"N={n:.0e} lake     {lake['seconds']} s, {lake['peak_gib']} GiB {lake['steps']}"
                f"\n  peak GiB per step {lake['step_peak_gib']}",
                flush=True,
            )
        for who, script in PEERS.items():
            if gave_up[who]:
                continue
            theirs = measured(
                [sys.executable, str(script), str(landing)], env, PANDAS_MEMORY, PANDAS_SECONDS
            )
            del theirs["samples"]
            peers[who], gave_up[who] = theirs, bool(theirs["stopped"])
            print(
                f"N={n:.0e} {who:8} {theirs['seconds']} s, {theirs['peak_gib']} GiB "
                f"{theirs['stopped'] or ''}",
                flush=True,
            )
        rows.append(
            {
                "n": n,
                "files": len(list(landing.glob("*.parquet"))),
                "pipeline": ours,
                "lake": lake,
                "pandas": peers.get("pandas"),
                "polars": peers.get("polars"),
                "synth_seconds": float((landing / ".complete").read_text()),
            }
        )
        shutil.rmtree(WORK / f"run-{n}", ignore_errors=True)
        if os.environ.get("BENCH_SCALE_KEEP") != "1":
            shutil.rmtree(landing, ignore_errors=True)
        merged = sorted(
            [r for r in earlier if r["n"] not in {x["n"] for x in rows}] + rows,
            key=lambda r: r["n"],
        )
        RESULTS.write_text(
            json.dumps(
                {
                    "date": datetime.now(UTC).isoformat(timespec="seconds"),
                    "machine": (
                        f"{os.cpu_count()} cores, "
                        f"{psutil.virtual_memory().total / GIB:.0f} GiB, {platform.node()}"
                    ),
                    "load_average": [round(x, 2) for x in os.getloadavg()],
                    "pandas_bounds": {"memory_gib": PANDAS_MEMORY / GIB, "seconds": PANDAS_SECONDS},
                    "rows": merged,
                },
                indent=2,
            )
        )
        if covers_a_sweep(merged):
            plot(merged)
    print(table(merged))
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "plain pandas and polars scripts (bench/pandas_peer.py, bench/polars_peer.py)",
        "rows": rows_from_markdown(table(merged)),
        "runs": merged,
        "plot": {
            "x": "N rows",
            "y": ["pipeline time (s)", "pandas time (s)", "polars time (s)"],
            "log": True,
        },
    }
    drawn = "redrawn" if covers_a_sweep(merged) else f"kept (redrawn by a sweep of {SWEEP})"
    print(f"\nresults: {append_results('scale', entry)}\nplot {PLOT}: {drawn}")


if __name__ == "__main__":
    main()
