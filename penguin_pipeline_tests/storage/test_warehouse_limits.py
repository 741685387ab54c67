"""The warehouse's temporary (spill) space running out: a clear failure naming the settings to
raise, the last good tables intact, and the landing file kept for the retry (never quarantined)."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pytest

from penguin_pipeline import cli, synth
from penguin_pipeline.storage import warehouse

from ..conftest import query

SETTINGS_TO_RAISE = (
    "PENGUIN_DUCKDB_MAX_TEMP_SIZE",
    "PENGUIN_DUCKDB_TEMP_DIR",
    "PENGUIN_DUCKDB_MEMORY_LIMIT",
)
TABLES = ("raw_penguins", "rejected_penguins", "landed_files", "penguins", "penguin_summary")
SPILLING = "SELECT count(*) FROM (SELECT DISTINCT 'penguin-' || range::VARCHAR FROM range(3000000))"


def connect(tmp_path: Path, max_temp_size: str | None) -> tuple[duckdb.DuckDBPyConnection, dict]:
    config = warehouse.connection_config("40MB", 1, tmp_path / "spill", max_temp_size)
    con = duckdb.connect(str(tmp_path / "w.duckdb"), config=config)
    warehouse.apply_limits(con, config)
    return con, config


def test_the_temp_size_cap_is_enforced_and_explained(tmp_path):
    con, config = connect(tmp_path, "1MB")
    with pytest.raises(duckdb.Error) as failure:
        con.execute(SPILLING).fetchall()
    problem = warehouse.resource_problem(failure.value, config)
    assert problem.startswith("The warehouse's temporary space is full")
    assert all(name in problem for name in SETTINGS_TO_RAISE) and str(tmp_path / "spill") in problem
    assert warehouse.resource_problem(duckdb.CatalogException("no such table"), config) is None


def test_a_session_enforces_the_cap_names_the_settings_and_always_closes(tmp_path):
    config = warehouse.connection_config("40MB", 1, tmp_path / "spill", "1MB")
    con = duckdb.connect(str(tmp_path / "w.duckdb"), config=config)  # the cap is not enforced yet
    with pytest.raises(warehouse.LimitReached) as failure:
        with warehouse.session(con, config):
            con.execute(SPILLING).fetchall()
    assert all(name in str(failure.value) for name in SETTINGS_TO_RAISE)
    assert isinstance(failure.value.__cause__, duckdb.Error)
    with pytest.raises(duckdb.ConnectionException):
        con.execute("SELECT 1")

    other = duckdb.connect(str(tmp_path / "w.duckdb"), config=config)
    with pytest.raises(duckdb.CatalogException):  # any other failure passes through unchanged
        with warehouse.session(other, config):
            other.execute("SELECT * FROM no_such_table")
    with pytest.raises(duckdb.ConnectionException):
        other.execute("SELECT 1")


def test_without_a_cap_the_same_query_spills_and_succeeds(tmp_path):
    con, _ = connect(tmp_path, None)
    assert con.execute(SPILLING).fetchall() == [(3_000_000,)]


def snapshot(settings) -> dict:
    return {table: query(settings, f"SELECT * FROM {table} ORDER BY ALL") for table in TABLES}


def test_a_load_that_fills_the_temp_space_fails_clearly_and_keeps_the_last_good_tables(
    settings, seeded_landing, instance, monkeypatch
):
    assert cli.run_pipeline(instance).success
    before = snapshot(settings)
    files = synth.write_landing_files(
        synth.shipped_profile(), 200_000, seeded_landing, fmt="csv", seasons=1, first_year=2010
    )
    # Small enough that a 100k-row file spills past the cap, large enough that DuckDB 1.5 loads it
    # once the cap is gone (at 64 MB it ran out of memory even with unbounded spill space).
    monkeypatch.setenv("PENGUIN_DUCKDB_MEMORY_LIMIT", "80MB")
    monkeypatch.setenv("PENGUIN_DUCKDB_THREADS", "1")
    monkeypatch.setenv("PENGUIN_DUCKDB_MAX_TEMP_SIZE", "1MB")

    result = cli.run_pipeline(instance)
    assert not result.success
    [failure] = cli.failure_messages(result)
    # DuckDB 1.5 reports a spill cap reached during a load as "Out of Memory" (2.0 named the cap);
    # either way the message names every setting that helps.
    assert failure.startswith("raw_penguins:")
    assert "temporary space is full" in failure or "ran out of memory" in failure
    assert all(name in failure for name in SETTINGS_TO_RAISE)
    assert "season-2010-" in failure  # which file, from the step's own message
    assert snapshot(settings) == before
    assert all(f.exists() for f in files) and not (settings.data_dir / "quarantine").exists()

    monkeypatch.delenv("PENGUIN_DUCKDB_MAX_TEMP_SIZE")  # what the message says to do
    assert cli.run_pipeline(instance).success
    assert query(settings, "SELECT count(*) FROM raw_penguins") == [(344 + 200_000,)]


def test_pipeline_connections_write_duckdbs_own_format_and_never_try_fsst(tmp_path):
    """Text that FSST would compress is written without FSST alone by a pipeline connection, into
    a file of the running DuckDB's own storage format (its faster dictionary writer), whichever
    format a plain connection of that DuckDB creates (1.5 creates the 1.0-compatible one)."""
    config = warehouse.connection_config("200MB", 1, tmp_path / "spill")
    con = duckdb.connect(str(tmp_path / "pipeline.duckdb"), config=config)
    warehouse.apply_limits(con, config)
    con.execute(
        "CREATE TABLE t AS SELECT 'penguin-' || (range * 7919 % 1000003)::VARCHAR || '-biscoe' "
        "AS s FROM range(300000)"
    )
    con.execute("CHECKPOINT")
    chosen = "SELECT list(DISTINCT compression) FROM pragma_storage_info('t') WHERE segment_type = "
    compressions = con.execute(chosen + "'VARCHAR'").fetchall()[0][0]
    con.close()
    storage = "SELECT tags['storage_version'] FROM duckdb_databases() WHERE NOT internal"
    with duckdb.connect(str(tmp_path / "pipeline.duckdb"), read_only=True) as reader:
        version = reader.execute(storage).fetchall()[0][0]
    assert "FSST" not in compressions and "DICT_FSST" in compressions, compressions
    major, minor = duckdb.__version__.split(".")[:2]
    assert version == f"v{major}.{minor}.0+", version
