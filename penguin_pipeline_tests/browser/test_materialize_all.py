""" "Materialize all" from penguin_job's page with several landing files: one run of penguin_job
refreshes the whole graph, and the time from the click to the last asset refreshed is recorded.

The time is printed and appended to `.test-artifacts/materialize-all-timings.jsonl`, never
asserted (README, "Materialize all in the UI", has the figures). With
PENGUIN_UPDATE_SCREENSHOTS=1 the test also rewrites README's screenshot of the click path,
docs/ui-materialize-all.png.
"""

from __future__ import annotations

import json
import os
import sys
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from penguin_pipeline import sources
from penguin_pipeline.defs.automation import RANGE_END, RANGE_START
from penguin_pipeline.settings import load_settings

from ..processes import ROOT, instance_home, project_env, wait_for
from . import dagster_pages as ui
from .conftest import ARTIFACTS, dg_dev, landed_files, seed
from .refresh import ASSETS, land_files, refreshed_at, runs_since

pytestmark = [pytest.mark.browser, pytest.mark.integration]

FILE_COUNTS = (2, 3, 10)
SCREENSHOT_AT = 3  # files in the dialog of README's screenshot
TIMINGS = ARTIFACTS / "materialize-all-timings.jsonl"
SCREENSHOT = ROOT / "docs" / "ui-materialize-all.png"
UPDATE_SCREENSHOTS_ENV = "PENGUIN_UPDATE_SCREENSHOTS"
SENSORS_LOGGED = "skipped: no new or changed"


@pytest.fixture(scope="module")
def quiet_ui(tmp_path_factory):
    """A `dg dev` of its own whose sensors took their first tick on an empty landing zone and then
    wait an hour: no sensor run competes with the click being timed."""
    tmp = tmp_path_factory.mktemp("materialize_all")
    home = instance_home(tmp)
    data = tmp / "data"
    (data / "raw").mkdir(parents=True)
    # Up to seven synthetic seasons of 150 birds land at once; drift on seasons that small can
    # pass PSI 0.1 by chance, and this test is about the graph, not drift: thresholds set high.
    env = project_env(
        home,
        data,
        PENGUIN_SENSOR_INTERVAL_SECONDS="3600",
        VIRTUAL_ENV=str(Path(sys.prefix)),
        PENGUIN_DRIFT_WARN="1",
        PENGUIN_DRIFT_BLOCK="1",
    )
    with dg_dev(tmp, home, data, env) as served:
        wait_for(
            lambda: (
                served.log.read_text(errors="replace").count(SENSORS_LOGGED) >= len(sources.SOURCES)
            ),
            timeout=60,
            what="every sensor's first tick",
        )
        yield served


def test_materialize_all_from_penguin_job_refreshes_the_whole_graph_in_one_run(quiet_ui, browsing):
    browsing.server_logs.append(quiet_ui.log)
    landed = 0
    for count in FILE_COUNTS:
        land_files(quiet_ui.data, count, first=landed)
        # `make dev`'s seed step: the landing files become partitions before anyone clicks
        registered = seed(quiet_ui.env)
        assert f"raw_penguins partitions: {count - landed} new, {count} in all" in registered
        landed = count
        update = os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1" and count == SCREENSHOT_AT
        click_and_check(quiet_ui, browsing.page, count, SCREENSHOT if update else None)


def click_and_check(served, page, count: int, screenshot) -> None:
    ui.open_ui(page, served.url)
    ui.open_job(page, "penguin_job")
    launched = ui.materialize_all(page, screenshot=screenshot)
    assert launched.kind == "backfill"  # several partitions: the UI makes it a backfill

    with dg.DagsterInstance.from_config(str(served.home)) as instance:
        refreshed = wait_for(
            lambda: refreshed_at(instance, launched.clicked_at),
            timeout=ui.RUN_TIMEOUT_MS / 1000,
            interval=0.25,
            what=f"every asset refreshed after the click ({count} files)",
        )
        [run] = wait_for(
            lambda: (
                (runs := runs_since(instance, launched.clicked_at))
                and all(r.is_finished for r in runs)
                and runs
            ),
            timeout=60,
            what="the backfill's run finished",
        )
        events = instance.all_logs(run.run_id)
    record(count, launched, refreshed, run)

    files = landed_files(served.data)
    assert run.job_name == "penguin_job"  # not Dagster's hidden asset job: the job's own run
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert run.tags["dagster/backfill"] == launched.id
    assert (run.tags[RANGE_START], run.tags[RANGE_END]) == (files[0], files[-1])
    materialized = [
        e.asset_materialization
        for e in events
        if e.is_dagster_event and e.dagster_event.is_step_materialization
    ]
    raw = sorted(m.partition for m in materialized if m.asset_key == dg.AssetKey("raw_penguins"))
    assert raw == files
    assert sorted({m.asset_key.to_user_string() for m in materialized}) == sorted(ASSETS)
    checks = [
        e.dagster_event.event_specific_data
        for e in events
        if e.is_dagster_event and e.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"
    ]
    failed = [c.check_name for c in checks if not c.passed]
    assert checks and not failed, failed
    settings = load_settings(served.env)
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        sql = "SELECT DISTINCT source_file FROM raw_penguins ORDER BY 1"
        assert [row[0] for row in con.execute(sql).fetchall()] == files


def record(count: int, launched: ui.Launched, refreshed: float, run: dg.DagsterRun) -> None:
    """Print the time from the click to the whole graph refreshed and keep it in the artifacts."""
    line = {
        "at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "files": count,
        "click_to_refreshed_s": round(refreshed - launched.clicked_at, 1),
        "launch_click_to_refreshed_s": round(refreshed - launched.launched_at, 1),
        "run": run.run_id[:8],
        "load_average": round(os.getloadavg()[0], 1),
    }
    print(f"Materialize all, {count} files: {json.dumps(line)}")
    ARTIFACTS.mkdir(exist_ok=True)
    with open(TIMINGS, "a") as out:
        out.write(json.dumps(line) + "\n")
