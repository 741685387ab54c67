"""Why penguin_job runs in-process: the same job under both executors, on a persistent instance.

`make bench-executor` prints the wall time of one full run (first run, then a re-run with nothing
new) for the in-process and the multiprocess executor, side by side. Never part of the test run.
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

ROOT = Path(__file__).resolve().parents[1]


def job_with(executor_name: str):
    """Module-level and argument-only, so the multiprocess executor can rebuild it in each step
    process."""
    from penguin_pipeline.definitions import defs

    executor = (
        dg.multiprocess_executor if executor_name == "multiprocess" else dg.in_process_executor
    )
    job = dg.define_asset_job(
        f"penguin_job_{executor_name}", selection=dg.AssetSelection.all(), executor_def=executor
    )
    return dg.Definitions.merge(defs(), dg.Definitions(jobs=[job])).resolve_job_def(job.name)


def timed_run(executor_name: str, instance: dg.DagsterInstance, tags: dict) -> float:
    start = time.perf_counter()
    job = dg.build_reconstructable_job(
        "bench.bench_executor", "job_with", reconstructable_args=(executor_name,)
    )
    result = dg.execute_job(job, instance=instance, tags=tags)
    assert result.success, f"{executor_name} run failed"
    return time.perf_counter() - start


def main() -> None:
    sys.path.insert(0, str(ROOT))
    from bench.results_file import append_results, machine
    from penguin_pipeline import cli
    from penguin_pipeline.defs.automation import register_new_partitions, whole_landing_tags
    from penguin_pipeline_tests.processes import instance_yaml_elsewhere

    print(f"{'executor':14} {'first run (s)':>14} {'re-run (s)':>11}")
    rows = []
    for executor_name in ("in_process", "multiprocess"):
        with tempfile.TemporaryDirectory() as tmp:
            home = Path(tmp) / "home"
            home.mkdir()
            (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
            os.environ["PENGUIN_DATA_DIR"] = str(Path(tmp) / "data")
            instance = dg.DagsterInstance.from_config(str(home))
            zone = cli.landing_zone(cli.load_settings())
            cli.landing.seed_if_empty(zone)
            register_new_partitions(instance, [f.name for f in zone.files()])
            tags = whole_landing_tags(instance)
            first = timed_run(executor_name, instance, tags)
            again = timed_run(executor_name, instance, tags)
            print(f"{executor_name:14} {first:>14.1f} {again:>11.1f}", flush=True)
            rows.append({"executor": executor_name, "first run (s)": first, "re-run (s)": again})
            instance.dispose()
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "the multiprocess executor",
        "rows": [
            {k: round(v, 1) if isinstance(v, float) else v for k, v in r.items()} for r in rows
        ],
        "plot": {"x": "executor", "y": ["first run (s)", "re-run (s)"], "ylabel": "seconds"},
    }
    print(f"results: {append_results('executor', entry)}")


if __name__ == "__main__":
    main()
