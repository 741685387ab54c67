"""The book's lab model: body_mass_g ~ bill_length_mm + species + sex, as a scikit-learn Pipeline.

The Pipeline takes the natural fields (species "Gentoo", sex "male", bill_length_mm 45.1), so the
API and any caller send what a field biologist would write, not dummy columns. The inputs and their
encoding are declared once, in features.FeatureSpec; the pin carries that spec and the fitted
coefficients (`inputs`, `predictor` in its metadata), from which the API predicts.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import duckdb
import numpy as np
import pandas as pd

from .db import first_row
from .features import CATEGORICAL, FEATURES, NUMERIC, TARGET, FeatureSpec, LinearPredictor

# scikit-learn is imported inside the functions that fit: a run whose training data did not
# change (the snapshot id matches the latest pin) never pays its import.


@dataclass
class FittedModel:
    pipeline: object  # sklearn.pipeline.Pipeline (imported only to fit)
    spec: FeatureSpec
    predictor: LinearPredictor
    r2: float
    rmse: float
    rows_used: int
    data_snapshot: str
    coefficients: dict[str, float]
    categories: dict[str, list[str]]
    numeric_ranges: dict[str, list[float]]
    prototype: pd.DataFrame = field(repr=False)
    # compare_sample_with_all_rows(), once known
    sample_vs_all_rows: dict = field(default_factory=dict)
    # monitoring.training_facts(): seasons, held-out rows and metrics, training profile, trainer
    monitoring: dict = field(default_factory=dict)
    # the lake snapshot the training rows were read at (None on the DuckDB file: no snapshots)
    warehouse_snapshot: int | None = None

    def summary(self) -> dict:
        """Facts about the model that every consumer (pin, Dagster, report, API) shows."""
        return {
            "r2": round(self.r2, 6),
            "rmse": round(self.rmse, 4),
            "rows_used": self.rows_used,
            "data_snapshot": self.data_snapshot,
            "warehouse_snapshot": self.warehouse_snapshot,
            "coefficients": {k: round(v, 6) for k, v in self.coefficients.items()},
            "categories": self.categories,
            "numeric_ranges": self.numeric_ranges,
            "features": FEATURES,
            "target": TARGET,
            "sample_vs_all_rows": self.sample_vs_all_rows,
            "inputs": self.spec.to_metadata(),  # what the API accepts and documents
            "predictor": self.predictor.to_metadata(),  # unrounded: what the API predicts with
            **self.monitoring,
        }


def load_training_frame(
    con: duckdb.DuckDBPyConnection, table: str, exclude: str = "FALSE"
) -> pd.DataFrame:
    """The model's columns of complete rows, in a stable order (so the snapshot id is stable).

    `exclude`: a SQL condition on the table's rows kept out of training (the held-out rows).
    """
    columns = FEATURES + [TARGET]
    complete = " AND ".join(f"{c} IS NOT NULL" for c in columns)
    return con.execute(
        f"SELECT {', '.join(columns)} FROM {table} WHERE {complete} AND NOT ({exclude}) "
        f"ORDER BY {', '.join(columns)}"
    ).df()


def data_snapshot_id(frame: pd.DataFrame) -> str:
    """A short content hash of the training data: equal data, equal id, whatever the run."""
    row_hashes = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    return hashlib.sha256(row_hashes.tobytes()).hexdigest()[:16]


def build_pipeline(spec: FeatureSpec):
    """scikit-learn's pipeline, encoding as the spec does (its categories, first dropped)."""
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    onehot = OneHotEncoder(categories=[list(v) for v in spec.categories.values()], drop="first")
    encode = ColumnTransformer(
        [("categories", onehot, list(spec.categories))],
        remainder="passthrough",
        verbose_feature_names_out=False,
    )
    return Pipeline([("encode", encode), ("regress", LinearRegression())])


def representative_row(frame: pd.DataFrame) -> pd.DataFrame:
    """One typical penguin of the whole frame (features.typical_record): vetiver's prototype."""
    return pd.DataFrame([FeatureSpec.from_frame(frame).example], columns=FEATURES)


