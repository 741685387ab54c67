"""The warehouse's tables: names and layout. Readers and writers take the names from here.

The schema is the processing layer's data model, created over a connection the caller gives
(`ensure_schema(con)`), so it lives beside the functions that fill the tables; reaching the
warehouse file (settings, limits, closing) is storage/warehouse.py."""

from __future__ import annotations

import duckdb

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


def _raw_column(column: str) -> str:
    plain = " USING COMPRESSION uncompressed" if column in UNCOMPRESSED_RAW_COLUMNS else ""
    return f"{quote(column)} VARCHAR{plain}"


_SCHEMA = f"""
CREATE TABLE IF NOT EXISTS {RAW} (
    {", ".join(_raw_column(c) for c in LTER_COLUMNS)},
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
    source_file VARCHAR PRIMARY KEY,
    file_hash VARCHAR NOT NULL,
    rows_read BIGINT NOT NULL,
    rows_loaded BIGINT NOT NULL,
    rows_rejected BIGINT NOT NULL,
    duplicates_dropped BIGINT NOT NULL,
    loaded_at TIMESTAMP NOT NULL
);
"""


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(_SCHEMA)
