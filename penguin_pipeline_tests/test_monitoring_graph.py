"""Monitoring and champion/challenger through the asset graph: the shipped seasons, then a new
field season landing."""

from __future__ import annotations

import html
import math
from pathlib import Path

import duckdb
import numpy as np

from penguin_pipeline import cli
from penguin_pipeline.storage import boards

from .test_graph import materialized


def board_of(settings):
    return boards.board_from_url(settings.board_url)


def test_a_new_season_is_scored_by_the_champion_before_a_challenger_is_decided(settings, instance):
    assert cli.run_pipeline(instance).success
    board = board_of(settings)
    first = boards.latest_decision(board)
    assert first["promoted"] and first["previous_champion"] is None  # the first version
    champion = first["champion"]
    assert not board.pin_exists(boards.METRICS_PIN)  # no season after its training data yet

    cli.new_season(rows=300, seed=7, settings=settings)
    result = cli.run_pipeline(instance)
    assert result.success, cli.failure_messages(result)
    assert {"model_monitoring", "penguin_model", "penguin_champion"} <= set(materialized(result))

    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        stored = con.execute(
            "SELECT species, metric, estimate, n_rows FROM model_metrics "
            "WHERE model_version = ? AND season = 2010",
            [champion],
        ).df()
        rows = con.execute(
            "SELECT species, sex, bill_length_mm, body_mass_g FROM penguins WHERE year = 2010 "
            "AND sex IS NOT NULL AND bill_length_mm IS NOT NULL AND body_mass_g IS NOT NULL"
        ).df()
        drift = con.execute(
            "SELECT feature, season FROM feature_drift WHERE model_version = ? ORDER BY feature",
            [champion],
        ).fetchall()
    pipeline = boards.read_model(board, version=champion).model
    estimate = pipeline.predict(rows[["species", "sex", "bill_length_mm"]])
    error = rows["body_mass_g"].to_numpy(float) - estimate
    overall = stored[stored.species == "all"].set_index("metric")
    assert abs(overall.loc["rmse", "estimate"] - math.sqrt(np.mean(error**2))) < 1e-6
    assert abs(overall.loc["mae", "estimate"] - np.mean(np.abs(error))) < 1e-6
    assert set(overall["n_rows"]) == {len(rows)}
    assert set(stored.species) == {"all", *rows["species"].unique()}
    assert drift == [("bill_length_mm", 2010), ("sex", 2010), ("species", 2010)]
    pinned = board.pin_read(boards.METRICS_PIN)
    assert len(pinned[pinned.model_version == champion]) == len(stored)  # vetiver's pin_metrics

    decision = boards.latest_decision(board)
    challenger = boards.latest_model_facts(board)["version"]
    assert decision["challenger"] == challenger != champion
    assert decision["figures"]["season"] == 2010 and decision["figures"]["holdout_rows"] > 0
    assert decision["champion"] == (challenger if decision["promoted"] else champion)
    page = html.unescape(Path(settings.report_url).read_text(encoding="utf-8"))
    assert decision["reason"] in page and "Model card" in page and "nan" not in page
    assert "Covers the field seasons 2007 to 2010" in page
