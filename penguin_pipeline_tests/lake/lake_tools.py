"""Reading a test's lake the way the pipeline reaches it (defs/resources.warehouse_resource)."""

from __future__ import annotations

import hashlib

from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.settings import load_settings

TABLES = ("raw_penguins", "rejected_penguins", "landed_files", "penguins", "penguin_summary")


def lake_query(sql: str, params=None) -> list[tuple]:
    with warehouse_resource(load_settings()).get_connection() as con:
        return con.execute(sql, params or []).fetchall()


def rows_per_file() -> dict[str, int]:
    return dict(lake_query("SELECT source_file, count(*) FROM raw_penguins GROUP BY 1"))


def table_digest(table: str) -> str:
    """The table's rows, sorted, hashed: equal digests, equal contents."""
    rows = lake_query(f"SELECT * EXCLUDE (loaded_at) FROM {table} ORDER BY ALL")
    return hashlib.sha256(repr(rows).encode()).hexdigest()
