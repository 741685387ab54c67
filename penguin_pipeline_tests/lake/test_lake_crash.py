"""A run killed (SIGKILL) on the lake after it inserted a file's rows and before its commit: the
lake stays at its last snapshot, the next run loads every file once, and `lake-maintain` deletes
the Parquet files the killed run wrote. The same when the run is killed inside DuckLake's own
commit, with part of it already executed in Postgres. A run killed with the clean table's
candidate built and not yet swapped in leaves no candidate table behind."""

from __future__ import annotations

import subprocess
from contextlib import contextmanager
from pathlib import Path

import psycopg2
import pytest

from penguin_pipeline import cli
from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage.warehouse import current_snapshot

from ..conftest import lter_lines, write_lines
from ..processes import BIN, ROOT, instance_home, project_env, wait_for
from ..test_crash_recovery import killed_where_named, tables_state
from .lake_tools import lake_query, rows_per_file

pytestmark = pytest.mark.integration


def snapshot_now() -> int:
    with warehouse_resource(load_settings()).get_connection() as con:
        return current_snapshot(con)


def parquet_files(settings) -> set[Path]:
    return set(Path(settings.lake_data).rglob("*.parquet"))


def lake_state() -> dict:
    """The lake's tables as test_crash_recovery compares the file's: counts, content hashes,
    duplicates, ledger, candidate tables."""
    with warehouse_resource(load_settings()).get_connection() as con:
        return tables_state(con)


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


def test_a_run_killed_before_its_commit_leaves_the_last_snapshot(
    lake_project, monkeypatch, capsys, tmp_path
):
    env, settings, header, rows = lake_project
    landing = Path(settings.landing_url)
    before, files_before = snapshot_now(), parquet_files(settings)

    for i in (1, 2):
        write_lines(landing / f"part-{i}.csv", [header] + rows[i::3])
    killed_where_named("inserted-file-1-uncommitted", env, tmp_path / "kill.json")
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


def test_a_run_killed_before_swapping_the_clean_table_leaves_no_candidate(lake_project, tmp_path):
    env, settings, header, rows = lake_project
    write_lines(Path(settings.landing_url) / "part-1.csv", [header] + rows[1::3])
    killed_where_named("clean-candidate-built", env, tmp_path / "kill.json")
    assert lake_state()["candidate tables left"] == []
    assert lake_query("SELECT count(*) FROM penguins") == [(115,)]  # the last good one

    assert cli.main(["run"]) == 0
    assert lake_state()["candidate tables left"] == []
    assert lake_query("SELECT count(*) FROM penguins") == [(230,)]


# DuckLake commits a transaction as one multi-statement query on its Postgres connection, inside
# a Postgres transaction it opened earlier: the new snapshot's row first, then table statistics,
# data files and column statistics, and last the snapshot's list of changes; COMMIT follows
# separately. A lock that lets readers pass but stops writers of that last table stops the commit
# inside its query, every earlier statement of it executed.
WRITTEN_LAST_AT_COMMIT = "ducklake_snapshot_changes"


@contextmanager
def writes_blocked(catalog: str, table: str):
    """`table` of the lake's catalog locked against writes (reads pass) until the block ends;
    yields the locking session's Postgres pid."""
    locker = psycopg2.connect(catalog)
    try:
        with locker.cursor() as cursor:
            cursor.execute(f"LOCK TABLE {table} IN EXCLUSIVE MODE")
        yield locker.get_backend_pid()
    finally:
        locker.rollback()
        locker.close()


def catalog_query(catalog: str, sql: str, params=None) -> list[tuple]:
    with psycopg2.connect(catalog) as con, con.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def commit_blocked_by(catalog: str, locker: int) -> int | None:
    """The Postgres session of a DuckLake commit waiting for `locker`'s lock, or None."""
    rows = catalog_query(
        catalog,
        """SELECT pid FROM pg_stat_activity
           WHERE %s = ANY(pg_blocking_pids(pid))
             AND query LIKE 'INSERT INTO %%ducklake_snapshot VALUES%%'""",
        [locker],
    )
    return rows[0][0] if rows else None


def tables_written(catalog: str, pid: int) -> set[str]:
    """The catalog tables a Postgres session has written in its open transaction."""
    rows = catalog_query(
        catalog,
        """SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation
           WHERE l.pid = %s AND l.granted AND l.mode = 'RowExclusiveLock'""",
        [pid],
    )
    return {name for (name,) in rows}


def session_gone(catalog: str, pid: int) -> bool:
    return not catalog_query(catalog, "SELECT 1 FROM pg_stat_activity WHERE pid = %s", [pid])


def test_a_run_killed_inside_the_lake_commit_leaves_the_last_snapshot(
    lake_project, lake_env, tmp_path, monkeypatch, capsys
):
    env, settings, header, rows = lake_project
    for i in (1, 2):
        write_lines(Path(settings.landing_url) / f"part-{i}.csv", [header] + rows[i::3])
    before, state_before, files_before = snapshot_now(), lake_state(), parquet_files(settings)

    with writes_blocked(lake_env, WRITTEN_LAST_AT_COMMIT) as locker:
        with open(tmp_path / "killed-run.out", "wb") as out:
            run = subprocess.Popen(
                [str(BIN / "penguin-pipeline"), "run"], env=env, cwd=ROOT, stdout=out, stderr=out
            )
        try:
            commit = wait_for(
                lambda: commit_blocked_by(lake_env, locker),
                timeout=120,
                what="the run's lake commit waiting inside Postgres",
            )
            # Inside the commit: its snapshot and data file rows are written, not committed.
            assert {"ducklake_snapshot", "ducklake_data_file"} <= tables_written(lake_env, commit)
        finally:
            run.kill()
            run.wait(timeout=30)
    # Unblocked, the dead client's session finishes the query, finds no client and rolls back.
    wait_for(lambda: session_gone(lake_env, commit), timeout=30, what="the commit's session ended")

    assert snapshot_now() == before
    assert lake_state() == state_before
    written_by_the_dead = parquet_files(settings) - files_before
    assert written_by_the_dead  # the data files of the commit that never finished

    assert cli.main(["run"]) == 0
    assert rows_per_file() == {"part-0.csv": 115, "part-1.csv": 115, "part-2.csv": 114}
    state = lake_state()
    assert state["duplicate raw rows"] == 0
    assert state["files whose ledger disagrees with raw_penguins"] == 0

    monkeypatch.setenv("PENGUIN_LAKE_KEEP", "0 seconds")
    assert cli.main(["lake-maintain"]) == 0
    assert not written_by_the_dead & parquet_files(settings)
    assert rows_per_file() == {"part-0.csv": 115, "part-1.csv": 115, "part-2.csv": 114}
