"""The lookup table and the book's model, as plain functions."""

from __future__ import annotations

import dataclasses

import pandas as pd
import pytest

from penguin_pipeline.processing import modeling, summary, tables

from .test_cleaning import load_shipped


@pytest.fixture
def clean(con):
    from penguin_pipeline.processing import cleaning

    load_shipped(con)
    cleaning.rebuild_clean_table(con)
    return con


def test_summary_counts_add_up_to_the_clean_table(clean):
    rows = summary.build_summary_table(clean, tables.CLEAN, tables.SUMMARY)
    table = clean.execute(f"SELECT * FROM {tables.SUMMARY}").df()
    assert rows == len(table) and table["n_penguins"].sum() == 344
    gentoo_male = clean.execute(
        "SELECT avg(body_mass_g) FROM penguins WHERE species = 'Gentoo' AND sex = 'male'"
    ).fetchall()[0][0]
    rolled = summary.rollup(table, ["species", "sex"]).set_index(["species", "sex"])
    assert rolled.loc[("Gentoo", "male"), "mean_body_mass_g"] == pytest.approx(gentoo_male)
    assert summary.rollup(table, ["island"])["n_penguins"].tolist() == [168, 124, 52]


def test_book_model_on_the_complete_rows(clean):
    frame = modeling.load_training_frame(clean, tables.CLEAN)
    fitted = modeling.fit_model(frame)
    assert fitted.rows_used == 333
    assert fitted.r2 == pytest.approx(0.8555, abs=0.001)
    assert set(fitted.coefficients) == {
        "intercept",
        "species_Chinstrap",
        "species_Gentoo",
        "sex_male",
        "bill_length_mm",
    }
    prediction = fitted.pipeline.predict(
        pd.DataFrame([{"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}])
    )
    assert 5000 < prediction[0] < 6000


def test_snapshot_id_follows_the_data(clean):
    frame = modeling.load_training_frame(clean, tables.CLEAN)
    assert modeling.data_snapshot_id(frame) == modeling.data_snapshot_id(frame.copy())
    changed = frame.copy()
    changed.loc[0, "body_mass_g"] += 1
    assert modeling.data_snapshot_id(changed) != modeling.data_snapshot_id(frame)


def test_an_unchanged_frame_reuses_the_latest_pin(clean):
    frame = modeling.load_training_frame(clean, tables.CLEAN)
    latest = {"version": "v1", "data_snapshot": modeling.data_snapshot_id(frame), "predictor": {}}
    assert modeling.trained_on_same_data(latest, frame)
    # pinned before its coefficients travelled in its metadata: fitted once more
    old_format = {k: v for k, v in latest.items() if k != "predictor"}
    assert not modeling.trained_on_same_data(old_format, frame)
    assert not modeling.trained_on_same_data(latest, frame.iloc[1:])
    assert not modeling.trained_on_same_data(None, frame)


def test_prototype_is_a_typical_penguin_of_the_whole_frame_not_the_first_row(clean):
    frame = modeling.load_training_frame(clean, tables.CLEAN)
    prototype = modeling.representative_row(frame).iloc[0].to_dict()
    counts = frame.groupby(["species", "sex"]).size()
    assert counts[(prototype["species"], prototype["sex"])] == counts.max()  # most common kind
    kind = frame[(frame["species"] == prototype["species"]) & (frame["sex"] == prototype["sex"])]
    assert prototype["bill_length_mm"] == float(kind["bill_length_mm"].median())
    assert prototype["bill_length_mm"] > frame["bill_length_mm"].min()  # not a field's minimum


def test_r2_floor():
    assert modeling.r2_below_floor(0.85, 0.8) == []
    assert modeling.r2_below_floor(0.5, 0.8) == ["R^2 0.5000 is below the floor 0.8000"]


def test_the_report_is_drawn_again_only_when_its_inputs_change(clean, tmp_path):
    from penguin_pipeline.report.render import load_report_inputs, publish_if_changed
    from penguin_pipeline.storage import boards, locations

    summary.build_summary_table(clean, tables.CLEAN, tables.SUMMARY)
    board = boards.board_from_url(str(tmp_path / "board"))
    fitted = modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))
    boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    inputs = load_report_inputs(clean, board)
    reports = locations.open_location(str(tmp_path / "reports"))
    path = tmp_path / "reports" / "penguin_report.html"
    assert publish_if_changed(inputs, reports, board)
    assert inputs.model["version"] in path.read_text(encoding="utf-8")
    assert not publish_if_changed(inputs, reports, board)
    assert publish_if_changed(
        dataclasses.replace(inputs, model={**inputs.model, "version": "v2"}),
        reports,
        board,
    )
    assert "v2" in path.read_text(encoding="utf-8") and [p.name for p in path.parent.iterdir()] == [
        path.name
    ]
    assert boards.newest_version(board, boards.REPORT_PIN) is not None  # pinned beside the model


def test_the_species_and_sex_grain_pools_the_lookup_table_exactly(clean):
    summary.build_summary_table(clean, tables.CLEAN, tables.SUMMARY)
    table = clean.execute(f"SELECT * FROM {tables.SUMMARY}").df()
    records = {(r["species"], r["sex"]): r for r in summary.by_species_and_sex(table)}
    assert len(records) == 6  # 3 species x 2 sexes; penguins of unrecorded sex have no row
    direct = clean.execute(
        "SELECT species, sex, count(*), count(body_mass_g), avg(body_mass_g), "
        "stddev_samp(body_mass_g), stddev_samp(bill_length_mm) FROM penguins "
        "WHERE sex IS NOT NULL GROUP BY ALL"
    ).fetchall()
    for species, sex, n, n_mass, mean, sd, sd_bill in direct:
        got = records[(species, sex)]
        assert (got["n_penguins"], got["n_body_mass_g"]) == (n, n_mass)
        assert got["mean_body_mass_g"] == pytest.approx(mean, rel=1e-12)
        assert got["sd_body_mass_g"] == pytest.approx(sd, rel=1e-9)
        assert got["sd_bill_length_mm"] == pytest.approx(sd_bill, rel=1e-9)
