"""The warehouse's tables: names and layout. Readers and writers take the names from here.

The schema is the processing layer's data model, created over a connection the caller gives
(`ensure_schema(con)`), so it lives beside the functions that fill the tables; reaching the
warehouse file (settings, limits, closing) is storage/warehouse.py."""

from __future__ import annotations

import duckdb

from .db import scalar
from .lter import LTER_COLUMNS, quote

RAW = "raw_penguins"
CLEAN = "penguins"
SUMMARY = "penguin_summary"
REJECTS = "rejected_penguins"
LEDGER = "landed_files"
METRICS = "model_metrics"  # processing/monitoring.py: the served model's metrics per season
DRIFT = "feature_drift"  # processing/monitoring.py: input drift per season and feature

# Near-unique text (one value per penguin): DuckDB's dictionary+FSST compression of these four is a
# large part of writing raw_penguins and saves little; stored plain they take more disk but load and
# scan faster (README, Big data). The others compress well and cheaply.
UNCOMPRESSED_RAW_COLUMNS = (
    "Sample Number",
    "Individual ID",
    "Delta 15 N (o/oo)",
    "Delta 13 C (o/oo)",
)


def _raw_column(column: str, on_lake: bool) -> str:
    # DuckLake refuses a per-column compression clause: its Parquet writer picks the encodings.
    plain = not on_lake and column in UNCOMPRESSED_RAW_COLUMNS
    return f"{quote(column)} VARCHAR{' USING COMPRESSION uncompressed' if plain else ''}"


# No PRIMARY KEY: DuckLake has none (a ledger line is replaced by delete + insert in the file's
# transaction, on either backend).
_SCHEMA = """
CREATE TABLE IF NOT EXISTS {RAW} (
    {raw_columns},
    source_file VARCHAR NOT NULL,
    source_line BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {REJECTS} (
    source_file VARCHAR NOT NULL,
    source_line BIGINT,
    raw_record VARCHAR,
    reason VARCHAR NOT NULL,
    rejected_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {LEDGER} (
    source_file VARCHAR NOT NULL,
    file_hash VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    duplicates_dropped BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
CREATE TABLE IF NOT EXISTS {METRICS} (
    model_version VARCHAR NOT NULL,
    season INTEGER NOT NULL,
    species VARCHAR NOT NULL,
    metric VARCHAR NOT NULL,
    estimate DOUBLE,
    n_rows BIGINT NOT NULL,
    scored_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
CREATE TABLE IF NOT EXISTS {DRIFT} (
    model_version VARCHAR NOT NULL,
    season INTEGER NOT NULL,
    feature VARCHAR NOT NULL,
    kind VARCHAR NOT NULL,
    statistic VARCHAR NOT NULL,
    value DOUBLE NOT NULL,
    status VARCHAR NOT NULL,
    shares VARCHAR NOT NULL,
    measured_at TIMESTAMP NOT NULL DEFAULT current_timestamp
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection, on_lake: bool = False) -> None:
    """Create the tables if missing; `on_lake`: the connection's database is a DuckLake (no
    per-column compression; its Parquet row groups set)."""
    raw_columns = ", ".join(_raw_column(c, on_lake) for c in LTER_COLUMNS)
    names = {"RAW": RAW, "REJECTS": REJECTS, "LEDGER": LEDGER, "METRICS": METRICS, "DRIFT": DRIFT}
    con.execute(_SCHEMA.format(**names, raw_columns=raw_columns))
    if on_lake:
        _lake_row_groups(con)


# DuckLake's Parquet row groups. The clean table is built, checked and swapped in one transaction:
# at 10^9 rows its allowed-values scan of the uncommitted table (8,100 row groups of DuckDB's
# 122,880 rows) left the process 0.57 GiB larger until the commit, and with row groups of 2^20 rows
# not at all (docs: scale.md). The raw table keeps 122,880: it is written a landing file (~10^6
# rows) at a time, and its row groups are what keeps both cores writing.
LAKE_ROW_GROUP_ROWS = 1 << 20
RAW_ROW_GROUP_ROWS = 122_880


def _lake_row_groups(con: duckdb.DuckDBPyConnection) -> None:
    """Set the lake's row group sizes where they differ (each setting is a catalog commit)."""
    lake = scalar(con, "SELECT current_database()")
    held = {
        (scope, entry): value
        for scope, entry, value in con.execute(
            f"SELECT scope, scope_entry, value FROM {lake}.options() "
            "WHERE option_name = 'parquet_row_group_size'"
        ).fetchall()
    }
    wanted = [(("TABLE", f"main.{RAW}"), RAW_ROW_GROUP_ROWS, f", table_name => '{RAW}'")]
    wanted.append((("GLOBAL", None), LAKE_ROW_GROUP_ROWS, ""))
    for key, rows, scope in wanted:  # the raw table's own first, before the lake's default moves
        if held.get(key) != str(rows):
            con.execute(f"CALL {lake}.set_option('parquet_row_group_size', {rows}{scope})")
