"""Monitoring, drift and champion/challenger on three synthetic field seasons.

Seasons 2011 and 2012 come from one population. In 2013 the bill lengths shift by 6 mm, in one of
two ways: a new caliper measures every bill 6 mm longer (the birds and their mass are unchanged,
so the served model is now biased), or the colony's birds really have longer bills (and are heavier
as the model expects, so it stays right). Every expected number is computed here with numpy and
the fitted scikit-learn pipelines, not read back from processing/monitoring.py.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from penguin_pipeline.processing import modeling, monitoring, tables

SEASONS = (2011, 2012, 2013)
SHIFTED = 2013
OFFSET_MM = 6.0
SPECIES = {"Adelie": (38.8, 3700.0), "Chinstrap": (48.8, 3730.0), "Gentoo": (47.5, 5070.0)}
ISLANDS = {"Adelie": "Torgersen", "Chinstrap": "Dream", "Gentoo": "Biscoe"}


def synthetic_season(
    year: int, rows: int, rng: np.random.Generator, shift: str = "caliper"
) -> pd.DataFrame:
    species = rng.choice(list(SPECIES), size=rows, p=[0.45, 0.2, 0.35])
    male = rng.random(rows) < 0.5
    bill_mean = np.array([SPECIES[s][0] for s in species]) + 3.0 * male
    longer = OFFSET_MM if year == SHIFTED and shift == "population" else 0.0
    bill = rng.normal(bill_mean + longer, 2.5)
    mass = np.array([SPECIES[s][1] for s in species]) + 450 * male + 40 * (bill - bill_mean)
    mass += rng.normal(0, 250, rows)
    measured = bill + (OFFSET_MM if year == SHIFTED and shift == "caliper" else 0.0)
    return pd.DataFrame(
        {
            "species": species,
            "island": [ISLANDS[s] for s in species],
            "bill_length_mm": measured.round(1),
            "bill_depth_mm": 17.0,
            "flipper_length_mm": 200,
            "body_mass_g": mass.round().astype(int),
            "sex": np.where(male, "male", "female"),
            "year": year,
        }
    )


def load_seasons(con, shift: str = "caliper"):
    rng = np.random.default_rng(20261130)
    frame = pd.concat([synthetic_season(y, 600, rng, shift) for y in SEASONS], ignore_index=True)
    con.register("synthetic", frame)
    con.execute(
        f"CREATE TABLE {tables.CLEAN} AS SELECT species, island, bill_length_mm, bill_depth_mm, "
        "flipper_length_mm::INTEGER AS flipper_length_mm, body_mass_g::INTEGER AS body_mass_g, "
        "sex, year::INTEGER AS year FROM synthetic"
    )
    con.unregister("synthetic")
    return con, frame


@pytest.fixture
def seasons(con):
    return load_seasons(con)


def champion_on(con, last_season: int) -> modeling.FittedModel:
    return modeling.fit_model(
        modeling.load_training_frame(con, tables.CLEAN, f"year > {last_season}")
    )


def expected_psi(reference: np.ndarray, season: np.ndarray) -> float:
    edges = np.unique(np.quantile(reference, np.arange(1, 5) / 5).round(6))
    bins = len(edges) + 1
    ref = np.bincount(np.digitize(reference, edges, right=True), minlength=bins) / len(reference)
    now = np.bincount(np.digitize(season, edges, right=True), minlength=bins) / len(season)
    ref, now = np.maximum(ref, 1e-4), np.maximum(now, 1e-4)
    return float(np.sum((now - ref) * np.log(now / ref)))


def test_drift_is_flagged_on_the_shifted_feature_and_season_only(seasons):
    con, frame = seasons
    champion = champion_on(con, 2011)
    profile = monitoring.training_profile(
        modeling.load_training_frame(con, tables.CLEAN, "year > 2011")
    )
    drift = monitoring.feature_drift(con, tables.CLEAN, profile, "year > 2011", "v1", 0.1, 0.25)
    flagged = drift[drift["status"] != "ok"][["season", "feature", "status"]].values.tolist()
    assert flagged == [[SHIFTED, "bill_length_mm", "block"]]
    reference = frame.loc[frame.year == 2011, "bill_length_mm"].to_numpy()
    for season in (2012, 2013):
        row = drift[(drift.season == season) & (drift.feature == "bill_length_mm")].iloc[0]
        later = frame.loc[frame.year == season, "bill_length_mm"].to_numpy()
        assert row.value == pytest.approx(expected_psi(reference, later), abs=1e-5)
    shares = frame[frame.year == 2013]["species"].value_counts(normalize=True)
    base = frame[frame.year == 2011]["species"].value_counts(normalize=True)
    psi = sum((shares[s] - base[s]) * math.log(shares[s] / base[s]) for s in SPECIES)
    row = drift[(drift.season == 2013) & (drift.feature == "species")].iloc[0]
    assert row.value == pytest.approx(psi, abs=1e-5) and row.status == "ok"
    assert champion.rows_used == 600


def test_metrics_per_season_and_species_degrade_in_the_shifted_season(seasons):
    con, frame = seasons
    champion = champion_on(con, 2011)
    scored = monitoring.scored_rows(con, tables.CLEAN, champion.predictor, "year > 2011")
    metrics = monitoring.season_metrics(scored, "v1").set_index(["season", "species", "metric"])
    for season in (2012, 2013):
        rows = frame[frame.year == season]
        for species, part in [("all", rows), *rows.groupby("species")]:
            truth = part["body_mass_g"].to_numpy(float)
            estimate = champion.pipeline.predict(part[["species", "sex", "bill_length_mm"]])
            error = truth - estimate
            expected = {
                "rmse": math.sqrt(np.mean(error**2)),
                "mae": np.mean(np.abs(error)),
                "r2": 1 - np.sum(error**2) / np.sum((truth - truth.mean()) ** 2),
            }
            for metric, value in expected.items():
                got = metrics.loc[(season, species, metric)]
                assert got["estimate"] == pytest.approx(value, rel=1e-9)
                assert got["n_rows"] == len(part) and got["model_version"] == "v1"
    rmse = metrics.xs(("all", "rmse"), level=("species", "metric"))["estimate"]
    assert rmse[2013] > 1.3 * rmse[2012]  # 6 mm x ~40 g/mm of bias on every bird


def test_seasons_are_scored_one_at_a_time_with_the_same_metrics(seasons, monkeypatch):
    con, _ = seasons
    predictor = champion_on(con, 2011).predictor
    together = monitoring.season_metrics(
        monitoring.scored_rows(con, tables.CLEAN, predictor, "year > 2011"), "v1"
    )
    fetched = []
    scored_rows = monitoring.scored_rows

    def spied(*args):
        rows = scored_rows(*args)
        fetched.append(sorted(set(rows["season"])))
        return rows

    monkeypatch.setattr(monitoring, "scored_rows", spied)
    apart = monitoring.scored_season_metrics(con, tables.CLEAN, predictor, [2012, 2013], "v1")
    assert fetched == [[2012], [2013]]
    pd.testing.assert_frame_equal(apart, together)


def test_one_season_alone_still_gets_its_metrics(seasons):
    """vetiver's compute_metrics returns nothing when every row shares one date: guarded."""
    con, _ = seasons
    scored = monitoring.scored_rows(
        con, tables.CLEAN, champion_on(con, 2011).predictor, "year = 2012"
    )
    metrics = monitoring.season_metrics(scored, "v1")
    assert sorted(set(metrics["metric"])) == ["mae", "r2", "rmse"]
    assert (metrics[metrics.species == "all"]["n_rows"] == 600).all()


