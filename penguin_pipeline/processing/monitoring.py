"""Model monitoring: how the served model (the champion) does on the field seasons that came after
its training data, whether its inputs drifted, and whether a newly trained version (the challenger)
replaces it.

Plain functions over a DuckDB connection and small DataFrames; no Dagster, no board. The rows are
scored inside DuckDB (the pinned coefficients as one SQL expression); only per-season tallies and
the rows of one season's evaluation reach pandas, where vetiver's `compute_metrics` computes the
metrics.

- Seasons are field years (`year`): a season's metrics carry the season's first day as their date
  index, never the time of the run.
- The newest season's held-out rows are a share of that season's complete rows chosen by a hash of
  their content (the same rows whatever the run or the row order); no model version trains on
  them, so champion and challenger are compared on rows neither has seen.
- Drift is the population stability index (PSI) of each feature's distribution in a season against
  the served model's training data: numeric features over the training quintiles, categorical
  features over their shares. Conventional reading: below 0.1 stable, 0.1 to 0.25 a moderate shift,
  above 0.25 a major one (the default thresholds, PENGUIN_DRIFT_WARN and PENGUIN_DRIFT_BLOCK).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from datetime import timedelta

import duckdb
import numpy as np
import pandas as pd

from . import tables
from .cleaning import CLEAN_COLUMNS
from .db import first_row, retry_conflicts, table_exists, transaction
from .features import CATEGORICAL, FEATURES, NUMERIC, TARGET, FeatureSpec, LinearPredictor
from .lter import quote, sql_list

SEASON = "year"
# A row's identity for the held-out split: every column of the clean table, so the same penguin
# record is held out (or not) whatever the run or the table's row order.
ROW_CONTENT = CLEAN_COLUMNS
COMPLETE = " AND ".join(f"{c} IS NOT NULL" for c in FEATURES + [TARGET])
METRIC_NAMES = {"root_mean_squared_error": "rmse", "r2_score": "r2", "mean_absolute_error": "mae"}
SEASON_PERIOD = timedelta(days=366)
PSI_FLOOR = 1e-4  # a share of 0 (a bin or category never seen) counts as this, so PSI stays finite
# Quintiles, not the usual deciles: a season is ~100-300 birds, and PSI's expected value from
# sampling alone grows with the bins ((bins - 1) x (1/n_season + 1/n_training)): ~0.09 with ten
# bins for 150 birds against 300, above the 0.1 warning, ~0.04 with five.
QUINTILES = [q / 5 for q in range(1, 5)]
ALL_SPECIES = "all"
# The columns written to tables.METRICS and tables.DRIFT (tables.py has their types).
METRIC_COLUMNS = ["model_version", "season", "species", "metric", "estimate", "n_rows"]
DRIFT_COLUMNS = [
    "model_version",
    "season",
    "feature",
    "kind",
    "statistic",
    "value",
    "status",
    "shares",
]


# --- the held-out rows -----------------------------------------------------------------------


@dataclass(frozen=True)
class Holdout:
    """The share of one season's complete rows that no model version trains on."""

    season: int
    share: float
    seed: int

    def sql(self) -> str:
        """A SQL condition true on exactly the held-out rows of the clean table.

        The truth table of `season = s AND bucket < share` (NULL seasons too), written as a CASE:
        the content hash (every column as text) is costly, and DuckDB evaluates both sides of an
        AND on every row where it sits inside NOT or a SELECT list; the CASE hashes only the rows
        of season s.
        """
        content = ", ".join(f"{c}::VARCHAR" for c in ROW_CONTENT)
        bucket = f"hash(concat_ws('|', {content}, '{int(self.seed)}')) % 10000"
        season = f"{SEASON} = {int(self.season)}"
        held = f"{bucket} < {round(self.share * 10000)}"
        return f"(CASE WHEN {season} IS NOT FALSE THEN {season} AND {held} ELSE false END)"

    def to_metadata(self) -> dict:
        return {"season": self.season, "share": self.share, "seed": self.seed}

    @classmethod
    def from_metadata(cls, facts: dict) -> Holdout | None:
        held = facts.get("holdout") or {}
        if "season" not in held:
            return None
        return cls(int(held["season"]), float(held["share"]), int(held["seed"]))


