"""raw_penguins -> penguins and the clean table's checks, as plain functions."""

from __future__ import annotations

import duckdb
import pandas as pd
import pytest

from penguin_pipeline.processing import cleaning, tables
from penguin_pipeline.processing.db import transaction
from penguin_pipeline.processing.ingest import ingest_file
from penguin_pipeline.storage.locations import file_hash

from .conftest import CLEAN_FILE, LTER_FILE


def load_shipped(con):
    with transaction(con):
        ingest_file(con, LTER_FILE, "penguins-raw.csv", file_hash(LTER_FILE))


def clean_shipped(con):
    """The shipped LTER file loaded and cleaned into a new, empty warehouse connection."""
    tables.ensure_schema(con)
    load_shipped(con)
    cleaning.rebuild_clean_table(con)
    return con


def test_clean_table_equals_the_packages_penguins_csv_row_for_row(con):
    load_shipped(con)
    outcome = cleaning.rebuild_clean_table(con)
    assert outcome.published and outcome.row_count == 344
    ours = con.execute(f"SELECT * FROM {tables.CLEAN}").df()
    theirs = pd.read_csv(CLEAN_FILE)
    assert list(ours.columns) == list(theirs.columns)
    pd.testing.assert_frame_equal(ours, theirs, check_dtype=False)


def test_checks_pass_on_shipped_data(con):
    load_shipped(con)
    assert cleaning.rebuild_clean_table(con).failures == {
        name: [] for name in cleaning.CLEAN_CHECKS
    }


def test_invalid_values_name_the_column_and_the_values(con):
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES "
        "('Emperor', 'Dream', 40.0, 18.0, 190, 3800, 'male', 2008),"
        "('Adelie', 'Dream', 400.0, 18.0, 190, 3800, 'x', 2008),"
        "('Adelie', NULL, 40.0, 'nan'::DOUBLE, 20, NULL, NULL, NULL),"
        "('Gentoo', 'Biscoe', 40.0, 18.0, 190, 3800, 'female', 2008)) "
        "v(species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, "
        "sex, year)"
    )
    failures = cleaning.invalid_values(con, "t")
    assert any("species in [Emperor]" in f and "Adelie, Chinstrap, Gentoo" in f for f in failures)
    assert "1 row(s) with bill_length_mm in [400.0] (allowed: 20..80)" in failures
    assert any("sex in [x]" in f for f in failures)
    assert any(f.startswith("1 row(s) with island in [NULL]") for f in failures)
    assert any(f.startswith("1 row(s) with bill_depth_mm in [nan]") for f in failures)
    assert any(f.startswith("1 row(s) with flipper_length_mm in [20]") for f in failures)
    assert any(f.startswith("1 row(s) with year in [NULL]") for f in failures)
    assert len(failures) == 7  # a missing body mass or sex is allowed: nothing about them


def test_values_within_every_rule_are_no_failure(con):
    con.execute(
        "CREATE TABLE t AS SELECT * FROM (VALUES "
        "('Adelie', 'Dream', 40.0, 18.0, 190, NULL, NULL, 2008),"
        "('Gentoo', 'Biscoe', 40.0, 18.0, 190, 3800, 'female', 2009)) "
        "v(species, island, bill_length_mm, bill_depth_mm, flipper_length_mm, body_mass_g, "
        "sex, year)"
    )
    assert cleaning.invalid_values(con, "t") == []


def test_duplicate_individuals_point_at_file_and_line(con):
    load_shipped(con)
    con.execute(
        f"INSERT INTO {tables.RAW} SELECT * REPLACE ('other.csv' AS source_file) "
        f"FROM {tables.RAW} LIMIT 1"
    )
    [failure] = cleaning.duplicate_individuals(con, tables.RAW)
    assert "PAL0708 N1A1 appears 2 times" in failure and "other.csv:2" in failure


def test_every_individual_repeated_is_reported_within_the_memory_limit():
    """Two million birds each recorded twice, under a 100 MB limit: 20 examples, not an
    out-of-memory error (looking every pair up with its lines did not fit; 10^9 synthetic rows
    whose study names repeated after a century of seasons ran into it)."""
    with duckdb.connect(config={"memory_limit": "100MB", "threads": 2}) as con:
        con.execute(
            """CREATE TABLE raw AS SELECT 'PAL0708' AS "studyName",
                   'N' || (i // 2) || 'A1' AS "Individual ID",
                   'season-' || (i % 2) || '.parquet' AS source_file, i AS source_line
               FROM range(4000000) t(i)"""
        )
        failures = cleaning.duplicate_individuals(con, "raw")
    assert len(failures) == 20
    assert all(" appears 2 times (season-0.parquet:" in f for f in failures), failures[:2]


