"""The whole pipeline on a DuckLake (Postgres catalog, Parquet in a folder), chosen by
PENGUIN_WAREHOUSE alone: the same tables and values as on the DuckDB file, the model pin naming the
lake snapshot it was trained on, and that snapshot read back giving exactly its training rows."""

from __future__ import annotations

import pandas as pd
import psycopg2

from penguin_pipeline import cli, synth
from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.processing import modeling, monitoring, tables
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards
from penguin_pipeline.storage.warehouse import lock_key, table_at

from ..conftest import CLEAN_FILE
from .lake_tools import lake_query, rows_per_file


def latest_model(settings) -> dict:
    return boards.latest_model_facts(boards.board_from_url(settings.board_url))


def replay(model: dict, settings) -> modeling.TrainingSample:
    """The training sample as penguin_model drew it, from the lake as it was at the model's
    snapshot, without the held-out rows its metadata names."""
    holdout = monitoring.Holdout.from_metadata(model)
    with warehouse_resource(settings).get_connection() as con:
        return modeling.draw_training_sample(
            con,
            table_at(tables.CLEAN, model["warehouse_snapshot"]),
            settings.sample_rows,
            settings.sample_seed,
            exclude=holdout.sql(),
        )


def assert_same_as_palmerpenguins(settings) -> None:
    """The lake's clean table is the package's penguins.csv, as on the DuckDB file
    (test_cleaning.py); compared sorted, since Parquet files need not keep landing order."""
    with warehouse_resource(settings).get_connection() as con:
        ours = con.execute(f"SELECT * FROM {tables.CLEAN}").df()
    theirs = pd.read_csv(CLEAN_FILE)
    assert list(ours.columns) == list(theirs.columns)
    columns = list(theirs.columns)
    pd.testing.assert_frame_equal(
        ours.sort_values(columns).reset_index(drop=True),
        theirs.sort_values(columns).reset_index(drop=True),
        check_dtype=False,
    )


def test_the_pipeline_runs_on_the_lake_loads_nothing_twice_and_a_model_replays_its_snapshot(
    lake_env, seeded_landing, instance
):
    settings = load_settings()
    assert cli.run_pipeline(instance).success
    assert rows_per_file() == {"penguins-raw.csv": 344}
    assert lake_query("SELECT count(*) FROM penguins") == [(344,)]
    assert lake_query("SELECT sum(n_penguins) FROM penguin_summary") == [(344,)]
    assert lake_query("SELECT source_file, rows_loaded FROM landed_files") == [
        ("penguins-raw.csv", 344)
    ]
    assert_same_as_palmerpenguins(settings)
    assert not settings.duckdb_path.exists()  # nothing went to the DuckDB file
    assert list((settings.data_dir / "lake").rglob("*.parquet"))
    first = latest_model(settings)
    assert first["rows_used"] + first["rows"]["held_out"] == 333
    assert isinstance(first["warehouse_snapshot"], int)
    assert cli.run_pipeline(instance).success  # again, nothing new: nothing loaded, nothing pinned
    assert rows_per_file() == {"penguins-raw.csv": 344}
    assert latest_model(settings)["version"] == first["version"]

    synth.write_landing_files(
        synth.shipped_profile(), 3_000, seeded_landing, fmt="csv", seasons=1, first_year=2010
    )
    assert cli.run_pipeline(instance).success
    second = latest_model(settings)
    assert second["warehouse_snapshot"] > first["warehouse_snapshot"]
    assert lake_query("SELECT count(*) FROM penguins") == [(3_344,)]

    for model in (first, second):
        sample = replay(model, settings)
        assert len(sample.frame) == model["rows_used"]
        assert modeling.data_snapshot_id(sample.frame) == model["data_snapshot"]


def test_a_model_version_is_pinned_under_the_lakes_pin_lock(
    lake_env, seeded_landing, instance, monkeypatch
):
    # Runs on the lake fit at once (no pool serialises them): the re-read of the newest version and
    # the pin are one critical section, so two runs on the same data never both pin.
    write_pin = boards.write_vetiver_pin
    catalog = psycopg2.connect(lake_env)
    catalog.autocommit = True
    key = lock_key(f"pin/{boards.MODEL_PIN}")

    def lock_is_free() -> bool:
        with catalog.cursor() as cursor:
            cursor.execute("SELECT pg_try_advisory_lock(%s)", [key])
            [(taken,)] = cursor.fetchall()
            if taken:
                cursor.execute("SELECT pg_advisory_unlock(%s)", [key])
        return taken

    def pin_and_look(board, model):
        free_while_pinning.append(lock_is_free())
        return write_pin(board, model)

    free_while_pinning = []
    monkeypatch.setattr(boards, "write_vetiver_pin", pin_and_look)
    assert cli.run_pipeline(instance).success
    assert free_while_pinning == [False]
    assert lock_is_free()  # released after the step
    catalog.close()
