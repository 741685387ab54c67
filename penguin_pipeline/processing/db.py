"""Small SQL helpers over an open DuckDB connection, for the processing functions.

They stay in processing/ because they are plain SQL over a connection the caller gives (no
settings, no file, no Dagster): how a connection is made and limited is storage/warehouse.py.
`out_of_resources` is here too: the processing layer itself must tell "DuckDB hit a machine limit"
from "this file is unreadable" (a limit never quarantines a good file); storage/warehouse.py turns
the same errors into advice naming the settings to raise.

DuckDB 2 refuses new work on a connection until the last result is fully fetched, so single values
are read with fetchall(), never fetchone()."""

from __future__ import annotations

from contextlib import contextmanager

import duckdb


def first_row(con: duckdb.DuckDBPyConnection, sql: str, params=None) -> tuple | None:
    rows = con.execute(sql, params or []).fetchall()
    return rows[0] if rows else None


def scalar(con: duckdb.DuckDBPyConnection, sql: str, params=None):
    row = first_row(con, sql, params)
    return row[0] if row else None


def row_count(con: duckdb.DuckDBPyConnection, table: str) -> int:
    return scalar(con, f"SELECT count(*) FROM {table}")


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection):
    """All or nothing: on any error the tables stay as the last good run left them."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
    )


def swap_in(con: duckdb.DuckDBPyConnection, candidate: str, table: str) -> None:
    """Replace `table` by the fully built `candidate` at once, so readers never see half a table."""
    with transaction(con):
        con.execute(f"DROP TABLE IF EXISTS {table}")
        con.execute(f"ALTER TABLE {candidate} RENAME TO {table}")


# DuckDB's words when a limit is hit; the exception class varies (OutOfMemoryException,
# IOException, and TransactionException when the spill fails at COMMIT: "Failed to commit: failed
# to offload ...").
OUT_OF_RESOURCES = (
    "Out of Memory Error",
    "failed to offload data block",
    "could not allocate block",
    "max_temp_directory_size",
    "No space left on device",
    "Disk quota exceeded",
)


def out_of_resources(exc: BaseException) -> bool:
    """DuckDB ran out of memory, spill space or disk: the data is fine, the machine's limits not."""
    return isinstance(exc, duckdb.OutOfMemoryException) or (
        isinstance(exc, duckdb.Error) and any(text in str(exc) for text in OUT_OF_RESOURCES)
    )