@dataclass(frozen=True)
class SeasonCensus:
    """Each field season's rows and complete rows (None: rows without a season), from one scan."""

    rows: dict[int | None, int]
    complete: dict[int | None, int]

    def newest(self) -> int | None:
        """The newest field season with a complete row (None when there is none)."""
        return max((s for s, n in self.complete.items() if s is not None and n), default=None)


def season_census(con: duckdb.DuckDBPyConnection, table: str) -> SeasonCensus:
    counts = con.execute(
        f"SELECT {SEASON}, count(*), count(*) FILTER (WHERE {COMPLETE}) FROM {table} GROUP BY 1"
    ).fetchall()
    return SeasonCensus(
        {season: rows for season, rows, _ in counts},
        {season: complete for season, _, complete in counts},
    )


def newest_season_holdout(census: SeasonCensus, share: float, seed: int) -> Holdout | None:
    """The held-out rows of the newest season with a complete row; None when there is none."""
    season = census.newest()
    return None if season is None else Holdout(season, share, seed)


def mark_held_out(con: duckdb.DuckDBPyConnection, table: str, holdout: Holdout) -> str:
    """Finds the held-out rows once, keeping their row ids (and whether each is complete: see
    training_rows) in a temp table, and returns a SQL condition with Holdout.sql()'s truth table on
    `table`'s rows (NULL where it is NULL: on a row without a season, which the clean table's
    checks keep out anyway).

    Holdout.sql() hashes every column of the season's rows as text: at 10^7 rows that is ~0.4 s a
    scan, and three of the model step's scans need it; looking the ids up costs ~0.05 s a scan.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE held_out_rows AS SELECT id, held, complete FROM "
        f"(SELECT rowid AS id, {holdout.sql()} AS held, {COMPLETE} AS complete FROM {table}) "
        "WHERE held IS NOT FALSE"
    )
    held = "rowid IN (SELECT id FROM held_out_rows WHERE held)"
    if not first_row(con, "SELECT count(*) FROM held_out_rows WHERE held IS NULL")[0]:
        return f"({held})"  # one lookup: the CASE's second would double its cost
    unsure = "rowid IN (SELECT id FROM held_out_rows)"
    return f"(CASE WHEN {held} THEN true WHEN {unsure} THEN NULL ELSE false END)"


def seasons_where(con: duckdb.DuckDBPyConnection, table: str, where: str = "TRUE") -> list[int]:
    """The seasons of the complete rows meeting `where`, oldest first."""
    rows = con.execute(
        f"SELECT DISTINCT {SEASON} FROM {table} WHERE {COMPLETE} AND ({where}) ORDER BY 1"
    ).fetchall()
    return [int(season) for (season,) in rows]


def training_rows(
    con: duckdb.DuckDBPyConnection, census: SeasonCensus, holdout: Holdout
) -> tuple[list[int], dict]:
    """The seasons a version trains on (with a complete row that is not held out), and how many
    rows the table has, how many lack a value the model needs, how many are held out: from the
    census and mark_held_out's table, without another scan of the table."""
    held = first_row(con, "SELECT count(*) FROM held_out_rows WHERE held AND complete")[0]
    trained = dict(census.complete)
    trained[holdout.season] = trained.get(holdout.season, 0) - held  # held rows: of its season
    seasons = sorted(s for s, n in trained.items() if s is not None and n > 0)
    total = sum(census.rows.values())
    return seasons, {
        "rows_in_table": total,
        "missing_values": total - sum(census.complete.values()),
        "held_out": held,
    }


# --- scoring and metrics ---------------------------------------------------------------------


def predictor_from_facts(facts: dict) -> LinearPredictor:
    """A pinned version's predictor from its metadata alone (no pickle read)."""
    return LinearPredictor.from_metadata(facts, FeatureSpec.from_metadata(facts))