def test_scoring_a_season_again_replaces_its_rows(seasons):
    con, _ = seasons
    scored = monitoring.scored_rows(
        con, tables.CLEAN, champion_on(con, 2011).predictor, "year > 2011"
    )
    metrics = monitoring.season_metrics(scored, "v1")
    monitoring.write_metrics(con, metrics)
    monitoring.write_metrics(con, metrics)
    stored, _ = monitoring.monitoring_history(con)
    assert len(stored) == len(metrics) == 2 * 4 * 3  # seasons x (all + 3 species) x metrics


def held_out(con, holdout: monitoring.Holdout) -> pd.DataFrame:
    return con.execute(f"SELECT * FROM {tables.CLEAN} WHERE {holdout.sql()}").df()


def rmse_of(fitted: modeling.FittedModel, rows: pd.DataFrame) -> float:
    estimate = fitted.pipeline.predict(rows[["species", "sex", "bill_length_mm"]])
    return math.sqrt(np.mean((rows["body_mass_g"].to_numpy(float) - estimate) ** 2))


def challenge(con, sample_rows: int, tolerance: float, block: float):
    """The champion trained on 2011-2012; a challenger on every season but 2013's held-out rows."""
    champion = champion_on(con, 2012)
    holdout = monitoring.Holdout(SHIFTED, 0.2, 42)
    sample = modeling.draw_training_sample(
        con, tables.CLEAN, sample_rows, seed=42, exclude=holdout.sql()
    )
    challenger = modeling.fit_model(sample.frame)
    predictors = {"champion": champion.predictor, "challenger": challenger.predictor}
    rmse, n = monitoring.holdout_rmse(con, tables.CLEAN, holdout, predictors)
    profile = monitoring.training_profile(
        modeling.load_training_frame(con, tables.CLEAN, "year > 2012")
    )
    drift = monitoring.feature_drift(
        con, tables.CLEAN, profile, f"year = {SHIFTED}", "champion", 0.1, block
    )
    decision = monitoring.decide_promotion(
        "challenger",
        "champion",
        rmse,
        n,
        SHIFTED,
        tolerance,
        monitoring.drift_findings(drift, "block"),
    )
    rows = held_out(con, holdout)
    return decision, rmse_of(champion, rows), rmse_of(challenger, rows), len(rows)


