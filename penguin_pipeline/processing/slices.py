"""Be lazy: ask DuckDB for just the slice a caller needs (one species, one island), never the table.

Filters become parameters of a WHERE clause that DuckDB pushes into the scan (zone maps skip row
groups that cannot match), so a per-species view of 10^8 rows moves only that species' rows, and
only the columns asked for.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from . import tables
from .cleaning import CLEAN_COLUMNS
from .summary import GRAIN

SLICE_KEYS = GRAIN


def _where(filters: dict) -> tuple[str, list]:
    unknown = sorted(set(filters) - set(SLICE_KEYS))
    if unknown:
        raise ValueError(f"cannot slice by {', '.join(unknown)} (allowed: {', '.join(SLICE_KEYS)})")
    given = {k: v for k, v in filters.items() if v is not None}
    if not given:
        return "", []
    return " WHERE " + " AND ".join(f"{k} = ?" for k in given), list(given.values())


def summary_slice(con: duckdb.DuckDBPyConnection, **filters) -> pd.DataFrame:
    """Rows of the lookup table penguin_summary for e.g. species="Gentoo" (cheap at any N)."""
    where, params = _where(filters)
    return con.execute(f"SELECT * FROM {tables.SUMMARY}{where} ORDER BY ALL", params).df()


def penguins_slice(con: duckdb.DuckDBPyConnection, columns: list[str] | None = None, limit: int = 10_000,
                   **filters) -> pd.DataFrame:
    """At most `limit` clean rows of one slice, with only the columns asked for."""
    columns = columns or list(CLEAN_COLUMNS)
    bad = [c for c in columns if c not in CLEAN_COLUMNS]
    if bad:
        raise ValueError(f"unknown column(s) {', '.join(bad)} (allowed: {', '.join(CLEAN_COLUMNS)})")
    where, params = _where(filters)
    return con.execute(f"SELECT {', '.join(columns)} FROM {tables.CLEAN}{where} LIMIT {int(limit)}", params).df()


def slice_count(con: duckdb.DuckDBPyConnection, **filters) -> int:
    """How many penguins a slice holds, from the lookup table (counts never come from a sample)."""
    where, params = _where(filters)
    return int(con.execute(f"SELECT coalesce(sum(n_penguins), 0) FROM {tables.SUMMARY}{where}", params).fetchall()[0][0])
