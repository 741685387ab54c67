"""How the pipeline reaches the DuckDB warehouse: the settings of every writing connection, the
limits DuckDB only enforces once set on an open connection, closing it whatever happens, and what to
tell the user when one of those limits (memory, spill space, disk) is reached.

This is the one module that knows how a connection is made and what its limits are. The processing
layer only ever receives an open connection: `processing/tables.py` (table names and schema) and
`processing/db.py` (small SQL helpers, and which DuckDB errors mean "a machine limit, not bad
data") are plain SQL over that connection, so they stay beside the processing functions that use
them and are tested with an in-memory DuckDB.

DuckDB allows one writing process per file; Dagster serialises the pipeline's DuckDB steps with the
`duckdb` pool (dagster.yaml). Readers outside the pipeline open read-only connections.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb

from ..processing.db import out_of_resources

# DuckDB 2.0 accepts max_temp_directory_size in connect(config=...) and reports it back, but
# does not enforce it (measured: a 1 MB cap, 190 MB spilled); SET on the open connection, it is.
SET_AFTER_CONNECT = ("max_temp_directory_size",)


class WarehouseUnusable(RuntimeError):
    """The warehouse path can never be opened (a folder, say); the message says what to set."""


def check_database_path(database: str) -> None:
    """Fail at once on a path that no retry can open: dagster-duckdb retries every IOException
    for about 100 s, which is meant for a file another process holds."""
    path = Path(database)
    if path.is_dir():
        raise WarehouseUnusable(
            f"The warehouse PENGUIN_DUCKDB={path} is a folder; it must name a DuckDB file "
            f"(for example {path / 'penguins.duckdb'})."
        )


class LimitReached(RuntimeError):
    """DuckDB ran out of memory, spill space or disk; the message names the settings to raise."""


def connection_config(
    memory_limit: str, threads: int, temp_dir: Path, max_temp_size: str | None = None
) -> dict:
    """Settings for every pipeline connection: bounded memory, spilling to temp_dir (capped)."""
    config = {"memory_limit": memory_limit, "threads": threads, "temp_directory": str(temp_dir)}
    if max_temp_size:
        config["max_temp_directory_size"] = max_temp_size
    return config


def apply_limits(con: duckdb.DuckDBPyConnection, config: dict) -> None:
    for name in SET_AFTER_CONNECT:
        if config.get(name):
            value = str(config[name]).replace(
                "'", "''"
            )  # SET takes no parameters: a quoted literal
            con.execute(f"SET {name} = '{value}'")


@contextmanager
def session(con: duckdb.DuckDBPyConnection, config: dict) -> Iterator[duckdb.DuckDBPyConnection]:
    """Use an open connection with every limit enforced; closed at the end whatever happens.

    A limit reached inside the block becomes LimitReached (its cause: the block's own error).
    """
    try:
        apply_limits(con, config)
        yield con
    except Exception as exc:
        problem = resource_problem(exc, config)
        if problem is None:
            raise
        raise LimitReached(problem) from exc
    finally:
        con.close()


def resource_problem(exc: BaseException, config: dict) -> str | None:
    """What to say when DuckDB hit a limit, and which settings to raise; None for other failures.

    Looks through the exception's causes: a step may wrap DuckDB's error in its own
    (FileLoadFailed).
    """
    for error in _causes(exc):
        if out_of_resources(error):
            return f"{_advice(error, config)} (DuckDB: {_first_line(error)})"
    return None


def _advice(error: duckdb.Error, config: dict) -> str:
    text = str(error)
    temp_dir = config.get("temp_directory") or "none"
    memory = config.get("memory_limit")
    cap = config.get("max_temp_directory_size", "90% of the free disk")
    if "max_temp_directory_size" in text or "failed to offload" in text:
        return (
            "The warehouse's temporary space is full: DuckDB's spill folder "
            f"{temp_dir} reached its limit PENGUIN_DUCKDB_MAX_TEMP_SIZE={cap}. "
            "Raise PENGUIN_DUCKDB_MAX_TEMP_SIZE, point PENGUIN_DUCKDB_TEMP_DIR at a disk "
            f"with more room, or raise PENGUIN_DUCKDB_MEMORY_LIMIT (now {memory}) so that "
            "less spills."
        )
    if "No space left" in text or "quota" in text:
        return (
            "The disk under the warehouse is full. Free space there, or move "
            f"PENGUIN_DUCKDB_TEMP_DIR (now {temp_dir}) or PENGUIN_DUCKDB to a disk with more room."
        )
    return (
        f"The warehouse ran out of memory: PENGUIN_DUCKDB_MEMORY_LIMIT={memory}, spill folder "
        f"PENGUIN_DUCKDB_TEMP_DIR={temp_dir}. Raise PENGUIN_DUCKDB_MEMORY_LIMIT, or give DuckDB "
        "a spill folder with room (PENGUIN_DUCKDB_TEMP_DIR, PENGUIN_DUCKDB_MAX_TEMP_SIZE)."
    )


def _causes(exc: BaseException):
    seen, todo = set(), [exc]
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo += [
            c
            for c in (error.__cause__, error.__context__, getattr(error, "cause", None))
            if isinstance(c, BaseException)
        ]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