def test_individuals_are_checked_in_slices_of_the_hash_range_above_the_pass_size():
    """10,000 birds checked 1,000 rows' worth at a time (10 passes): a bird recorded twice is found
    whichever slice it falls in, and distinct birds pass."""
    with duckdb.connect() as con:
        con.execute(
            """CREATE TABLE raw AS SELECT 'PAL0910' AS "studyName",
                   'N' || i || 'A1' AS "Individual ID", 'season-2009.parquet' AS source_file,
                   i + 1 AS source_line FROM range(10000) t(i)"""
        )
        assert cleaning.duplicate_individuals(con, "raw", rows_per_pass=1000) == []
        for bird in (0, 4321, 9999):
            con.execute(
                'INSERT INTO raw SELECT "studyName", "Individual ID", \'late.parquet\', 1 '
                "FROM raw WHERE source_line = ?",
                [bird + 1],
            )
            [failure] = cleaning.duplicate_individuals(con, "raw", rows_per_pass=1000)
            assert failure.startswith(f"PAL0910 N{bird}A1 appears 2 times ("), failure
            assert {"late.parquet:1", f"season-2009.parquet:{bird + 1}"} == set(
                failure[failure.index("(") + 1 : -1].split(", ")
            )
            con.execute("DELETE FROM raw WHERE source_file = 'late.parquet'")


def test_above_the_pass_size_individuals_are_checked_a_run_of_whole_studies_at_a_time():
    """Studies of 400, 300, 1,500 (cut by its hash), 200 and 900 rows checked 1,000 rows' worth at a
    time: each slice is whole studies but the big one, whose rows are its own slices; a bird
    recorded twice is found in whichever slice it falls, and distinct birds pass."""
    studies = {"PAL0708": 400, "PAL0809": 300, "PAL0910": 1500, "PAL1011": 200, "PAL1112": 900}
    with duckdb.connect() as con:
        con.execute(
            'CREATE TABLE raw ("studyName" VARCHAR, "Individual ID" VARCHAR, '
            "source_file VARCHAR, source_line BIGINT)"
        )
        for study, birds in studies.items():
            con.execute(
                "INSERT INTO raw SELECT ?, 'N' || i || 'A1', ? || '.parquet', i + 2 "
                "FROM range(?) t(i)",
                [study, study, birds],
            )
        slices = cleaning._slices(con, "raw", 3300, rows_per_pass=1000)
        assert slices[:2] == [
            """"studyName" BETWEEN 'PAL0708' AND 'PAL0809'""",
            """"studyName" = 'PAL0910' AND hash("studyName", "Individual ID") % 2 = 0""",
        ]
        assert slices[3:] == [
            """"studyName" BETWEEN 'PAL1011' AND 'PAL1011'""",
            """"studyName" BETWEEN 'PAL1112' AND 'PAL1112'""",
        ]
        sizes = [con.execute(f"SELECT count(*) FROM raw WHERE {s}").fetchone()[0] for s in slices]
        assert sum(sizes) == 3300 and max(sizes) <= 1000, sizes
        assert cleaning.duplicate_individuals(con, "raw", rows_per_pass=1000) == []
        for study, bird in (("PAL0809", 299), ("PAL0910", 1234), ("PAL1112", 0)):
            con.execute("INSERT INTO raw VALUES (?, ?, 'late.parquet', 2)", [study, f"N{bird}A1"])
            [failure] = cleaning.duplicate_individuals(con, "raw", rows_per_pass=1000)
            assert failure.startswith(f"{study} N{bird}A1 appears 2 times ("), failure
            con.execute("DELETE FROM raw WHERE source_file = 'late.parquet'")
        # The same ID in two studies is two birds.
        con.execute("INSERT INTO raw VALUES ('PAL1213', 'N0A1', 'late.parquet', 2)")
        assert cleaning.duplicate_individuals(con, "raw", rows_per_pass=1000) == []


def test_distinct_individuals_are_checked_within_a_memory_limit_without_spilling(tmp_path):
    """Four million distinct birds, 40 MB and no temp directory: grouping every hash at once does
    not fit (at 10^9 rows it spilled 26 GB); in slices of 500,000 rows' worth it passes."""
    database = str(tmp_path / "birds.duckdb")
    with duckdb.connect(database) as con:
        con.execute(
            """CREATE TABLE raw AS SELECT 'PAL0708' AS "studyName",
                   'N' || i || 'A1' AS "Individual ID", 'season-0.parquet' AS source_file,
                   i AS source_line FROM range(4000000) t(i)"""
        )
    with duckdb.connect(database, config={"memory_limit": "40MB", "threads": 2}) as con:
        con.execute("SET temp_directory = ''")
        with pytest.raises(duckdb.OutOfMemoryException):
            cleaning.duplicate_individuals(con, "raw", rows_per_pass=10**8)
        assert cleaning.duplicate_individuals(con, "raw", rows_per_pass=500_000) == []


def test_row_count_may_only_drop_with_a_reason():
    assert cleaning.row_count_drop(None, 10, None) == []
    assert cleaning.row_count_drop(10, 12, None) == []
    assert cleaning.row_count_drop(10, 5, None) == [
        "row count fell from 10 to 5 with no penguin/row_drop_reason tag on the run"
    ]
    assert cleaning.row_count_drop(10, 5, "retracted season 2009") == []


def test_failed_checks_keep_the_last_good_table(con):
    load_shipped(con)
    cleaning.rebuild_clean_table(con)
    con.execute(f"UPDATE {tables.RAW} SET \"Island\" = 'Atlantis' WHERE source_line = 2")
    outcome = cleaning.rebuild_clean_table(con)
    assert not outcome.published
    assert outcome.failures["penguins_values_allowed"]
    assert con.execute(
        f"SELECT count(*) FROM {tables.CLEAN} WHERE island = 'Atlantis'"
    ).fetchall() == [(0,)]
    assert con.execute(f"SELECT count(*) FROM {tables.CLEAN}").fetchall() == [(344,)]
