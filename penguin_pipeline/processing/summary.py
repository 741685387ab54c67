"""penguin_summary: the pre-calculated lookup table the report reads instead of the row-level
data."""

from __future__ import annotations

import duckdb
import pandas as pd

from .db import retry_conflicts, row_count
from .lter import MEASUREMENTS

MEASURES = tuple(name for name, _, _ in MEASUREMENTS.values())
GRAIN = ("species", "island", "sex", "year")


def summary_select_sql(clean_table: str) -> str:
    """species x island x sex x year: the penguin count, and per measure its count, mean and
    standard deviation."""
    stats = ", ".join(
        f"count({m}) AS n_{m}, avg({m}) AS mean_{m}, stddev_samp({m}) AS sd_{m}" for m in MEASURES
    )
    return f"""
        SELECT {", ".join(GRAIN)}, count(*) AS n_penguins, {stats}
        FROM {clean_table}
        GROUP BY ALL
        ORDER BY {", ".join(GRAIN)} NULLS LAST
    """


def build_summary_table(con: duckdb.DuckDBPyConnection, clean_table: str, target: str) -> int:
    """Replace `target` with the summary of `clean_table` (again, if another run replaced it at the
    same moment: the later one wins, both built from a published clean table)."""
    sql = f"CREATE OR REPLACE TABLE {target} AS {summary_select_sql(clean_table)}"
    retry_conflicts(lambda: con.execute(sql))
    return row_count(con, target)


def rollup(summary: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    """Re-aggregate the lookup table to a coarser grain: counts add up, means are count-weighted."""
    frame = summary.copy()
    for m in MEASURES:
        frame[f"sum_{m}"] = frame[f"mean_{m}"].fillna(0) * frame[f"n_{m}"]
    sums = ["n_penguins"] + [f"n_{m}" for m in MEASURES] + [f"sum_{m}" for m in MEASURES]
    grouped = frame.groupby(by, dropna=False, sort=True)[sums].sum().reset_index()
    for m in MEASURES:
        grouped[f"mean_{m}"] = grouped[f"sum_{m}"] / grouped[f"n_{m}"].where(grouped[f"n_{m}"] > 0)
    return grouped.drop(columns=[f"sum_{m}" for m in MEASURES])


# Histogram bin widths of the measures the report draws per species: exact counts from one
# streaming GROUP BY, so the figure costs the same at any row count and never changes between
# runs on the same data.
HISTOGRAM_BINS = {"body_mass_g": 100.0, "bill_length_mm": 1.0}


def species_histograms(con: duckdb.DuckDBPyConnection, clean_table: str) -> pd.DataFrame:
    """measure, species, bin_start, n: each measure's distribution per species."""
    parts = [
        f"SELECT '{m}' AS measure, species, floor({m} / {w!r}) * {w!r} AS bin_start, "
        f"count(*) AS n FROM {clean_table} WHERE {m} IS NOT NULL GROUP BY ALL"
        for m, w in HISTOGRAM_BINS.items()
    ]
    return con.execute(" UNION ALL ".join(parts) + " ORDER BY ALL").df()


def by_species_and_sex(summary: pd.DataFrame) -> list[dict]:
    """The lookup table at species x sex grain, as plain records (JSON-ready): the penguin count
    and per measure its count, mean and sample standard deviation, pooled over islands and years.

    This small table is what the model explorer draws from, so the app never scans rows: the
    pooled standard deviation comes from each group's count, mean and sd (sum of squares within
    groups plus between them). Penguins of unrecorded sex have no row: no prediction is made for
    them.
    """
    frame = summary[summary["sex"].notna()]
    records = []
    for (species, sex), group in frame.groupby(["species", "sex"], sort=True):
        record = {"species": species, "sex": sex, "n_penguins": int(group["n_penguins"].sum())}
        for m in MEASURES:
            record.update(_pooled(group[f"n_{m}"], group[f"mean_{m}"], group[f"sd_{m}"], m))
        records.append(record)
    return records


def _pooled(n: pd.Series, mean: pd.Series, sd: pd.Series, name: str) -> dict:
    total = int(n.sum())
    if total == 0:
        return {f"n_{name}": 0, f"mean_{name}": None, f"sd_{name}": None}
    seen = n > 0
    n, mean, sd = n[seen].astype(float), mean[seen].astype(float), sd[seen].fillna(0.0)
    grand = float((n * mean).sum() / total)
    squares = float(((n - 1) * sd**2).sum() + (n * (mean - grand) ** 2).sum())
    spread = (squares / (total - 1)) ** 0.5 if total > 1 else None
    return {f"n_{name}": total, f"mean_{name}": grand, f"sd_{name}": spread}