NO_COMPLETE_ROWS = (
    "no complete rows to train on: penguins has no row with species, sex, bill length and mass"
)


def fit_model(frame: pd.DataFrame) -> FittedModel:
    if frame.empty:
        raise ValueError(NO_COMPLETE_ROWS)
    from sklearn.metrics import mean_squared_error, r2_score

    spec = FeatureSpec.from_frame(frame)
    X, y = frame[FEATURES], frame[TARGET].astype(float)
    pipeline = build_pipeline(spec).fit(X, y)
    predicted = pipeline.predict(X)
    predictor = LinearPredictor.from_pipeline(pipeline, spec)
    coefficients = {"intercept": predictor.intercept}
    coefficients.update(zip(spec.encoded_names, predictor.coefficients.tolist(), strict=True))
    return FittedModel(
        pipeline=pipeline,
        spec=spec,
        predictor=predictor,
        r2=float(r2_score(y, predicted)),
        rmse=float(np.sqrt(mean_squared_error(y, predicted))),
        rows_used=len(frame),
        data_snapshot=data_snapshot_id(frame),
        coefficients=coefficients,
        categories={c: list(v) for c, v in spec.categories.items()},
        numeric_ranges={c: [float(frame[c].min()), float(frame[c].max())] for c in NUMERIC},
        prototype=pd.DataFrame([spec.example], columns=FEATURES),
    )


def trained_on_same_data(latest: dict | None, frame: pd.DataFrame) -> bool:
    """The latest pinned model (its facts, or None) was trained on exactly this frame: no refit.

    A model pinned before its parameters travelled in its metadata (no `predictor`) is fitted again.
    """
    return (
        bool(latest)
        and "predictor" in latest
        and latest.get("data_snapshot") == data_snapshot_id(frame)
    )


def r2_below_floor(r2: float, floor: float) -> list[str]:
    return [] if r2 >= floor else [f"R^2 {r2:.4f} is below the floor {floor:.4f}"]


def to_vetiver(fitted: FittedModel, model_name: str):
    """Wrap for vetiver; the prototype is built from the whole training frame, not its first row."""
    from vetiver import VetiverModel

    return VetiverModel(
        fitted.pipeline,
        model_name=model_name,
        prototype_data=fitted.prototype,
        description="Penguin body mass (g) from species, sex and bill length (mm): "
        "linear regression",
        metadata=fitted.summary(),
    )


# --- big data: train on a stratified sample drawn in DuckDB, compare with the all-rows fit -------
#
# Only the sample (by default 100k rows) ever reaches pandas. The all-rows fit needs no rows in
# Python either: ordinary least squares only needs X'X and X'y, which DuckDB sums in one scan.
# Counts (the summary, the report) never come from the sample.

STRATA = ("species", "sex", "island")


@dataclass
class TrainingSample:
    frame: pd.DataFrame
    complete_rows: int  # complete rows in the whole table (counts come from here, not the sample)
    sampled: bool  # False when the whole table fits in the sample: then frame is every complete row
    strata: dict[str, int]  # "species/sex/island" -> rows drawn
    seed: int
    holdout_share: float
    exclude: str = "FALSE"  # SQL condition: rows kept out of training altogether (held out)
    moments: list[StratumMoments] = field(default_factory=list, repr=False)  # of its counting scan


def _uniform_sql(seed: int) -> str:
    # rowid is stable for a given build of the clean table; hashing it with the seed gives every
    # row a reproducible uniform in [0, 1) independent of the thread count.
    return f"((hash(rowid, {int(seed)}) >> 11)::DOUBLE / 9007199254740992.0)"


def _complete(table: str, seed: int, exclude: str = "FALSE") -> str:
    """The complete rows not excluded, each with its reproducible uniform u (u < holdout share:
    held out of the sample)."""
    columns = FEATURES + [TARGET, "island"]
    return (
        f"(SELECT *, {_uniform_sql(seed)} AS u FROM {table} WHERE "
        + " AND ".join(f"{c} IS NOT NULL" for c in columns)
        + f" AND NOT ({exclude}))"
    )


