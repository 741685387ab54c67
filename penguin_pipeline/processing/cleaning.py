"""raw_penguins -> penguins: the palmerpenguins package's cleaning, as one SQL statement in
DuckDB."""

from __future__ import annotations

import math
import uuid
from dataclasses import dataclass

import duckdb

from . import tables
from .db import (
    first_row,
    retry_conflicts,
    row_count,
    swap_in,
    table_exists,
    transaction,
)
from .lter import (
    ISLANDS,
    MEASUREMENTS,
    SEXES,
    SPECIES,
    literal,
    raw_date,
    raw_number,
    raw_sex,
    raw_species,
    sql_list,
)

CLEAN_COLUMNS = (
    "species",
    "island",
    "bill_length_mm",
    "bill_depth_mm",
    "flipper_length_mm",
    "body_mass_g",
    "sex",
    "year",
)
_INTEGER_MEASURES = {"flipper_length_mm", "body_mass_g"}


def clean_select_sql(raw_table: str) -> str:
    """SELECT producing the clean columns from the raw LTER table, in its storage order.

    No ORDER BY: sorting 10^8 rows would spill for minutes. raw_penguins is appended file by file
    in line order, so for one file (the shipped data) this is landing order; across files it is
    the order the files were loaded.
    """
    measures = []
    for column, (name, _, _) in MEASUREMENTS.items():
        kind = "INTEGER" if name in _INTEGER_MEASURES else "DOUBLE"
        measures.append(f"CAST({raw_number(column)} AS {kind}) AS {name}")
    return f"""
        SELECT {raw_species()} AS species,
               trim("Island") AS island,
               {", ".join(measures)},
               {raw_sex()} AS sex,
               CAST(year({raw_date()}) AS INTEGER) AS year
        FROM {raw_table}
    """


def build_clean_table(con: duckdb.DuckDBPyConnection, raw_table: str, target: str) -> int:
    """Create `target` with the clean penguins; returns its row count."""
    con.execute(f"CREATE OR REPLACE TABLE {target} AS {clean_select_sql(raw_table)}")
    return row_count(con, target)


# --- checks on a clean table: each returns a list of human-readable failures (empty = pass) -------