def prediction_sql(predictor: LinearPredictor) -> str:
    """The predictor as one DuckDB expression over the clean table's columns."""
    design = predictor.spec.sql_design()
    terms = [repr(predictor.intercept)]
    terms += [
        f"{float(c)!r} * {design[name]}"
        for name, c in zip(predictor.spec.encoded_names, predictor.coefficients, strict=True)
    ]
    return " + ".join(terms)


def known_categories_sql(spec: FeatureSpec) -> str:
    """Rows whose categories the model was trained on (another one has no coefficient)."""
    tests = []
    for field, values in spec.categories.items():
        tests.append(f"{quote(field)} IN ({sql_list(values)})")
    return " AND ".join(tests) or "TRUE"


def scored_rows(
    con: duckdb.DuckDBPyConnection, table: str, predictor: LinearPredictor, where: str
) -> pd.DataFrame:
    """season, species, truth and the predictor's estimate of each complete row meeting `where`."""
    return con.execute(
        f"SELECT {SEASON} AS season, species, {TARGET}::DOUBLE AS truth, "
        f"{prediction_sql(predictor)} AS estimate FROM {table} "
        f"WHERE {COMPLETE} AND {known_categories_sql(predictor.spec)} AND ({where}) "
        "ORDER BY season, species"
    ).df()


def season_start(season: int) -> pd.Timestamp:
    return pd.Timestamp(year=int(season), month=1, day=1)


def _metric_set() -> list:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    return [root_mean_squared_error, r2_score, mean_absolute_error]


def vetiver_season_metrics(rows: pd.DataFrame, season: int) -> pd.DataFrame:
    """vetiver's compute_metrics over one season's scored rows: one row per metric (index, n,
    metric, estimate).

    compute_metrics cuts [first, first + period) windows while first < last date, so rows that
    all share one date (a season) give no window and no metrics at all. A sentinel row dated at
    the window's end, outside it, opens exactly the one window that holds every row of the season.
    """
    from vetiver import compute_metrics

    start = season_start(season)
    frame = pd.DataFrame({"truth": rows["truth"], "estimate": rows["estimate"], "index": start})
    sentinel = pd.DataFrame({"truth": [0.0], "estimate": [0.0], "index": [start + SEASON_PERIOD]})
    metric_set = _metric_set()
    with np.errstate(all="ignore"):
        computed = compute_metrics(
            pd.concat([frame, sentinel], ignore_index=True),
            "index",
            SEASON_PERIOD,
            metric_set,
            "truth",
            "estimate",
        )
    if len(computed) != len(metric_set) or set(computed["n"]) != {len(rows)}:
        raise RuntimeError(
            f"vetiver.compute_metrics gave {len(computed)} rows for season {season}'s "
            f"{len(rows)} rows; expected one per metric over all of them"
        )
    return computed


def season_metrics(scored: pd.DataFrame, model_version: str | None) -> pd.DataFrame:
    """RMSE, R^2 and MAE with the row count, per season, overall ("all") and per species."""
    parts = []
    for season, group in scored.groupby("season", sort=True):
        scopes = [(ALL_SPECIES, group), *group.groupby("species", sort=True)]
        for species, rows in scopes:
            computed = vetiver_season_metrics(rows, int(season))
            parts.append(
                pd.DataFrame(
                    {
                        "model_version": model_version,
                        "season": int(season),
                        "species": species,
                        "metric": computed["metric"].map(METRIC_NAMES),
                        "estimate": computed["estimate"].astype(float),
                        "n_rows": computed["n"].astype(int),
                        "index": computed["index"],
                    }
                )
            )
    return _stacked(parts)


def _stacked(parts: list[pd.DataFrame]) -> pd.DataFrame:
    """Metric rows one under the other; no rows (but the columns) when there are none."""
    parts = [part for part in parts if not part.empty]
    empty = pd.DataFrame(columns=[*METRIC_COLUMNS, "index"])
    return pd.concat(parts, ignore_index=True) if parts else empty