def draw_training_sample(
    con: duckdb.DuckDBPyConnection,
    table: str,
    rows: int,
    seed: int = 42,
    holdout_share: float = 0.05,
    exclude: str = "FALSE",
) -> TrainingSample:
    """A reproducible stratified sample (species x sex x island, proportional quotas) of the
    complete rows.

    When the table has no more complete rows than `rows`, the "sample" is all of them and nothing
    is held out (the small shipped data trains exactly as before). Otherwise a hash-chosen share
    is held out for the comparison, and each stratum's quota is drawn from the rest.
    """
    # One scan counts every stratum's complete rows, held out or not, and sums what the all-rows
    # fit needs (compare_sample_with_all_rows).
    moments = stratum_moments(con, table, seed, holdout_share, exclude)
    every, pooled = _stratum_counts(moments)
    total = sum(every.values())
    if total <= rows:
        frame = load_training_frame(con, table, exclude)
        strata = sorted(("/".join(key), n) for key, n in every.items())
        return TrainingSample(frame, total, False, dict(strata), seed, 0.0, exclude, moments)
    counts = [(*key, n) for key, n in sorted(pooled.items())]  # the pool's strata
    quotas = _proportional([n for *_, n in counts], rows)
    con.execute(
        "CREATE OR REPLACE TEMP TABLE sample_quotas (species VARCHAR, sex VARCHAR, island VARCHAR, "
        "n BIGINT, quota BIGINT)"
    )
    con.executemany(
        "INSERT INTO sample_quotas VALUES (?, ?, ?, ?, ?)",
        [(*key, n, q) for (*key, n), q in zip(counts, quotas, strict=True)],
    )
    # u is uniform on [holdout_share, 1) in every stratum: keep a little more than the quota by a
    # threshold (one streaming pass), then the exact quota by rank among those few. The widest
    # stratum's threshold, a constant (computed by the same SQL), filters the scan before the
    # join to the quotas: the join then sees ~rows candidates, not every complete row (10^8 rows:
    # 1.7 s less).
    share = "least(1.0, 1.1 * q.quota / q.n + 64.0 / q.n)"  # of the stratum's pool, ~its quota
    candidates = f"{holdout_share!r} + (1 - {holdout_share!r}) * {share}"
    widest = first_row(con, f"SELECT max({candidates}) FROM sample_quotas q")[0]
    pool = (
        f"(SELECT * FROM {_complete(table, seed, exclude)} "
        f"WHERE u >= {holdout_share!r} AND u < $widest)"
    )
    columns = ", ".join(FEATURES + [TARGET])
    frame = con.execute(
        f"""
        WITH candidates AS (
            SELECT p.*, q.quota FROM {pool} p JOIN sample_quotas q USING ({", ".join(STRATA)})
            WHERE p.u < {candidates}
        ), ranked AS (
            SELECT *, row_number() OVER (PARTITION BY {", ".join(STRATA)} ORDER BY u) AS pick
            FROM candidates
        )
        SELECT {columns} FROM ranked WHERE pick <= quota ORDER BY {columns}
        """,
        {"widest": widest},
    ).df()
    drawn = dict(
        con.execute(
            "SELECT concat_ws('/', species, sex, island), quota FROM sample_quotas ORDER BY 1"
        ).fetchall()
    )
    return TrainingSample(frame, total, True, drawn, seed, holdout_share, exclude, moments)


def _stratum_counts(moments: list[StratumMoments]) -> tuple[dict, dict]:
    """Complete rows per stratum (a tuple of STRATA's values): all of them, and those in the pool
    (not held out); a stratum with no pooled row is not in the second."""
    every, pooled = {}, {}
    for m in moments:
        key = tuple(m.key[s] for s in STRATA)
        every[key] = every.get(key, 0) + m.rows
        if not m.held:
            pooled[key] = m.rows
    return every, pooled


def _proportional(sizes: list[int], total: int) -> list[int]:
    """Quotas in proportion to sizes adding up to total (largest remainder), never above a size."""
    whole = sum(sizes)
    exact = [total * n / whole for n in sizes]
    quotas = [min(int(x), n) for x, n in zip(exact, sizes, strict=True)]
    order = sorted(range(len(sizes)), key=lambda k: exact[k] - quotas[k], reverse=True)
    for k in order[: max(0, total - sum(quotas))]:
        if quotas[k] < sizes[k]:
            quotas[k] += 1
    return quotas


