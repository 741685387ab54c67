"""The lake under the production profile: the Dagster instance on Postgres, steps on two Celery
workers. Four landing files at once: four runs, all succeed, steps of different runs on the
warehouse at the same time (no pool of one on the lake), every row once."""

from __future__ import annotations

import pytest

from penguin_pipeline import synth

from ..processes import run_step_spans
from ..prod.conftest import finished_runs
from ..prod.test_profile import STEPS, run_text, step_workers
from .lake_tools import lake_query, rows_per_file
from .test_lake_concurrency import overlapping

pytestmark = [pytest.mark.integration, pytest.mark.prod]


def test_four_runs_on_the_workers_write_to_the_lake_at_once(deployment, lake_env):
    deployment.env["PENGUIN_WAREHOUSE"] = f"ducklake:postgres:{lake_env}"
    seasons = range(2010, 2014)
    for year in seasons:
        csv = synth.season_csv(synth.shipped_profile(), rows=150, year=year, seed=year)
        (deployment.landing / f"season-{year}.csv").write_bytes(csv)

    deployment.up()
    with deployment.instance() as instance:
        runs = finished_runs(instance, 4, timeout=400)
        spans = []
        for run in runs:
            assert run.is_success, run_text(instance, run.run_id)[-3000:]
            steps = run_step_spans(instance, run.run_id)
            assert set(step_workers(instance, run.run_id)) == set(steps) == STEPS
            spans += [(f"{run.run_id}/{k}", start, end) for k, (start, end) in steps.items()]
    assert overlapping(spans), "no two runs' steps ran at the same time"

    assert rows_per_file() == {f"season-{year}.csv": 150 for year in seasons}
    assert lake_query("SELECT count(*) FROM landed_files") == [(4,)]
    assert not (deployment.data / "penguins.duckdb").exists()
