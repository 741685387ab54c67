"""The big-data patterns at small N: stratified sample, counts from all rows, a backfill over
several partitions in one run, and DuckDB's memory limit with spilling."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from penguin_pipeline import cli, synth
from penguin_pipeline.processing import cleaning, modeling, summary, tables
from penguin_pipeline.processing.db import transaction
from penguin_pipeline.processing.features import FEATURES, TARGET
from penguin_pipeline.processing.ingest import ingest_file
from penguin_pipeline.storage import boards
from penguin_pipeline.storage.locations import file_hash
from penguin_pipeline.storage.warehouse import connection_config

from ..conftest import query


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory):
    """20k synthetic rows in 6 landing files, ingested and cleaned, with the lookup table."""
    folder = tmp_path_factory.mktemp("landing")
    files = synth.write_landing_files(synth.shipped_profile(), 20_000, folder, seasons=2, seed=3)
    con = duckdb.connect()
    tables.ensure_schema(con)
    for path in files:
        with transaction(con):
            ingest_file(con, path, path.name, file_hash(path))
    assert cleaning.rebuild_clean_table(con).published
    summary.build_summary_table(con, tables.CLEAN, tables.SUMMARY)
    yield con
    con.close()


def test_sample_is_stratified_proportional_and_reproducible(warehouse):
    sample = modeling.draw_training_sample(warehouse, tables.CLEAN, 2_000, seed=5)
    assert sample.sampled and len(sample.frame) == 2_000 == sum(sample.strata.values())
    assert len(sample.strata) == 10  # every species x sex x island that exists
    pool = dict(
        warehouse.execute(
            "SELECT concat_ws('/', species, sex, island), count(*) FROM penguins "
            "WHERE sex IS NOT NULL AND bill_length_mm IS NOT NULL AND body_mass_g IS NOT NULL "
            "GROUP BY 1"
        ).fetchall()
    )
    for stratum, drawn in sample.strata.items():
        assert drawn == pytest.approx(2_000 * pool[stratum] / sample.complete_rows, abs=3)
    drawn_by_stratum = sample.frame.groupby(["species", "sex"]).size().to_dict()
    quotas = {}
    for stratum, n in sample.strata.items():
        species, sex, _ = stratum.split("/")
        quotas[(species, sex)] = quotas.get((species, sex), 0) + n
    assert drawn_by_stratum == quotas
    again = modeling.draw_training_sample(warehouse, tables.CLEAN, 2_000, seed=5)
    other = modeling.draw_training_sample(warehouse, tables.CLEAN, 2_000, seed=6)
    assert modeling.data_snapshot_id(again.frame) == modeling.data_snapshot_id(sample.frame)
    assert modeling.data_snapshot_id(other.frame) != modeling.data_snapshot_id(sample.frame)


def test_small_tables_train_on_every_row(warehouse):
    sample = modeling.draw_training_sample(warehouse, tables.CLEAN, 10**9)
    assert not sample.sampled and len(sample.frame) == sample.complete_rows


def test_sample_model_is_compared_with_the_all_rows_fit(warehouse):
    sample = modeling.draw_training_sample(warehouse, tables.CLEAN, 3_000, seed=1)
    fitted = modeling.fit_model(sample.frame)
    comparison = modeling.compare_sample_with_all_rows(sample, fitted)
    assert comparison["sampled"] and comparison["holdout_rows"] > 500
    every = modeling.load_training_frame(warehouse, tables.CLEAN)
    # The SQL normal equations give sklearn's all-rows coefficients (on the same rows: no holdout).
    every_fitted = modeling.fit_model(every)
    sql = modeling.fit_all_rows_sql(warehouse, tables.CLEAN, 1, 0.0, every_fitted.spec)
    assert sql == pytest.approx(every_fitted.coefficients, rel=1e-6)
    assert 0.97 < comparison["rmse_holdout_ratio"] < 1.03
    assert modeling.sample_worse_than_all_rows(comparison) == []
    assert modeling.sample_worse_than_all_rows({"rmse_holdout_ratio": 1.2})


def test_the_held_out_rmses_from_the_scans_sums_equal_scoring_the_held_out_rows(warehouse):
    """One scan's sums give the all-rows fit and both held-out RMSEs: the same as fitting the
    training pool and scoring the held-out rows one by one with scikit-learn."""
    sample = modeling.draw_training_sample(warehouse, tables.CLEAN, 3_000, seed=1)
    fitted = modeling.fit_model(sample.frame)
    comparison = modeling.compare_sample_with_all_rows(sample, fitted)
    rows = warehouse.execute(f"SELECT * FROM {modeling._complete(tables.CLEAN, 1)}").df()
    held, pool = rows[rows.u < sample.holdout_share], rows[rows.u >= sample.holdout_share]
    all_rows_model = modeling.fit_model(pool).pipeline

    def rmse(pipeline) -> float:
        errors = held[TARGET] - pipeline.predict(held[FEATURES])
        return float(np.sqrt((errors**2).mean()))

    assert comparison["holdout_rows"] == len(held) > 500
    assert comparison["rmse_holdout_sample_model"] == pytest.approx(rmse(fitted.pipeline), abs=1e-4)
    assert comparison["rmse_holdout_all_rows_model"] == pytest.approx(
        rmse(all_rows_model), abs=1e-4
    )


def test_counts_come_from_all_rows_not_the_sample(warehouse):
    clean_rows = warehouse.execute("SELECT count(*) FROM penguins").fetchall()[0][0]
    ledger = warehouse.execute(f"SELECT sum(rows_loaded) FROM {tables.LEDGER}").fetchall()[0][0]
    assert clean_rows == ledger == 20_000  # generated faults are missing values, which are kept


def test_parquet_rows_are_numbered_from_one(warehouse):
    lines = warehouse.execute(
        f"SELECT min(source_line), max(source_line), count(*) FROM {tables.RAW} "
        "WHERE source_file = 'season-2007-Torgersen.parquet'"
    ).fetchall()[0]
    assert lines[0] == 1 and lines[1] == lines[2]


def test_memory_limit_is_honoured_and_spills_to_the_temp_directory(tmp_path):
    big = "SELECT count(*) FROM (SELECT DISTINCT 'penguin-' || range::VARCHAR FROM range(3000000))"
    spilling = duckdb.connect(config=connection_config("40MB", 1, tmp_path / "spill"))
    assert spilling.execute("SELECT current_setting('memory_limit')").fetchall()[0][0] in (
        "38.1 MiB",
        "40.0 MB",
    )
    assert spilling.execute(big).fetchall() == [(3_000_000,)]
    capped = duckdb.connect(
        config={**connection_config("40MB", 1, tmp_path / "none"), "temp_directory": ""}
    )
    with pytest.raises(duckdb.OutOfMemoryException):
        capped.execute(big).fetchall()


def test_backfill_over_several_landing_files_is_one_run(
    settings, landing_dir, instance, monkeypatch
):
    monkeypatch.setenv("PENGUIN_SAMPLE_ROWS", "1500")
    synth.write_landing_files(synth.shipped_profile(), 6_000, landing_dir, seasons=2, seed=11)
    result = cli.run_pipeline(instance)
    assert result.success
    assert len(instance.get_runs()) == 1
    partitions = {
        e.partition
        for e in result.get_asset_materialization_events()
        if e.asset_key.to_user_string() == "raw_penguins"
    }
    assert len(partitions) == 6
    assert query(settings, f"SELECT count(*), count(DISTINCT source_file) FROM {tables.RAW}") == [
        (6_000, 6)
    ]
    assert query(settings, f"SELECT sum(n_penguins) FROM {tables.SUMMARY}") == [(6_000,)]
    facts = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    assert facts["rows_used"] == 1_500 and facts["sample_vs_all_rows"]["sampled"]
    checks = {
        e.event_specific_data.asset_check_key.name: e.event_specific_data.passed
        for e in result.all_events
        if e.event_type_value == "ASSET_CHECK_EVALUATION"
    }
    assert checks["sample_matches_all_rows"] and checks["rows_accounted"]