def scored_season_metrics(
    con: duckdb.DuckDBPyConnection,
    table: str,
    predictor: LinearPredictor,
    seasons: list[int],
    model_version: str | None,
) -> pd.DataFrame:
    """season_metrics of each season's scored rows, fetched one season at a time: vetiver needs
    the rows in pandas, and a season at 10^8 rows is ~3 million of them; several seasons at once
    would multiply that."""
    return _stacked(
        [
            season_metrics(
                scored_rows(con, table, predictor, f"{SEASON} = {int(s)}"), model_version
            )
            for s in seasons
        ]
    )


def metric_values(rows: pd.DataFrame) -> dict:
    """One scope's metric rows as {metric: value rounded to 4 places (None for NaN), "rows": n}."""
    values = {
        m: (None if math.isnan(v) else round(float(v), 4))
        for m, v in zip(rows["metric"], rows["estimate"], strict=True)
    }
    return {**values, "rows": int(rows["n_rows"].iloc[0])}


def metrics_summary(metrics: pd.DataFrame) -> dict:
    """{"overall": {metric: value, "rows": n}, "by_species": {species: {...}}}, for metadata."""
    overall = metrics[metrics["species"] == ALL_SPECIES]
    species = metrics[metrics["species"] != ALL_SPECIES]
    return {
        "overall": metric_values(overall) if len(overall) else {},
        "by_species": {name: metric_values(rows) for name, rows in species.groupby("species")},
    }


def _replace_rows(con, table: str, frame: pd.DataFrame, columns: list[str]) -> None:
    """Replace the table's rows of each (model_version, season) in frame by frame's rows: scoring
    a season again never doubles it. One transaction, done again if another run's commit to the
    same table won the race (a lake's concurrent writers)."""

    def replace() -> None:
        with transaction(con):
            con.execute(
                f"DELETE FROM {table} WHERE (model_version, season) IN "
                "(SELECT DISTINCT model_version, season FROM incoming_rows)"
            )
            con.execute(
                f"INSERT INTO {table} ({', '.join(columns)}) "
                f"SELECT {', '.join(columns)} FROM incoming_rows"
            )

    con.register("incoming_rows", frame[columns])
    try:
        retry_conflicts(replace)
    finally:
        con.unregister("incoming_rows")


def metrics_table(metrics: pd.DataFrame) -> list[dict]:
    """Metric rows side by side, for people: one row per season, version and species with its
    rows, RMSE, R^2 and MAE."""
    if metrics.empty:
        return []
    keys = ["season", "model_version", "species"]
    wide = metrics.pivot_table(index=keys, columns="metric", values="estimate", aggfunc="first")
    rows = metrics.groupby(keys)["n_rows"].first()
    return wide.join(rows).reset_index().to_dict("records")


def write_metrics(con: duckdb.DuckDBPyConnection, metrics: pd.DataFrame) -> None:
    _replace_rows(con, tables.METRICS, metrics, METRIC_COLUMNS)


def write_drift(con: duckdb.DuckDBPyConnection, drift: pd.DataFrame) -> None:
    _replace_rows(con, tables.DRIFT, drift, DRIFT_COLUMNS)


