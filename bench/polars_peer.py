"""The polars peer of the pipeline: the pandas peer's work (bench/pandas_peer.py) as one lazy
polars query. Usage: python bench/polars_peer.py LANDING_DIR. Never part of the test run.

What a user choosing a tool compares with: read every landing file, drop exact duplicates, clean
with the same rules, aggregate to the lookup table's grain, and fit body mass on species, sex and
bill length over every complete row (least squares on the one-hot design, as LinearRegression).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import polars as pl

MEASURES = {
    "Culmen Length (mm)": ("bill_length_mm", 20.0, 80.0),
    "Culmen Depth (mm)": ("bill_depth_mm", 10.0, 30.0),
    "Flipper Length (mm)": ("flipper_length_mm", 150.0, 260.0),
    "Body Mass (g)": ("body_mass_g", 2000.0, 7500.0),
}
MISSING = ["", "NA", "N/A", "NULL", "."]


def scan_all(landing: Path) -> pl.LazyFrame:
    frames = []
    for path in sorted(landing.iterdir()):
        if path.suffix == ".parquet":
            frames.append(pl.scan_parquet(path))
        elif path.suffix == ".csv":
            frames.append(pl.scan_csv(path, infer_schema=False))
    text = [f.select(pl.all().cast(pl.Utf8)) for f in frames]
    return pl.concat(text, how="diagonal_relaxed")


def text(column: str) -> pl.Expr:
    value = pl.col(column).str.strip_chars()
    return pl.when(value.str.to_uppercase().is_in(MISSING)).then(None).otherwise(value)


def clean(raw: pl.LazyFrame) -> pl.LazyFrame:
    species = pl.col("Species").str.strip_chars().str.split(" ").list.first().str.to_titlecase()
    columns = [
        species.alias("species"),
        pl.col("Island").str.strip_chars().alias("island"),
        text("Sex").str.to_lowercase().alias("sex"),
        pl.col("Date Egg").str.strip_chars().str.to_date("%Y-%m-%d", strict=False).alias("date"),
    ]
    columns += [
        text(c).cast(pl.Float64, strict=False).alias(name) for c, (name, _, _) in MEASURES.items()
    ]
    ok = (
        pl.col("species").is_in(["Adelie", "Chinstrap", "Gentoo"])
        & pl.col("island").is_in(["Biscoe", "Dream", "Torgersen"])
        & (pl.col("sex").is_null() | pl.col("sex").is_in(["female", "male"]))
        & pl.col("date").is_not_null()
    )
    for name, low, high in MEASURES.values():
        ok &= pl.col(name).is_null() | pl.col(name).is_between(low, high)
    return (
        raw.unique()
        .select(columns)
        .filter(ok)
        .with_columns(pl.col("date").dt.year().alias("year"))
        .drop("date")
    )


def summarise(penguins: pl.LazyFrame) -> pl.LazyFrame:
    stats = []
    for name, _, _ in MEASURES.values():
        stats += [
            pl.col(name).count().alias(f"n_{name}"),
            pl.col(name).mean().alias(f"mean_{name}"),
            pl.col(name).std().alias(f"sd_{name}"),
        ]
    grain = ["species", "island", "sex", "year"]
    return penguins.group_by(grain).agg(pl.len().alias("n_penguins"), *stats).sort(grain)


def fit(penguins: pl.LazyFrame) -> float:
    frame = (
        penguins.select("species", "sex", "bill_length_mm", "body_mass_g").drop_nulls().collect()
    )
    design = frame.select(
        pl.lit(1.0).alias("intercept"),
        *[(pl.col("species") == s).cast(pl.Float64).alias(s) for s in ("Chinstrap", "Gentoo")],
        (pl.col("sex") == "male").cast(pl.Float64).alias("male"),
        pl.col("bill_length_mm"),
    ).to_numpy()
    target = frame["body_mass_g"].to_numpy()
    coefficients, *_ = np.linalg.lstsq(design, target, rcond=None)
    residual = target - design @ coefficients
    return float(1 - residual @ residual / ((target - target.mean()) ** 2).sum())


def main(landing: str) -> None:
    penguins = clean(scan_all(Path(landing))).collect().lazy()
    table = summarise(penguins).collect()
    r2 = fit(penguins)
    print(
        f"polars peer: {penguins.select(pl.len()).collect().item()} clean rows, {len(table)} "
        f"summary rows, R^2 {r2:.4f}, {table['n_penguins'].sum()} penguins counted"
    )


if __name__ == "__main__":
    main(sys.argv[1])