@dataclass
class NormalEquations:
    """X'X, X'y, y'y and the row count of some rows, for the design columns `names`: enough to fit
    the regression on them, or to score any coefficients on them, without another scan."""

    names: list[str]
    xtx: np.ndarray
    xty: np.ndarray
    yty: float
    rows: int

    def solve(self) -> dict[str, float]:
        return dict(zip(self.names, np.linalg.solve(self.xtx, self.xty).tolist(), strict=True))

    def rmse(self, coefficients: dict[str, float]) -> float:
        """RMSE of the coefficients on these rows: sqrt((y'y - 2b'X'y + b'X'Xb) / n)."""
        if not self.rows:
            return 0.0
        b = np.array([float(coefficients.get(n, 0.0)) for n in self.names])
        sse = self.yty - 2 * b @ self.xty + b @ self.xtx @ b
        return float(np.sqrt(max(sse, 0.0) / self.rows))


# Within one stratum every categorical column is a constant, so the design columns are constants or
# numeric columns: the stratum's row count and the sums of its numbers and of their products build
# X'X and X'y for any encoding. The sample's one counting scan sums them, and the all-rows fit
# needs no scan of its own.
assert set(CATEGORICAL) <= set(STRATA), "a categorical feature must be a stratum"
NUMBERS = [*NUMERIC, TARGET]


def _product(a: str, b: str) -> str:
    first, second = sorted((a, b), key=NUMBERS.index)
    return f"{first}*{second}"


def _moment_sums() -> dict[str, str]:
    """name -> SQL of each sum kept per stratum: every number, every product of two."""
    sums = {n: f"{n}::DOUBLE" for n in NUMBERS}
    pairs = [(a, b) for i, a in enumerate(NUMBERS) for b in NUMBERS[i:]]
    sums |= {_product(a, b): f"{a}::DOUBLE * {b}::DOUBLE" for a, b in pairs}
    return sums


@dataclass
class StratumMoments:
    """One stratum's complete rows, held out (u < holdout share) or not: count and sums."""

    key: dict[str, str]  # species, sex, island
    held: bool
    rows: int
    sums: dict[str, float]

    def total(self, a: str | None, b: str | None) -> float:
        """The sum over the rows of a x b, each a number's name or None for 1."""
        if a is None and b is None:
            return float(self.rows)
        if a is None or b is None:
            return self.sums[a or b]
        return self.sums[_product(a, b)]


def _moments_select(seed: int, holdout_share: float, table: str, exclude: str) -> str:
    sums = ", ".join(f"sum({sql})" for sql in _moment_sums().values())
    return (
        f"SELECT {', '.join(STRATA)}, u < {holdout_share!r} AS held, count(*), {sums} "
        f"FROM {_complete(table, seed, exclude)} GROUP BY ALL ORDER BY ALL"
    )


def stratum_moments(
    con: duckdb.DuckDBPyConnection,
    table: str,
    seed: int,
    holdout_share: float,
    exclude: str = "FALSE",
) -> list[StratumMoments]:
    """In one DuckDB scan, each stratum's complete rows, held out or not: their count and sums."""
    names = list(_moment_sums())
    rows = con.execute(_moments_select(seed, holdout_share, table, exclude)).fetchall()
    return [
        StratumMoments(
            dict(zip(STRATA, row[: len(STRATA)], strict=True)),
            bool(row[len(STRATA)]),
            int(row[len(STRATA) + 1]),
            {n: float(v or 0.0) for n, v in zip(names, row[len(STRATA) + 2 :], strict=True)},
        )
        for row in rows
    ]


def _design_in(spec: FeatureSpec, key: dict[str, str]) -> list[tuple[float, str | None]]:
    """Each design column (spec.sql_design's order) in a stratum as (factor, number or None): its
    value on every row there is factor x that number (x 1 for None)."""
    columns = [(1.0, None)]  # the intercept
    for f, values in spec.categories.items():
        columns += [(float(key[f] == v), None) for v in values[1:]]
    return columns + [(1.0, f) for f in spec.bounds]