def monitoring_history(con: duckdb.DuckDBPyConnection) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Every metric and drift row recorded so far (empty frames before the first, also on a
    warehouse from before monitoring: a read never creates a table)."""
    if not table_exists(con, tables.METRICS):
        return pd.DataFrame(columns=METRIC_COLUMNS), pd.DataFrame(columns=DRIFT_COLUMNS)
    metrics = con.execute(
        f"SELECT * FROM {tables.METRICS} ORDER BY season, model_version, species, metric"
    ).df()
    drift = con.execute(
        f"SELECT * FROM {tables.DRIFT} ORDER BY season, model_version, feature"
    ).df()
    return metrics, drift


def metrics_for_pin(con: duckdb.DuckDBPyConnection, seasons: list[int]) -> pd.DataFrame:
    """Every version's metric rows of these seasons, in vetiver's shape (index, n, metric,
    estimate) plus model_version and species: what pin_metrics upserts by date index."""
    if not seasons:
        return pd.DataFrame(columns=["index", "n", "metric", "estimate"])
    listed = ", ".join(str(int(s)) for s in seasons)
    return con.execute(
        f"SELECT make_date(season, 1, 1)::TIMESTAMP AS index, n_rows AS n, metric, estimate, "
        f"model_version, species, season FROM {tables.METRICS} WHERE season IN ({listed}) "
        "ORDER BY season, model_version, species, metric"
    ).df()


# --- input drift -----------------------------------------------------------------------------


def training_profile(frame: pd.DataFrame) -> dict:
    """The training data's distribution of each feature, kept in the pin's metadata: numeric
    features as their quintile edges and each bin's share, categorical ones as their shares."""
    numeric = {}
    for name in NUMERIC:
        values = frame[name].astype(float).to_numpy()
        edges = sorted(set(np.quantile(values, QUINTILES).round(6).tolist()))
        bins = np.searchsorted(np.array(edges), values, side="left")  # edges strictly below
        shares = np.bincount(bins, minlength=len(edges) + 1) / len(values)
        numeric[name] = {"edges": edges, "shares": [round(float(s), 6) for s in shares]}
    categorical = {
        name: {
            str(k): round(float(v), 6) for k, v in frame[name].value_counts(normalize=True).items()
        }
        for name in CATEGORICAL
    }
    return {"rows": len(frame), "numeric": numeric, "categorical": categorical}


def psi(expected: dict, actual: dict) -> float:
    """Population stability index: sum over bins of (actual - expected) * ln(actual / expected)."""
    total = 0.0
    for key in sorted(set(expected) | set(actual), key=str):
        e = max(float(expected.get(key, 0.0)), PSI_FLOOR)
        a = max(float(actual.get(key, 0.0)), PSI_FLOOR)
        total += (a - e) * math.log(a / e)
    return total


def drift_status(value: float, warn: float, block: float) -> str:
    return "block" if value > block else "warn" if value > warn else "ok"


def _season_shares(con, table: str, expression: str, where: str) -> dict[int, dict]:
    """season -> {value of expression: share of that season's complete rows}."""
    rows = con.execute(
        f"SELECT {SEASON}, {expression} AS v, count(*) FROM {table} "
        f"WHERE {COMPLETE} AND ({where}) GROUP BY ALL ORDER BY ALL"
    ).fetchall()
    counts: dict[int, dict] = {}
    for season, value, n in rows:
        counts.setdefault(int(season), {})[value] = n
    return {s: {k: n / sum(c.values()) for k, n in c.items()} for s, c in counts.items()}


def feature_drift(
    con: duckdb.DuckDBPyConnection,
    table: str,
    profile: dict,
    where: str,
    model_version: str,
    warn: float,
    block: float,
) -> pd.DataFrame:
    """PSI per season and feature of the complete rows meeting `where` against `profile`."""
    records = []
    for name, reference in profile.get("numeric", {}).items():
        bin_sql = " + ".join(f"({quote(name)} > {e!r})::INTEGER" for e in reference["edges"]) or "0"
        expected = dict(enumerate(reference["shares"]))
        for season, shares in _season_shares(con, table, bin_sql, where).items():
            records.append((season, name, "numeric", expected, shares))
    for name, expected in profile.get("categorical", {}).items():
        for season, shares in _season_shares(con, table, quote(name), where).items():
            records.append((season, name, "categorical", expected, shares))
    rows = []
    for season, name, kind, expected, shares in sorted(records, key=lambda r: (r[0], r[1])):
        value = psi(expected, shares)
        rows.append(
            {
                "model_version": model_version,
                "season": season,
                "feature": name,
                "kind": kind,
                "statistic": "psi",
                "value": round(value, 6),
                "status": drift_status(value, warn, block),
                "shares": json.dumps(
                    {str(k): round(v, 4) for k, v in shares.items()}, sort_keys=True
                ),
            }
        )
    return pd.DataFrame(rows, columns=DRIFT_COLUMNS)


