"""Concurrent writers on the lake: four landing files landed together become four runs whose
warehouse steps overlap in time, and every row is there exactly once; two `penguin-pipeline run`
processes started at once over the same landing zone both succeed and load nothing twice; a
schedule's tick run beside the sensor's runs likewise."""

from __future__ import annotations

import csv
import sys
from itertools import combinations

import dagster as dg
import pyarrow.parquet as pq
import pytest

from penguin_pipeline import synth
from penguin_pipeline.defs.automation import RANGE_START

from ..conftest import lter_lines
from ..processes import (
    BIN,
    RUN_PARTITION,
    instance_home,
    project_env,
    run_at_once,
    run_step_spans,
)
from ..test_concurrency import season
from .lake_tools import lake_query, rows_per_file

pytestmark = pytest.mark.integration

WAREHOUSE_STEPS = {"raw_penguins", "penguins", "penguin_summary", "penguin_model"}

# `python -c TICK_AND_RUN schedule` or `... sensor <file>`: evaluate palmer_lter's schedule or
# sensor as the daemon would, then execute that tick's run request (the sensor's for one file).
TICK_AND_RUN = """
import sys, dagster as dg
from penguin_pipeline.definitions import defs
from penguin_pipeline.defs.automation import register_new_partitions
from penguin_pipeline.defs.resources import build_resources
from penguin_pipeline.settings import load_settings
instance, definitions = dg.DagsterInstance.get(), defs()
resources = {"landing": build_resources(load_settings())["landing"]}
if sys.argv[1] == "schedule":
    schedule = definitions.resolve_schedule_def("palmer_lter_schedule")
    with dg.build_schedule_context(instance=instance, resources=resources) as context:
        [request] = schedule.evaluate_tick(context).run_requests
else:
    sensor = definitions.resolve_sensor_def("palmer_lter_sensor")
    with dg.build_sensor_context(
        instance=instance, definitions=definitions, resources=resources
    ) as context:
        [request] = [r for r in sensor(context).run_requests if r.partition_key == sys.argv[2]]
    register_new_partitions(instance, [request.partition_key])
result = definitions.resolve_job_def("penguin_job").execute_in_process(
    instance=instance, tags=request.tags, partition_key=request.partition_key,
    raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


def lake_project(tmp_path, lake_env) -> tuple:
    home, data = instance_home(tmp_path), tmp_path / "data"
    env = project_env(home, data, PENGUIN_WAREHOUSE=f"ducklake:postgres:{lake_env}")
    dg.DagsterInstance.from_config(str(home)).dispose()  # the SQLite storage once, not in a race
    return home, data, env


def data_rows(path) -> int:
    """Records in a landed file, read without DuckDB: a Parquet file's own row count (pyarrow), or
    a CSV file's records, header excepted (the csv module: a quoted newline stays in its record;
    Latin-1 reads any byte, and only the delimiters matter)."""
    if path.suffix == ".parquet":
        return pq.ParquetFile(path).metadata.num_rows
    with open(path, newline="", encoding="latin-1") as handle:
        return sum(1 for _ in csv.reader(handle)) - 1


def overlapping(spans: list[tuple[str, float, float]]) -> list[tuple[str, str]]:
    """Pairs of steps of different runs that were running at the same moment."""
    return [
        (a[0], b[0])
        for a, b in combinations(spans, 2)
        if a[0].split("/")[0] != b[0].split("/")[0] and a[1] < b[2] and b[1] < a[2]
    ]


def test_four_files_landed_together_are_four_runs_writing_at_once(tmp_path, lake_env):
    home, data, env = lake_project(tmp_path, lake_env)
    # Large enough that each run's load takes a while: the runs' starts spread over seconds.
    files = synth.write_landing_files(synth.shipped_profile(), 80_000, data / "raw", seasons=4)
    names = sorted(f.name for f in files if "Biscoe" in f.name)
    for other in files:
        if other.name not in names:
            other.unlink()
    # What landed, counted from the files themselves before any run: the tables and the ledger
    # are checked against this, not only against each other (a row lost everywhere would pass).
    landed = {name: data_rows(data / "raw" / name) for name in names}
    run_at_once([[sys.executable, "-c", RUN_PARTITION, name] for name in names], env)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        records = instance.get_run_records()
        assert len(records) == 4
        spans = [
            (f"{record.dagster_run.run_id}/{step}", begin, end)
            for record in records
            for step, (begin, end) in run_step_spans(instance, record.dagster_run.run_id).items()
            if step in WAREHOUSE_STEPS
        ]
    zero = min(begin for _, begin, _ in spans)
    print("steps: run/step from..to (s)")
    for name, begin, end in sorted(spans, key=lambda span: span[1]):
        print(f"  {name[:8]}{name[36:]:<17} {begin - zero:6.2f}..{end - zero:6.2f}")
    assert overlapping(spans), "no two runs' warehouse steps ran at the same time"

    assert rows_per_file() == landed
    ledger = dict(lake_query("SELECT source_file, rows_loaded FROM landed_files"))
    assert ledger == landed
    assert lake_query("SELECT count(*) FROM penguins") == [(sum(landed.values()),)]
    assert lake_query(
        "SELECT count(*) FROM (SELECT source_file, source_line FROM raw_penguins "
        "GROUP BY ALL HAVING count(*) > 1)"
    ) == [(0,)]


def test_two_cli_runs_at_once_load_nothing_twice(tmp_path, lake_env):
    home, data, env = lake_project(tmp_path, lake_env)
    landing = data / "raw"
    landing.mkdir(parents=True)
    for i, study in enumerate(("PAL1011", "PAL1112", "PAL1213")):
        season(landing / f"{study}.csv", study, lter_lines()[1 + i :: 3])
    run_at_once([[str(BIN / "penguin-pipeline"), "run"]] * 2, env)

    assert rows_per_file() == {"PAL1011.csv": 115, "PAL1112.csv": 115, "PAL1213.csv": 114}
    assert lake_query("SELECT count(*), count(DISTINCT source_file) FROM landed_files") == [(3, 3)]
    assert lake_query("SELECT count(*) FROM penguins") == [(344,)]


def test_a_schedule_tick_beside_the_sensors_runs_loads_nothing_twice(tmp_path, lake_env):
    """The schedule's run over the whole landing zone and the sensor's three runs, one per new
    file, all at once: all succeed, every file's rows once, one ledger line each."""
    home, data, env = lake_project(tmp_path, lake_env)
    landing = data / "raw"
    landing.mkdir(parents=True)
    names = ["PAL1011.csv", "PAL1112.csv", "PAL1213.csv"]
    for i, name in enumerate(names):
        season(landing / name, name.removesuffix(".csv"), lter_lines()[1 + i :: 3])
    ticks = [["schedule"]] + [["sensor", name] for name in names]
    run_at_once([[sys.executable, "-c", TICK_AND_RUN, *tick] for tick in ticks], env)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs()
        assert len(runs) == 4 and all(run.is_success for run in runs)
        assert sum(RANGE_START in run.tags for run in runs) == 1  # the schedule's, over every file
    assert rows_per_file() == {"PAL1011.csv": 115, "PAL1112.csv": 115, "PAL1213.csv": 114}
    assert lake_query("SELECT count(*), count(DISTINCT source_file) FROM landed_files") == [(3, 3)]
    assert lake_query(
        "SELECT count(*) FROM (SELECT source_file, source_line FROM raw_penguins "
        "GROUP BY ALL HAVING count(*) > 1)"
    ) == [(0,)]
    assert lake_query("SELECT count(*) FROM penguins") == [(344,)]
