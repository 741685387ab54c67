"""How the pipeline reaches the DuckDB warehouse: the settings of every writing connection.

DuckDB allows one writing process per file; Dagster serialises the pipeline's DuckDB steps with the
`duckdb` pool (dagster.yaml). Readers outside the pipeline open read-only connections.
"""

from __future__ import annotations

from pathlib import Path


def connection_config(memory_limit: str, threads: int, temp_dir: Path) -> dict:
    """Settings for every pipeline connection: bounded memory, spilling to temp_dir beyond it."""
    return {"memory_limit": memory_limit, "threads": threads, "temp_directory": str(temp_dir)}
