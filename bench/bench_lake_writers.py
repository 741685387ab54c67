"""`make bench-lake-writers`: four landing files landed together, as four runs at once, on the
DuckDB file and on the DuckLake, side by side. A benchmark, never part of the tests.

Each backend gets a fresh Dagster instance (dagster.yaml: its `duckdb` pool of one), fresh
data, the same four synthetic Parquet files (one island's seasons: about BENCH_WRITERS_ROWS rows in
all, default 2e6), and four
processes started together, each running penguin_job for its own file (what four sensor runs do).
The lake gets a new Postgres catalog database (BENCH_LAKE_SERVER, as in bench-scale), dropped after.

Per backend: wall time until the four runs ended, each run's steps (start, end) from the event log,
the most warehouse steps running at the same moment, and every file's rows counted once. On the
file the pool lets one warehouse step run at a time; on the lake they overlap.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402

from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline import synth  # noqa: E402
from penguin_pipeline.defs.assets import ALL_ASSETS  # noqa: E402
from penguin_pipeline_tests.processes import (  # noqa: E402
    LAKE_BIN,
    RUN_PARTITION,
    instance_yaml_elsewhere,
    most_at_once,
    run_step_spans,
    scratch_database,
)

ROWS = int(float(os.environ.get("BENCH_WRITERS_ROWS", "2e6")))
LAKE_SERVER = os.environ.get("BENCH_LAKE_SERVER", "host=127.0.0.1 port=5432 user=postgres")
WORK = Path(os.environ.get("BENCH_WRITERS_DIR", ROOT / "bench" / "results" / "lake_writers"))
# The steps that open the warehouse: every asset that requires the warehouse resource.
WAREHOUSE_STEPS = {
    key.to_user_string()
    for asset in ALL_ASSETS
    if "warehouse" in asset.required_resource_keys
    for key in asset.keys
}


def four_files(folder: Path) -> list[str]:
    """Four season files of one island (the rest deleted), written once and reused."""
    if not (folder / ".complete").exists():
        shutil.rmtree(folder, ignore_errors=True)
        files = synth.write_landing_files(synth.shipped_profile(), ROWS * 2, folder, seasons=4)
        for path in files:
            if "Biscoe" not in path.name:
                path.unlink()
        (folder / ".complete").write_text("")
    return sorted(p.name for p in folder.glob("*.parquet"))


def project(backend: str, landing: Path, extra: dict) -> tuple[Path, dict]:
    tmp = WORK / backend
    shutil.rmtree(tmp, ignore_errors=True)
    home = tmp / "dagster_home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIN_")}
    env.update(
        DAGSTER_HOME=str(home),
        PENGUIN_DATA_DIR=str(tmp / "data"),
        PENGUIN_LANDING=str(landing),
        PENGUIN_DUCKDB_MEMORY_LIMIT="1200MB",
        **extra,
    )
    dg.DagsterInstance.from_config(str(home)).dispose()  # the SQLite storage once, not in a race
    return home, env


def python_for(env: dict) -> str:
    """The lake's runs in its own environment (LAKE_BIN); the file's in this one."""
    return str(LAKE_BIN / "python") if "PENGUIN_WAREHOUSE" in env else sys.executable


def four_runs_at_once(home: Path, env: dict, names: list[str]) -> dict:
    start = time.perf_counter()
    runs = [
        subprocess.Popen(
            [python_for(env), "-c", RUN_PARTITION, name],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for name in names
    ]
    errors = [run.communicate()[1].decode()[-2000:] for run in runs]
    wall = time.perf_counter() - start
    if any(run.returncode for run in runs):
        raise SystemExit("a run failed:\n" + "\n".join(errors))
    spans = step_spans(home)
    return {
        "seconds": round(wall, 2),
        "most_warehouse_steps_at_once": most_at_once([(b, e) for _, b, e in spans]),
        "steps": spans,
    }


def step_spans(home: Path) -> list[tuple[str, float, float]]:
    """Every warehouse step of every run: (run/step, start, end), seconds from the first start."""
    spans = []
    with dg.DagsterInstance.from_config(str(home)) as instance:
        for run in instance.get_runs():
            for key, (begin, end) in run_step_spans(instance, run.run_id).items():
                if key in WAREHOUSE_STEPS:
                    spans.append((f"{run.run_id[:8]}/{key}", begin, end))
    zero = min(begin for _, begin, _ in spans)
    return sorted((name, round(b - zero, 2), round(e - zero, 2)) for name, b, e in spans)


def main() -> None:
    WORK.mkdir(parents=True, exist_ok=True)
    landing = WORK / "raw"
    names = four_files(landing)
    results = {}
    home, env = project("file", landing, {})
    results["file"] = four_runs_at_once(home, env, names)
    with scratch_database("penguin_bench_writers", LAKE_SERVER) as catalog:
        home, env = project("lake", landing, {"PENGUIN_WAREHOUSE": f"ducklake:postgres:{catalog}"})
        results["lake"] = four_runs_at_once(home, env, names)
    for backend, result in results.items():
        print(
            f"{backend:5} four runs at once: {result['seconds']} s, "
            f"at most {result['most_warehouse_steps_at_once']} warehouse step(s) at the same time"
        )
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine(),
        "peer": "the DuckDB file (duckdb pool of one) beside the DuckLake",
        "landing_rows": ROWS,
        "files": names,
        "results": results,
    }
    print(f"results: {append_results('lake_writers', entry)}")


if __name__ == "__main__":
    main()
