"""A run killed (SIGKILL) on the lake after it inserted a file's rows and before its commit: the
lake stays at its last snapshot, the next run loads every file once, and `lake-maintain` deletes
the Parquet files the killed run wrote."""

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
from .lake_tools import rows_per_file

pytestmark = pytest.mark.integration


def snapshot_now() -> int:
    with warehouse_resource(load_settings()).get_connection() as con:
        return current_snapshot(con)


def parquet_files(settings) -> set[Path]:
    return set(Path(settings.lake_data).rglob("*.parquet"))


def test_a_run_killed_before_its_commit_leaves_the_last_snapshot(
    lake_env, tmp_path, monkeypatch, capsys
):
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
    before, files_before = snapshot_now(), parquet_files(settings)

    for i in (1, 2):
        write_lines(landing / f"part-{i}.csv", [header] + rows[i::3])
    killed = subprocess.run(
        [
            sys.executable,
            "-m",
            "penguin_pipeline_tests.crashing_run",
            "inserted-file-1-uncommitted",
        ],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=180,
    )
    assert killed.returncode == -9, killed.stderr.decode()[-3000:]
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