def invalid_values(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """Categories outside the allowed values and measurements outside their plausible range, with
    examples."""
    conditions = [
        ("species", f"species NOT IN ({sql_list(SPECIES)}) OR species IS NULL", SPECIES),
        ("island", f"island NOT IN ({sql_list(ISLANDS)}) OR island IS NULL", ISLANDS),
        ("sex", f"sex IS NOT NULL AND sex NOT IN ({sql_list(SEXES)})", SEXES + ("NULL",)),
        ("year", "year IS NULL", ("a year",)),
    ]
    for name, low, high in MEASUREMENTS.values():
        conditions.append((name, f"{name} NOT BETWEEN {low} AND {high}", (f"{low:g}..{high:g}",)))
    # One scan finds the failing columns; only those are looked at again, to count and show.
    failing = _columns_with_invalid_values(con, table)
    failures = []
    for column, condition, allowed in conditions:
        if column not in failing:
            continue
        found, examples = first_row(
            con,
            f"SELECT count(*), list(DISTINCT coalesce(CAST({column} AS VARCHAR), 'NULL'))[:5] "
            f"FROM {table} WHERE {condition}",
        )
        failures.append(
            f"{found} row(s) with {column} in [{', '.join(examples)}] "
            f"(allowed: {', '.join(allowed)})"
        )
    return failures


def _columns_with_invalid_values(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    """The columns where invalid_values' conditions hold on some row, from one scan grouped by the
    categories: each group's values and measurement extremes say it (at 10^7 rows, on the freshly
    built table, 0.4 s against 1.2 s for testing every condition on every row)."""
    extremes = ", ".join(f"min({name}), max({name})" for name, _, _ in MEASUREMENTS.values())
    groups = con.execute(
        f"SELECT species, island, sex, count_if(year IS NULL), {extremes} FROM {table} GROUP BY ALL"
    ).fetchall()
    failing = set()
    for species, island, sex, without_year, *lows_and_highs in groups:
        invalid_here = {
            "species": species not in SPECIES,
            "island": island not in ISLANDS,
            "sex": sex is not None and sex not in SEXES,
            "year": without_year > 0,
        }
        failing |= {column for column, invalid in invalid_here.items() if invalid}
        for (name, low, high), least, most in zip(
            MEASUREMENTS.values(), lows_and_highs[::2], lows_and_highs[1::2], strict=True
        ):
            # written so that NaN (DuckDB sorts it above every number) fails as NOT BETWEEN does
            if least is not None and not (low <= least and most <= high):
                failing.add(name)
    return failing


# One individual: its study and its ID, hashed.
_KEY = 'hash("studyName", "Individual ID")'
# Grouping a slice's hashes takes ~70 bytes a row (0.65 GB at 10^7, on the lake and DuckDB 1.5),
# on top of what the uncommitted clean table holds in the same transaction: at 10^9, slices of
# 5x10^6 peaked 0.3 GiB lower than of 10^7, 5% slower (docs: scale.md).
ROWS_PER_SLICE = 5_000_000


def duplicate_individuals(
    con: duckdb.DuckDBPyConnection,
    raw_table: str,
    limit: int = 20,
    rows_per_pass: int = ROWS_PER_SLICE,
    rows: int | None = None,
) -> list[str]:
    """Individuals recorded more than once in the same study (the clean table has one row per raw
    row).

    Grouping 10^8 (study, individual) text pairs is costly; grouping their 64-bit hash is not. Only
    hashes seen twice (usually none) are looked up by name, so a hash collision is never reported.
    With every bird distinct there is one group per row: above `rows_per_pass` rows the hashes are
    grouped a slice at a time (see _slices), which bounds the aggregate's memory and spill (10^9
    rows in one pass spilled 26 GB to the temp directory). `rows`: the raw table's row count, when
    the caller has it.
    """
    rows = row_count(con, raw_table) if rows is None else rows
    for condition in _slices(con, raw_table, rows, rows_per_pass):
        repeated = (
            f"SELECT h FROM (SELECT {_KEY} AS h FROM {raw_table} WHERE {condition}) "
            "GROUP BY h HAVING count(*) > 1"
        )
        if con.execute(f"{repeated} LIMIT 1").fetchall():
            return _individual_examples(con, raw_table, repeated, limit)
    return []


def _slices(con, raw_table: str, rows: int, rows_per_pass: int) -> list[str]:
    """WHERE conditions splitting the raw rows into slices of about `rows_per_pass` rows each, so
    that a repeated individual always falls within one slice.

    An individual belongs to one study, so the slices are runs of whole studies (a range of
    names), and only a study above `rows_per_pass` on its own is cut by its hash. Rows are loaded
    file by file and a landing file holds one season's study, so each slice reads only its studies'
    files (DuckLake's file statistics, DuckDB's zone maps): the slices read the table about once,
    where slices of the hash range read all of it each. Rows of many studies mixed in each file
    are read once per slice.
    """
    if rows <= rows_per_pass:
        return ["true"]
    counts = con.execute(
        f'SELECT "studyName", count(*) FROM {raw_table} GROUP BY ALL ORDER BY 1 NULLS FIRST'
    ).fetchall()
    slices, run, run_rows = [], [], 0
    for study, count in counts:
        if study is None:
            slices.append('"studyName" IS NULL')
            continue
        if run and (count > rows_per_pass or run_rows + count > rows_per_pass):
            slices.append(_study_range(run))  # a range never spans a study cut on its own
            run, run_rows = [], 0
        if count > rows_per_pass:
            parts = math.ceil(count / rows_per_pass)
            same = f'"studyName" = {literal(study)}'
            slices += [f"{same} AND {_KEY} % {parts} = {part}" for part in range(parts)]
        else:
            run.append(study)
            run_rows += count
    if run:
        slices.append(_study_range(run))
    return slices


def _study_range(studies: list[str]) -> str:
    """SQL: the studies from the first to the last of `studies` (sorted), a range the files'
    min/max statistics can skip on."""
    return f'"studyName" BETWEEN {literal(studies[0])} AND {literal(studies[-1])}'


def _individual_examples(con, raw_table: str, repeated: str, limit: int) -> list[str]:
    """Examples from the first 1000 repeated hashes: with every individual repeated, looking up all
    of them by name (each with its list of lines, which DuckDB cannot spill) ran out of memory."""
    rows = con.execute(
        f"""SELECT "studyName", "Individual ID", count(*),
                   string_agg(source_file || ':' || source_line, ', ')
            FROM {raw_table}
            WHERE {_KEY} IN ({repeated} LIMIT 1000)
            GROUP BY ALL HAVING count(*) > 1 ORDER BY 1, 2 LIMIT {limit}"""
    ).fetchall()
    return [
        f"{study} {individual} appears {n} times ({where})" for study, individual, n, where in rows
    ]


def row_count_drop(previous: int | None, current: int, explanation: str | None) -> list[str]:
    """The clean table may only shrink when the run explains why (tag penguin/row_drop_reason)."""
    if previous is None or current >= previous or explanation:
        return []
    return [
        f"row count fell from {previous} to {current} "
        "with no penguin/row_drop_reason tag on the run"
    ]


CLEAN_CHECKS = (
    "penguins_values_allowed",
    "penguins_one_row_per_individual",
    "penguins_row_count_kept",
)


@dataclass
class CleanOutcome:
    row_count: int
    previous_row_count: int | None
    failures: dict[str, list[str]]

    @property
    def published(self) -> bool:
        return not any(self.failures.values())


def rebuild_clean_table(
    con: duckdb.DuckDBPyConnection, row_drop_reason: str | None = None
) -> CleanOutcome:
    """Build the clean table aside, check it, and only then swap it in: a failing check leaves the
    last good one.

    Building, checking and swapping are one transaction, so a run killed anywhere in between leaves
    no candidate table behind: uncommitted, it never existed (DuckLake too: its catalog commit is
    one Postgres transaction). The candidate's name is this call's own, so that runs rebuilding at
    once (a warehouse with concurrent writers) never replace each other's candidate; a rebuild that
    lost the commit race to another run's is done again from the raw rows as they are then.
    """
    return retry_conflicts(lambda: _rebuild_once(con, row_drop_reason))


def _rebuild_once(con: duckdb.DuckDBPyConnection, row_drop_reason: str | None) -> CleanOutcome:
    candidate = f"{tables.CLEAN}__candidate_{uuid.uuid4().hex[:12]}"
    with transaction(con):
        outcome = _build_and_check(con, candidate, row_drop_reason)
        if outcome.published:
            swap_in(con, candidate, tables.CLEAN)
        else:
            # Created and dropped in one transaction: the commit changes nothing.
            con.execute(f"DROP TABLE {candidate}")
    return outcome


def _build_and_check(
    con: duckdb.DuckDBPyConnection, candidate: str, row_drop_reason: str | None
) -> CleanOutcome:
    previous = row_count(con, tables.CLEAN) if table_exists(con, tables.CLEAN) else None
    current = build_clean_table(con, tables.RAW, candidate)
    failures = {
        "penguins_values_allowed": invalid_values(con, candidate),
        # The candidate has one row per raw row: its count is the raw table's.
        "penguins_one_row_per_individual": duplicate_individuals(con, tables.RAW, rows=current),
        "penguins_row_count_kept": row_count_drop(previous, current, row_drop_reason),
    }
    return CleanOutcome(current, previous, failures)