def test_the_holdout_is_a_share_of_the_newest_season_kept_out_of_training(seasons):
    con, _ = seasons
    holdout = monitoring.Holdout(SHIFTED, 0.2, 42)
    rows = held_out(con, holdout)
    assert set(rows["year"]) == {SHIFTED} and 80 < len(rows) < 160  # ~120 of 600
    training = modeling.load_training_frame(con, tables.CLEAN, holdout.sql())
    assert len(training) + len(rows) == 1800
    key = ["species", "sex", "bill_length_mm", "body_mass_g"]
    overlap = training.merge(rows[key], on=key)
    assert overlap.empty


def test_the_holdout_condition_means_season_and_bucket_also_negated_and_on_null(seasons):
    con, _ = seasons
    con.execute(f"INSERT INTO {tables.CLEAN} SELECT * REPLACE (NULL AS year) FROM {tables.CLEAN}")
    holdout = monitoring.Holdout(SHIFTED, 0.2, 42)
    content = ", ".join(f"{c}::VARCHAR" for c in monitoring.ROW_CONTENT)
    plain = f"(year = {SHIFTED} AND hash(concat_ws('|', {content}, '42')) % 10000 < 2000)"
    for form in ("{}", "NOT {}", "({}) IS NULL"):
        ours, theirs = form.format(holdout.sql()), form.format(plain)
        chosen, differ = con.execute(
            f"SELECT count(*) FILTER ({theirs}), count(*) FILTER (({ours}) IS DISTINCT FROM "
            f"({theirs})) FROM {tables.CLEAN}"
        ).fetchall()[0]
        assert chosen > 0 and differ == 0, form


def test_the_marked_holdout_is_true_on_exactly_the_holdouts_rows_also_negated(seasons):
    con, _ = seasons
    holdout = monitoring.Holdout(SHIFTED, 0.2, 42)
    for null_seasons in (False, True):  # without them its one lookup; with them, NULL where due
        if null_seasons:
            con.execute(
                f"INSERT INTO {tables.CLEAN} SELECT * REPLACE (NULL AS year) FROM {tables.CLEAN}"
            )
        marked = monitoring.mark_held_out(con, tables.CLEAN, holdout)
        assert ("CASE" in marked) == null_seasons
        for form in ("{}", "NOT {}", "({}) IS NULL"):
            ours, theirs = form.format(marked), form.format(holdout.sql())
            chosen, differ = con.execute(
                f"SELECT count(*) FILTER ({theirs}), count(*) FILTER (({ours}) IS DISTINCT FROM "
                f"({theirs})) FROM {tables.CLEAN}"
            ).fetchall()[0]
            assert differ == 0 and (chosen > 0 or form == "({}) IS NULL" and not null_seasons)


