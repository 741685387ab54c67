"""How the DuckDB warehouse is reached: the writer's settings and read-only connections for readers.

DuckDB allows one writing process per file; Dagster serialises the pipeline's DuckDB steps with the
`duckdb` pool (dagster.yaml). Readers outside the pipeline open read-only connections.
"""

from __future__ import annotations

from pathlib import Path

import duckdb


def connection_config(memory_limit: str, threads: int, temp_dir: Path) -> dict:
    """Settings for every pipeline connection: bounded memory, spilling to temp_dir beyond it."""
    return {"memory_limit": memory_limit, "threads": threads, "temp_directory": str(temp_dir)}


def connect_read_only(path: Path) -> duckdb.DuckDBPyConnection:
    if not Path(path).exists():
        raise FileNotFoundError(f"DuckDB warehouse {path} does not exist yet: run `make run` first")
    return duckdb.connect(str(path), read_only=True)
