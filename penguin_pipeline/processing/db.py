"""Small SQL helpers over an open DuckDB connection, for the processing functions.

They stay in processing/ because they are plain SQL over a connection the caller gives (no
settings, no file, no Dagster): how a connection is made and limited is storage/warehouse.py.
`out_of_resources` is here too: the processing layer itself must tell "DuckDB hit a machine limit"
from "this file is unreadable" (a limit never quarantines a good file); storage/warehouse.py turns
the same errors into advice naming the settings to raise.

DuckDB 2 refuses new work on a connection until the last result is fully fetched, so single values
are read with fetchall(), never fetchone()."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from contextlib import contextmanager
from typing import TypeVar

import duckdb

T = TypeVar("T")
CONFLICT_ATTEMPTS = 8
log = logging.getLogger(__name__)


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


def is_commit_conflict(exc: BaseException) -> bool:
    """Another writer committed a conflicting change first (DuckLake: both deleted from or replaced
    the same table). Never raised by the single DuckDB file, whose writers are serialised."""
    return isinstance(exc, duckdb.TransactionException) and "conflict" in str(exc).lower()


def retry_conflicts(work: Callable[[], T], attempts: int = CONFLICT_ATTEMPTS) -> T:
    """Run `work` (which must be all-or-nothing) again while it loses a commit race, with a
    growing pause so that the writers spread out; any other error, or the last conflict, raises."""
    attempt = 1
    while True:
        try:
            return work()
        except duckdb.Error as exc:
            if attempt >= attempts or not is_commit_conflict(exc):
                raise
            log.warning("commit conflict, attempt %d of %d, retrying: %s", attempt, attempts, exc)
        time.sleep(0.05 * 2**attempt)
        attempt += 1


def table_exists(con: duckdb.DuckDBPyConnection, table: str) -> bool:
    return bool(
        scalar(con, "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [table])
    )


def swap_in(con: duckdb.DuckDBPyConnection, candidate: str, table: str) -> None:
    """Replace `table` by the fully built `candidate`, inside the caller's transaction: readers
    see the old table until it commits, never half a table."""
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
