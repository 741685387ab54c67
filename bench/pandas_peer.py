"""The plain pandas peer of the pipeline: read every landing file into memory, then the same
cleaning, aggregation and fit. Usage: python bench/pandas_peer.py LANDING_DIR. Never part of the
test run.

It is what a notebook would do: no chunks, no sampling, no database. The same rules as the
pipeline (exact duplicates dropped, invalid rows rejected, palmerpenguins' columns, the lookup
table's grain and the book's regression on every complete row).
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder

MEASURES = {
    "Culmen Length (mm)": ("bill_length_mm", 20.0, 80.0),
    "Culmen Depth (mm)": ("bill_depth_mm", 10.0, 30.0),
    "Flipper Length (mm)": ("flipper_length_mm", 150.0, 260.0),
    "Body Mass (g)": ("body_mass_g", 2000.0, 7500.0),
}
MISSING = {"", "NA", "N/A", "NULL", "."}


def read_all(landing: Path) -> pd.DataFrame:
    frames = []
    for path in sorted(landing.iterdir()):
        if path.suffix == ".parquet":
            frames.append(pd.read_parquet(path).astype(str))
        elif path.suffix == ".csv":
            frames.append(pd.read_csv(path, dtype=str, keep_default_na=False))
    return pd.concat(frames, ignore_index=True)


def clean(raw: pd.DataFrame) -> pd.DataFrame:
    raw = raw.drop_duplicates()
    species = raw["Species"].str.strip().str.split(" ").str[0].str.capitalize()
    sex = raw["Sex"].str.strip()
    sex = sex.where(~sex.str.upper().isin(MISSING)).str.lower()
    out = pd.DataFrame({"species": species, "island": raw["Island"].str.strip()})
    ok = species.isin(["Adelie", "Chinstrap", "Gentoo"]) & out["island"].isin(
        ["Biscoe", "Dream", "Torgersen"]
    )
    ok &= sex.isna() | sex.isin(["female", "male"])
    for column, (name, low, high) in MEASURES.items():
        text = raw[column].str.strip()
        value = pd.to_numeric(text.where(~text.str.upper().isin(MISSING)), errors="coerce")
        ok &= value.isna() | value.between(low, high)
        out[name] = value
    dates = pd.to_datetime(raw["Date Egg"].str.strip(), errors="coerce", format="%Y-%m-%d")
    ok &= dates.notna()
    out["sex"] = sex
    out["year"] = dates.dt.year
    return out[ok]


def summarise(penguins: pd.DataFrame) -> pd.DataFrame:
    measures = [name for name, _, _ in MEASURES.values()]
    grouped = penguins.groupby(["species", "island", "sex", "year"], dropna=False)
    table = grouped[measures].agg(["count", "mean", "std"])
    table.columns = [f"{how}_{name}" for name, how in table.columns]
    return table.join(grouped.size().rename("n_penguins"))


def fit(penguins: pd.DataFrame) -> float:
    frame = penguins.dropna(subset=["species", "sex", "bill_length_mm", "body_mass_g"])
    encode = ColumnTransformer(
        [("c", OneHotEncoder(drop="first"), ["species", "sex"])], remainder="passthrough"
    )
    model = Pipeline([("encode", encode), ("regress", LinearRegression())])
    model.fit(frame[["species", "sex", "bill_length_mm"]], frame["body_mass_g"])
    return float(model.score(frame[["species", "sex", "bill_length_mm"]], frame["body_mass_g"]))


def main(landing: str) -> None:
    penguins = clean(read_all(Path(landing)))
    table = summarise(penguins)
    r2 = fit(penguins)
    print(
        f"pandas peer: {len(penguins)} clean rows, {len(table)} summary rows, R^2 {r2:.4f}, "
        f"{int(np.asarray(table['n_penguins']).sum())} penguins counted"
    )


if __name__ == "__main__":
    main(sys.argv[1])