def equations_from_moments(
    moments: list[StratumMoments], spec: FeatureSpec
) -> tuple[NormalEquations, NormalEquations]:
    """The training pool's (not held) and the held-out rows' normal equations, in spec's encoding
    (that of spec.sql_design and of the fitted pipeline: coefficients match by name)."""
    names = list(spec.sql_design())
    parts = {held: _zero_equations(names) for held in (False, True)}
    for m in moments:
        part, design = parts[m.held], _design_in(spec, m.key)
        for i, (fi, ni) in enumerate(design):
            part.xty[i] += fi * m.total(ni, TARGET)
            for j, (fj, nj) in enumerate(design):
                part.xtx[i, j] += fi * fj * m.total(ni, nj)
        part.yty += m.total(TARGET, TARGET)
        part.rows += m.rows
    return parts[False], parts[True]


def _zero_equations(names: list[str]) -> NormalEquations:
    k = len(names)
    return NormalEquations(names, np.zeros((k, k)), np.zeros(k), 0.0, 0)


def normal_equations(
    con: duckdb.DuckDBPyConnection,
    table: str,
    seed: int,
    holdout_share: float,
    spec: FeatureSpec,
    exclude: str = "FALSE",
) -> tuple[NormalEquations, NormalEquations]:
    """The sums of the training pool's complete rows (u >= holdout_share) and of the held-out ones
    (u < holdout_share), in one DuckDB scan; no row reaches Python."""
    moments = stratum_moments(con, table, seed, holdout_share, exclude)
    return equations_from_moments(moments, spec)


def fit_all_rows_sql(
    con: duckdb.DuckDBPyConnection,
    table: str,
    seed: int,
    holdout_share: float,
    spec: FeatureSpec,
    exclude: str = "FALSE",
) -> dict[str, float]:
    """The same regression on every complete training-pool row, by normal equations summed in
    DuckDB."""
    pool, _ = normal_equations(con, table, seed, holdout_share, spec, exclude)
    return pool.solve()


def compare_sample_with_all_rows(sample: TrainingSample, fitted: FittedModel) -> dict:
    """How far the sample-trained model is from the all-rows one: coefficients and held-out RMSE."""
    if not sample.sampled:
        return {
            "sampled": False,
            "rows_used": fitted.rows_used,
            "complete_rows": sample.complete_rows,
            "max_abs_coefficient_diff": 0.0,
            "rmse_holdout_ratio": 1.0,
            "note": "every complete row fits in the sample: the model is the all-rows model",
        }
    # No scan: the all-rows fit from the pool's sums (summed while sampling), both models scored on
    # the held-out sums.
    pool, held = equations_from_moments(sample.moments, fitted.spec)
    full = pool.solve()
    rmse_sample, rmse_full, n_holdout = held.rmse(fitted.coefficients), held.rmse(full), held.rows
    diffs = {n: fitted.coefficients[n] - full[n] for n in full}
    return {
        "sampled": True,
        "rows_used": fitted.rows_used,
        "complete_rows": sample.complete_rows,
        "holdout_rows": n_holdout,
        "coefficients_all_rows": {n: round(v, 6) for n, v in full.items()},
        "coefficient_diff": {n: round(v, 6) for n, v in diffs.items()},
        "max_abs_coefficient_diff": round(max(abs(v) for v in diffs.values()), 6),
        "rmse_holdout_sample_model": round(rmse_sample, 4),
        "rmse_holdout_all_rows_model": round(rmse_full, 4),
        "rmse_holdout_ratio": round(rmse_sample / rmse_full, 6) if rmse_full else 1.0,
    }


def sample_worse_than_all_rows(comparison: dict, tolerance: float = 0.01) -> list[str]:
    """The sample-trained model may be at most `tolerance` (relative) worse on held-out rows."""
    ratio = comparison.get("rmse_holdout_ratio", 1.0)
    if ratio <= 1 + tolerance:
        return []
    return [
        f"sample model's held-out RMSE is {ratio:.4f}x the all-rows model's "
        f"(allowed {1 + tolerance:.2f}x)"
    ]
