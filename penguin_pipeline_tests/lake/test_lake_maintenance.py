"""Two writers on one lake, and the lake's retention: a commit that lost a race is done again (a
rebuild of the clean table too, leaving no candidate table); `penguin-pipeline lake-maintain`
expires old snapshots, merges small files and deletes the ones no snapshot needs, and the data
stays as it was."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from penguin_pipeline import cli
from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.processing import cleaning, tables
from penguin_pipeline.processing.db import retry_conflicts, transaction
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage.warehouse import current_snapshot

from ..test_cleaning import load_shipped


def test_a_commit_that_loses_a_race_is_done_again(lake_env):
    resource = warehouse_resource(load_settings())
    with resource.get_connection() as mine, resource.get_connection() as other:
        mine.execute("CREATE TABLE t AS SELECT range AS i FROM range(100)")
        attempts = []

        def delete_one():
            attempts.append(current_snapshot(mine))
            with transaction(mine):
                mine.execute("DELETE FROM t WHERE i = 1")
                if len(attempts) == 1:  # another writer deletes from t and commits first
                    other.execute("DELETE FROM t WHERE i = 2")

        retry_conflicts(delete_one)
        assert len(attempts) == 2
        assert mine.execute("SELECT count(*), sum(i) FROM t").fetchall() == [(98, 4950 - 3)]


def test_a_conflict_past_the_last_attempt_is_raised(lake_env):
    resource = warehouse_resource(load_settings())
    with resource.get_connection() as mine, resource.get_connection() as other:
        mine.execute("CREATE TABLE t AS SELECT range AS i FROM range(100)")

        def always_loses():
            with transaction(mine):
                mine.execute("DELETE FROM t WHERE i = 1")
                other.execute("DELETE FROM t WHERE i = (SELECT min(i) FROM t)")

        with pytest.raises(duckdb.TransactionException, match="onflict"):
            retry_conflicts(always_loses, attempts=2)


def test_a_clean_rebuild_that_loses_the_race_is_done_again_and_leaves_no_candidate(
    lake_env, monkeypatch
):
    resource = warehouse_resource(load_settings())
    with resource.get_connection() as mine, resource.get_connection() as other:
        tables.ensure_schema(mine, on_lake=True)
        load_shipped(mine)
        swaps = []
        swap_in = cleaning.swap_in

        def another_run_swaps_first(con, candidate, table):
            if con is mine:
                swaps.append(candidate)
                if len(swaps) == 1:  # another run rebuilds and commits while this one's is open
                    cleaning.rebuild_clean_table(other)
            swap_in(con, candidate, table)

        monkeypatch.setattr(cleaning, "swap_in", another_run_swaps_first)
        outcome = cleaning.rebuild_clean_table(mine)
        assert outcome.published and len(swaps) == 2  # the first commit conflicted
        assert mine.execute("SELECT count(*) FROM penguins").fetchall() == [(344,)]
        assert (
            mine.execute(
                "SELECT table_name FROM information_schema.tables "
                "WHERE contains(table_name, '__candidate_')"
            ).fetchall()
            == []
        )


def parquet_files(settings) -> list[Path]:
    return sorted(Path(settings.lake_data).rglob("*.parquet"))


def test_lake_maintain_expires_snapshots_merges_small_files_and_keeps_the_data(
    lake_env, monkeypatch, capsys
):
    settings = load_settings()
    with warehouse_resource(settings).get_connection() as con:
        con.execute("CREATE TABLE t (i BIGINT)")
        for start in range(0, 4000, 1000):  # four loads: four small files
            con.execute(f"INSERT INTO t SELECT range FROM range({start}, {start + 1000})")
        first_load = current_snapshot(con) - 3
    assert len(parquet_files(settings)) == 4

    monkeypatch.setenv("PENGUIN_LAKE_KEEP", "0 seconds")
    assert cli.main(["lake-maintain"]) == 0
    said = capsys.readouterr().out
    assert said.startswith("lake-maintain: snapshots expired ") and "files merged 4" in said

    assert len(parquet_files(settings)) == 1
    with warehouse_resource(settings).get_connection() as con:
        assert con.execute("SELECT count(*), sum(i) FROM t").fetchall() == [(4000, 7998000)]
        with pytest.raises(duckdb.Error, match="snapshot"):
            con.execute(f"SELECT count(*) FROM t AT (VERSION => {first_load})").fetchall()


def test_lake_maintain_on_the_duckdb_file_says_it_needs_a_lake(data_dir, monkeypatch, capsys):
    monkeypatch.delenv("PENGUIN_WAREHOUSE", raising=False)
    assert cli.main(["lake-maintain"]) == 1
    assert "lake-maintain needs a lake" in capsys.readouterr().err


def _largest_row_group(con, table: str) -> int:
    files = [
        f
        for (f,) in con.execute(
            f"SELECT data_file FROM ducklake_list_files('lake', '{table}')"
        ).fetchall()
    ]
    return con.execute(
        "SELECT max(row_group_num_rows) FROM parquet_metadata(?)", [files]
    ).fetchone()[0]


def test_the_lake_writes_row_groups_of_2_20_rows_but_the_raw_tables_stay_small(lake_env):
    """Big row groups for the tables built whole (the clean table's check holds less memory);
    DuckDB's 122,880 for the raw table written a file at a time. Set once: no commit after."""
    resource = warehouse_resource(load_settings())
    with resource.get_connection() as con:
        tables.ensure_schema(con, on_lake=True)
        settled = current_snapshot(con)
        tables.ensure_schema(con, on_lake=True)
        assert current_snapshot(con) == settled
        con.execute(
            f"INSERT INTO {tables.RAW} BY NAME SELECT 'f.csv' AS source_file, range AS source_line,"
            " now()::TIMESTAMP AS loaded_at FROM range(300000)"
        )
        con.execute("CREATE TABLE built_whole AS SELECT range AS i FROM range(1200000)")
        assert _largest_row_group(con, tables.RAW) == tables.RAW_ROW_GROUP_ROWS == 122_880
        assert _largest_row_group(con, "built_whole") == tables.LAKE_ROW_GROUP_ROWS == 2**20