def drift_findings(drift: pd.DataFrame, status: str) -> list[str]:
    """One line per feature and season at `status` ("warn" or "block")."""
    hits = drift[drift["status"] == status]
    return [
        f"{r.feature} in season {r.season}: PSI {r.value:.3f}" for r in hits.itertuples(index=False)
    ]


# --- champion and challenger -----------------------------------------------------------------


def holdout_rmse(
    con: duckdb.DuckDBPyConnection,
    table: str,
    holdout: Holdout,
    predictors: dict[str, LinearPredictor],
) -> tuple[dict[str, float], int]:
    """Each predictor's RMSE (g) on the held-out rows every one of them can score; how many."""
    known = " AND ".join(known_categories_sql(p.spec) for p in predictors.values())
    errors = [f"sqrt(avg(({TARGET} - ({prediction_sql(p)})) ** 2))" for p in predictors.values()]
    *values, n = first_row(
        con,
        f"SELECT {', '.join(errors)}, count(*) FROM {table} "
        f"WHERE {COMPLETE} AND {known} AND {holdout.sql()}",
    )
    pairs = zip(predictors, values, strict=True)
    return {v: (None if r is None else float(r)) for v, r in pairs}, int(n)


@dataclass
class Decision:
    promoted: bool
    champion: str  # the champion after the decision
    challenger: str
    previous_champion: str | None
    reason: str
    figures: dict

    def to_metadata(self) -> dict:
        return {
            "promoted": self.promoted,
            "champion": self.champion,
            "challenger": self.challenger,
            "previous_champion": self.previous_champion,
            "reason": self.reason,
            "figures": self.figures,
        }


def decide_promotion(
    challenger: str,
    champion: str | None,
    rmse: dict[str, float | None],
    holdout_rows: int,
    season: int | None,
    tolerance: float,
    blocking_drift: list[str],
) -> Decision:
    """Promote the challenger unless it is worse than the champion beyond `tolerance` (relative
    RMSE on the newest season's held-out rows) or a feature drifted above the blocking threshold."""
    if champion is None:
        return Decision(
            True, challenger, challenger, None, "no champion yet: the first version", {}
        )
    challenger_rmse, champion_rmse = rmse.get(challenger), rmse.get(champion)
    figures = {
        "season": season,
        "holdout_rows": holdout_rows,
        "challenger_rmse": _rounded(challenger_rmse),
        "champion_rmse": _rounded(champion_rmse),
        "tolerance": tolerance,
        "allowed_rmse": _rounded(champion_rmse * (1 + tolerance)) if champion_rmse else None,
        "blocking_drift": blocking_drift,
    }
    problems = []
    if not holdout_rows or challenger_rmse is None or champion_rmse is None:
        problems.append(f"no held-out rows of season {season} both versions can score")
    elif challenger_rmse > champion_rmse * (1 + tolerance):
        problems.append(
            f"challenger RMSE {challenger_rmse:.1f} g on {holdout_rows} held-out rows of season "
            f"{season} is worse than the champion's {champion_rmse:.1f} g beyond the tolerance "
            f"of {tolerance:.1%} (allowed {champion_rmse * (1 + tolerance):.1f} g)"
        )
    if blocking_drift:
        problems.append("input drift above the blocking threshold: " + "; ".join(blocking_drift))
    if problems:
        reason = "champion kept: " + "; ".join(problems)
        return Decision(False, champion, challenger, champion, reason, figures)
    reason = (
        f"promoted: challenger RMSE {challenger_rmse:.1f} g against the champion's "
        f"{champion_rmse:.1f} g on {holdout_rows} held-out rows of season {season} "
        f"(tolerance {tolerance:.1%}), no blocking drift"
    )
    return Decision(True, challenger, challenger, champion, reason, figures)


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def blocking_drift(con: duckdb.DuckDBPyConnection, champion: str, season: int) -> list[str]:
    """The champion's features that drifted above the blocking threshold in `season`."""
    if not table_exists(con, tables.DRIFT):
        return []
    drift = con.execute(
        f"SELECT * FROM {tables.DRIFT} WHERE model_version = ? AND season = ? ORDER BY feature",
        [champion, int(season)],
    ).df()
    return drift_findings(drift, "block")


