"""The real Dagster daemon: a file dropped into landing flows to the tables, the model and the
report.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from penguin_pipeline.cli import new_season
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from .conftest import LTER_FILE
from .processes import instance_home, project_env, running_daemon, wait_for

pytestmark = pytest.mark.integration


def model_version(settings):
    try:
        facts = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    except Exception:  # the board may be mid-write while the daemon's run pins
        return None
    return facts and facts["version"]


def raw_rows(settings, source_file):
    import duckdb

    try:
        with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
            return con.execute(
                "SELECT count(*) FROM raw_penguins WHERE source_file = ?", [source_file]
            ).fetchall()[0][0]
    except duckdb.Error:  # not created yet, or the pipeline holds the write lock right now
        return None


def test_daemon_picks_up_new_files_end_to_end(tmp_path):
    home = instance_home(tmp_path)
    data = tmp_path / "data"
    env = project_env(home, data, PENGUIN_SENSOR_INTERVAL_SECONDS="2")
    settings = load_settings(env)
    landing = data / "raw"
    landing.mkdir(parents=True)
    shutil.copyfile(LTER_FILE, landing / "penguins-raw.csv")

    with running_daemon(home, env, tmp_path / "daemon.log"):
        first = wait_for(lambda: model_version(settings), timeout=150, what="first model version")
        report_time = wait_for(
            lambda: (
                Path(settings.report_url).exists() and Path(settings.report_url).stat().st_mtime
            ),
            timeout=60,
            what="first report",
        )
        new_season(rows=120, seed=11, settings=settings)

        wait_for(
            lambda: (model_version(settings) or "") > first,
            timeout=150,
            what="second model version",
        )
        wait_for(
            lambda: Path(settings.report_url).stat().st_mtime > report_time,
            timeout=60,
            what="report rebuilt",
        )
        assert (
            wait_for(lambda: raw_rows(settings, "season-2010.csv"), timeout=30, what="rows loaded")
            > 100
        )
    assert second_version_in_report(settings)


def second_version_in_report(settings) -> bool:
    return model_version(settings) in Path(settings.report_url).read_text(encoding="utf-8")