def test_the_training_rows_from_the_census_are_those_a_scan_counts(seasons):
    con, _ = seasons
    con.execute(f"UPDATE {tables.CLEAN} SET sex = NULL WHERE rowid % 17 = 0")  # some incomplete
    census = monitoring.season_census(con, tables.CLEAN)
    holdout = monitoring.newest_season_holdout(census, 0.2, 42)
    assert holdout.season == SHIFTED
    monitoring.mark_held_out(con, tables.CLEAN, holdout)
    complete, held = monitoring.COMPLETE, holdout.sql()
    per_season = con.execute(
        f"SELECT year, count(*), count(*) FILTER (WHERE NOT ({complete})), "
        f"count(*) FILTER (WHERE {complete} AND {held}), "
        f"count(*) FILTER (WHERE {complete} AND NOT {held}) FROM {tables.CLEAN} GROUP BY 1"
    ).fetchall()
    seasons, rows = monitoring.training_rows(con, census, holdout)
    assert seasons == sorted(s for s, *_, trained in per_season if trained)
    assert rows == {
        "rows_in_table": sum(r[1] for r in per_season),
        "missing_values": sum(r[2] for r in per_season),
        "held_out": sum(r[3] for r in per_season),
    }
    assert 0 < rows["missing_values"] and 80 < rows["held_out"] < 160


def test_a_better_challenger_is_promoted(seasons):
    con, _ = seasons
    decision, champion_rmse, challenger_rmse, n = challenge(con, 100_000, 0.02, block=10.0)
    assert challenger_rmse < champion_rmse  # it learnt the new caliper
    assert decision.promoted and decision.champion == "challenger"
    assert decision.figures["champion_rmse"] == pytest.approx(champion_rmse, abs=1e-3)
    assert decision.figures["challenger_rmse"] == pytest.approx(challenger_rmse, abs=1e-3)
    assert decision.figures["holdout_rows"] == n


def test_a_worse_challenger_is_kept_out_and_the_reason_has_the_figures(con):
    # The birds themselves changed, as the model expects: the champion stays right, and a
    # challenger trained on a 12-row sample (PENGUIN_SAMPLE_ROWS=12) is worse than it.
    con, _ = load_seasons(con, shift="population")
    decision, champion_rmse, challenger_rmse, _ = challenge(con, 12, 0.02, block=10.0)
    assert challenger_rmse > champion_rmse * 1.02
    assert not decision.promoted and decision.champion == "champion"
    assert f"{challenger_rmse:.1f} g" in decision.reason
    assert f"{champion_rmse:.1f} g" in decision.reason


def test_blocking_drift_keeps_even_a_better_challenger_out(seasons):
    con, _ = seasons
    decision, champion_rmse, challenger_rmse, _ = challenge(con, 100_000, 0.02, block=0.25)
    assert challenger_rmse < champion_rmse
    assert not decision.promoted
    assert "bill_length_mm in season 2013" in decision.reason


def test_the_first_version_becomes_champion():
    decision = monitoring.decide_promotion("v1", None, {}, 0, None, 0.02, [])
    assert decision.promoted and decision.champion == "v1"


def test_monitoring_settings_are_read_and_bad_values_named():
    from penguin_pipeline.settings import load_settings

    settings = load_settings({"PENGUIN_DRIFT_WARN": "0.2", "PENGUIN_PROMOTION_TOLERANCE": "0.05"})
    assert (settings.drift_warn, settings.drift_block) == (0.2, 0.25)
    assert (settings.promotion_tolerance, settings.holdout_share) == (0.05, 0.2)
    with pytest.raises(ValueError, match="PENGUIN_DRIFT_BLOCK='lots': expected a number"):
        load_settings({"PENGUIN_DRIFT_BLOCK": "lots"})
    with pytest.raises(ValueError, match="PENGUIN_DRIFT_BLOCK=0.05 is below PENGUIN_DRIFT_WARN"):
        load_settings({"PENGUIN_DRIFT_BLOCK": "0.05"})
    with pytest.raises(ValueError, match="PENGUIN_HOLDOUT_SHARE='1.5': expected a number from"):
        load_settings({"PENGUIN_HOLDOUT_SHARE": "1.5"})


def test_the_metrics_table_puts_each_scope_on_one_row():
    rows = [
        ("v1", 2010, "all", "rmse", 300.0, 120),
        ("v1", 2010, "all", "r2", 0.8, 120),
        ("v1", 2010, "Adelie", "rmse", 250.0, 50),
    ]
    metrics = pd.DataFrame(rows, columns=monitoring.METRIC_COLUMNS)
    table = monitoring.metrics_table(metrics)
    assert [(r["species"], r["n_rows"], r["rmse"]) for r in table] == [
        ("Adelie", 50, 250.0),
        ("all", 120, 300.0),
    ]
    assert table[1]["r2"] == 0.8 and math.isnan(table[0]["r2"])
    assert monitoring.metrics_table(metrics.iloc[:0]) == []
