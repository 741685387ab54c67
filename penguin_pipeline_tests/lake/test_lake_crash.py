"""A run killed (SIGKILL) on the lake after it inserted a file's rows and before its commit: the
lake stays at its last snapshot, the next run loads every file once, and `lake-maintain` deletes
the Parquet files the killed run wrote. A run killed with the clean table's candidate built and not
yet swapped in leaves no candidate table behind."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from penguin_pipeline import cli
from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage.warehouse import current_snapshot

from ..conftest import lter_lines, write_lines
from ..processes import ROOT, instance_home, project_env
from .lake_tools import lake_query, rows_per_file

pytestmark = pytest.mark.integration


def snapshot_now() -> int:
    with warehouse_resource(load_settings()).get_connection() as con:
        return current_snapshot(con)


def parquet_files(settings) -> set[Path]:
    return set(Path(settings.lake_data).rglob("*.parquet"))


def run_killed_at(point: str, env: dict) -> None:
    """`penguin-pipeline run` that SIGKILLs itself at `point` (crashing_run.POINTS)."""
    killed = subprocess.run(
        [sys.executable, "-m", "penguin_pipeline_tests.crashing_run", point],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=180,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-3000:]


def candidate_tables() -> list[tuple]:
    return lake_query(
        "SELECT table_name FROM information_schema.tables "
        "WHERE contains(table_name, '__candidate_')"
    )


@pytest.fixture
def lake_project(lake_env, tmp_path, monkeypatch):
    """This test's own instance and data folder on the lake, part-0.csv loaded by a first run:
    the environment for a pipeline process, the settings and the rows not landed yet."""
    home, data = instance_home(tmp_path), tmp_path / "data"
    env = project_env(home, data, PENGUIN_WAREHOUSE=f"ducklake:postgres:{lake_env}")
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    settings = load_settings()
    landing = Path(settings.landing_url)
    header, *rows = lter_lines()
    landing.mkdir(parents=True)
    write_lines(landing / "part-0.csv", [header] + rows[0::3])
    assert cli.main(["run"]) == 0
    return env, settings, header, rows


def test_a_run_killed_before_its_commit_leaves_the_last_snapshot(lake_project, monkeypatch, capsys):
    env, settings, header, rows = lake_project
    landing = Path(settings.landing_url)
    before, files_before = snapshot_now(), parquet_files(settings)

    for i in (1, 2):
        write_lines(landing / f"part-{i}.csv", [header] + rows[i::3])
    run_killed_at("inserted-file-1-uncommitted", env)
    assert snapshot_now() == before
    assert rows_per_file() == {"part-0.csv": 115}
    written_by_the_dead = parquet_files(settings) - files_before
    assert written_by_the_dead  # its rows reached Parquet, never the catalog

    assert cli.main(["run"]) == 0
    assert rows_per_file() == {"part-0.csv": 115, "part-1.csv": 115, "part-2.csv": 114}

    monkeypatch.setenv("PENGUIN_LAKE_KEEP", "0 seconds")
    capsys.readouterr()
    assert cli.main(["lake-maintain"]) == 0
    assert "orphaned files deleted" in capsys.readouterr().out
    assert not written_by_the_dead & parquet_files(settings)
    assert rows_per_file() == {"part-0.csv": 115, "part-1.csv": 115, "part-2.csv": 114}


def test_a_run_killed_before_swapping_the_clean_table_leaves_no_candidate(lake_project):
    env, settings, header, rows = lake_project
    write_lines(Path(settings.landing_url) / "part-1.csv", [header] + rows[1::3])
    run_killed_at("clean-candidate-built", env)
    assert candidate_tables() == []
    assert lake_query("SELECT count(*) FROM penguins") == [(115,)]  # the last good one

    assert cli.main(["run"]) == 0
    assert candidate_tables() == []
    assert lake_query("SELECT count(*) FROM penguins") == [(230,)]
