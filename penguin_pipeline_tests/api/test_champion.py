"""The API serves the champion the board names, follows a promotion without restart, and serves
each version's model card (JSON and HTML)."""

from __future__ import annotations

import copy

import duckdb
import pytest
from fastapi.testclient import TestClient

from penguin_pipeline.api.app import create_app
from penguin_pipeline.api.registry import ModelHolder
from penguin_pipeline.processing import cleaning, modeling, monitoring, tables
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..test_cleaning import load_shipped
from .conftest import KEYS_ENV, auth, write_version


def decide(board, champion: str, challenger: str, promoted: bool) -> None:
    boards.write_decision(
        board,
        {
            "promoted": promoted,
            "champion": champion,
            "challenger": challenger,
            "previous_champion": None,
            "reason": "set by the test",
            "figures": {},
        },
    )


def test_the_champion_is_served_and_a_promotion_reaches_the_running_api(board_factory, fitted):
    _, board = board_factory("champion")
    first = boards.newest_version(board, boards.MODEL_PIN).version
    second = write_version(board, fitted, delta=100.0)
    holder = ModelHolder(board)
    holder.refresh()
    assert holder.current.version == second  # no decision yet: the newest, as before champions
    decide(board, champion=first, challenger=second, promoted=False)
    assert holder.refresh()["outcome"] == "swapped" and holder.current.version == first
    third = write_version(board, fitted, delta=200.0)
    assert holder.refresh()["outcome"] == "unchanged"  # a challenger is not served by default
    decide(board, champion=third, challenger=third, promoted=True)
    assert holder.refresh()["outcome"] == "swapped" and holder.current.version == third
    assert holder.pin(second)["model_version"] == second  # any version on request, as before
    decide(board, champion=first, challenger=first, promoted=True)
    assert holder.refresh()["model_version"] == second


@pytest.fixture(scope="module")
def carded(tmp_path_factory):
    """A board whose version records what a card needs, as penguin_model pins it."""
    con = duckdb.connect()
    tables.ensure_schema(con)
    load_shipped(con)
    cleaning.rebuild_clean_table(con)
    holdout = monitoring.Holdout(2009, 0.2, 42)
    frame = modeling.load_training_frame(con, tables.CLEAN, holdout.sql())
    fitted = modeling.fit_model(frame)
    held = monitoring.mark_held_out(con, tables.CLEAN, holdout)
    census = monitoring.season_census(con, tables.CLEAN)
    fitted.monitoring = monitoring.training_facts(
        con, tables.CLEAN, holdout, held, census, fitted.predictor, frame, "the test"
    )
    complete = "sex IS NOT NULL AND body_mass_g IS NOT NULL AND bill_length_mm IS NOT NULL"
    held_out = con.execute(
        f"SELECT count(*), list(DISTINCT species ORDER BY species) FROM {tables.CLEAN} "
        f"WHERE {complete} AND {holdout.sql()}"
    ).fetchall()[0]
    con.close()
    path = tmp_path_factory.mktemp("carded") / "board"
    board = boards.board_from_url(str(path))
    old = write_version(board, copy.deepcopy(fitted), tag="older")
    version = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    decide(board, champion=version, challenger=version, promoted=True)
    return path, version, old, held_out, fitted


@pytest.fixture(scope="module")
def client(carded):
    path = carded[0]
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    with TestClient(create_app(load_settings({**env, "PENGUIN_MODEL_POLL_SECONDS": "0"}))) as c:
        yield c


def test_model_card_of_the_served_version(client, carded):
    _, version, _, (held_out, species), fitted = carded
    answer = client.get("/model-card", headers=auth("predict"))
    assert answer.status_code == 200
    card = answer.json()
    assert list(card) == [
        "model_details",
        "intended_use",
        "training_data",
        "features",
        "metrics",
        "monitoring",
        "limitations",
        "ethical_considerations",
    ]
    details = card["model_details"]
    assert details["version"] == version and details["champion"] is True
    assert details["trained_by"] == "the test" and details["data_snapshot"] == fitted.data_snapshot
    data = card["training_data"]
    assert data["seasons"] == [2007, 2008, 2009] and data["rows_in_table"] == 344
    excluded = {row["rows"] for row in data["rows_excluded"]}
    assert excluded == {344 - 333, held_out} and data["rows_used"] == 333 - held_out
    assert [f["name"] for f in card["features"]] == ["species", "sex", "bill_length_mm"]
    assert card["metrics"]["overall"]["rows"] == held_out
    assert sorted(card["metrics"]["by_species"]) == species
    assert card["monitoring"] == []  # no season after 2009 scored yet


def test_model_card_of_another_version_as_html_and_unknown_versions(client, carded):
    _, version, old, _, _ = carded
    html = client.get(f"/model-card?version={old}&format=html", headers=auth("predict"))
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    assert old in html.text and "Limitations" in html.text and "(not the champion)" in html.text
    missing = client.get("/model-card?version=nope", headers=auth("predict"))
    assert missing.status_code == 404 and "nope" in missing.json()["detail"]
    assert client.get("/model-card").status_code == 401