def challenge(
    con: duckdb.DuckDBPyConnection,
    table: str,
    challenger: dict,
    champion: dict | None,
    tolerance: float,
) -> Decision:
    """The promotion decision between two pinned versions' facts (their metadata)."""
    if champion is None:
        return decide_promotion(challenger["version"], None, {}, 0, None, tolerance, [])
    holdout = Holdout.from_metadata(challenger)
    if holdout is None:  # pinned before versions kept a held-out season: nothing to compare on
        return decide_promotion(
            challenger["version"], champion["version"], {}, 0, None, tolerance, []
        )
    predictors = {f["version"]: predictor_from_facts(f) for f in (challenger, champion)}
    rmse, n = holdout_rmse(con, table, holdout, predictors)
    blocking = blocking_drift(con, champion["version"], holdout.season)
    return decide_promotion(
        challenger["version"], champion["version"], rmse, n, holdout.season, tolerance, blocking
    )


# --- what the champion is monitored on, and what a new version records -----------------------


@dataclass
class SeasonsMonitored:
    model_version: str | None
    seasons: list[int]
    metrics: pd.DataFrame
    drift: pd.DataFrame
    note: str


def monitor_champion(
    con: duckdb.DuckDBPyConnection, table: str, facts: dict | None, warn: float, block: float
) -> SeasonsMonitored:
    """Score every season after the champion's training data with it, and measure those seasons'
    input drift against its training data; both are written to their tables."""
    if facts is None:
        return _nothing_monitored(None, "no model version yet: nothing to monitor")
    version = facts["version"]
    if not facts.get("seasons") or "training_profile" not in facts:
        return _nothing_monitored(version, f"version {version} records no training seasons")
    after = f"{SEASON} > {max(facts['seasons'])}"
    seasons = seasons_where(con, table, after)
    if not seasons:
        note = f"no season after {max(facts['seasons'])}, the champion's newest, yet"
        return _nothing_monitored(version, note)
    predictor = predictor_from_facts(facts)
    metrics = scored_season_metrics(con, table, predictor, seasons, facts["version"])
    drift = feature_drift(
        con, table, facts["training_profile"], after, facts["version"], warn, block
    )
    write_metrics(con, metrics)
    write_drift(con, drift)
    note = f"version {facts['version']} scored on season(s) {', '.join(map(str, seasons))}"
    return SeasonsMonitored(facts["version"], seasons, metrics, drift, note)


def _nothing_monitored(version: str | None, note: str) -> SeasonsMonitored:
    return SeasonsMonitored(
        version, [], pd.DataFrame(columns=METRIC_COLUMNS), pd.DataFrame(columns=DRIFT_COLUMNS), note
    )


def training_facts(
    con: duckdb.DuckDBPyConnection,
    table: str,
    holdout: Holdout,
    held: str,
    census: SeasonCensus,
    predictor: LinearPredictor,
    frame: pd.DataFrame,
    trained_by: str,
) -> dict:
    """What a new version's pin records for monitoring and its model card: seasons, rows left out
    and why, metrics on the held-out rows, the training data's distribution, who trained it.
    `held`: mark_held_out's condition for the holdout; `census`: the table's season_census."""
    metrics = season_metrics(scored_rows(con, table, predictor, held), None)
    seasons, rows = training_rows(con, census, holdout)
    return {
        "seasons": seasons,
        "holdout": holdout.to_metadata(),
        "rows": rows,
        "holdout_metrics": metrics_summary(metrics),
        "training_profile": training_profile(frame),
        "trained_by": trained_by,
    }
