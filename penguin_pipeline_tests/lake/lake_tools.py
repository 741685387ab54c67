"""Reading a test's lake the way the pipeline reaches it (defs/resources.warehouse_resource)."""

from __future__ import annotations

from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.settings import load_settings


def lake_query(sql: str, params=None) -> list[tuple]:
    with warehouse_resource(load_settings()).get_connection() as con:
        return con.execute(sql, params or []).fetchall()


def rows_per_file() -> dict[str, int]:
    return dict(lake_query("SELECT source_file, count(*) FROM raw_penguins GROUP BY 1"))
