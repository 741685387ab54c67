"""The routes the model explorer asks: /inputs (what the served version accepts, and whether it is
the champion) and /summary (the species x sex lookup table from its pin), both behind the predict
scope like /predict."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from penguin_pipeline.api.app import create_app
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from .conftest import KEYS_ENV, auth, write_version
from .test_champion import decide


@pytest.fixture
def served(board_factory, request):
    path, board = board_factory(f"explorer_{request.node.name[:40]}")
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    app = create_app(load_settings({**env, "PENGUIN_MODEL_POLL_SECONDS": "0"}))
    with TestClient(app) as client:
        yield client, board


@pytest.mark.parametrize("path", ["/inputs", "/summary"])
def test_the_explorer_routes_need_the_predict_scope(served, path):
    client, _ = served
    assert client.get(path).status_code == 401
    assert client.get(path, headers=auth("admin")).status_code == 403
    assert client.get(path, headers={"X-API-Key": "not-a-key"}).status_code == 401


def test_inputs_are_the_served_versions_spec(served):
    client, board = served
    answer = client.get("/inputs", headers=auth("predict")).json()
    newest = boards.newest_version(board, boards.MODEL_PIN).version
    fields = {f["name"]: f for f in answer["fields"]}
    assert fields["species"]["categories"] == ["Adelie", "Chinstrap", "Gentoo"]
    assert fields["sex"]["categories"] == ["female", "male"]
    # The shipped bills span 32.1-59.6 mm; the accepted range is a tenth wider on each side.
    assert (fields["bill_length_mm"]["min"], fields["bill_length_mm"]["max"]) == (29.3, 62.4)
    assert answer["model_version"] == newest and answer["is_champion"]
    assert answer["example"]["species"] in fields["species"]["categories"]
    # What /inputs offers, /predict takes, answering with the same version.
    predicted = client.post("/predict", json=answer["example"], headers=auth("predict")).json()
    assert predicted["model_version"] == answer["model_version"]


def test_inputs_say_when_the_served_version_is_not_the_champion(served, fitted):
    client, board = served
    first = boards.newest_version(board, boards.MODEL_PIN).version
    second = write_version(board, fitted, delta=50.0)
    decide(board, champion=second, challenger=second, promoted=True)
    pinned = client.put("/admin/version", json={"version": first}, headers=auth("admin"))
    assert pinned.status_code == 200
    answer = client.get("/inputs", headers=auth("predict")).json()
    assert answer["model_version"] == first and answer["champion_version"] == second
    assert answer["is_champion"] is False
    client.delete("/admin/version", headers=auth("admin"))
    answer = client.get("/inputs", headers=auth("predict")).json()
    assert answer["model_version"] == second and answer["is_champion"] is True


def test_summary_is_404_until_pinned_then_follows_the_newest_pin(served, summary_records):
    client, board = served
    missing = client.get("/summary", headers=auth("predict"))
    assert missing.status_code == 404 and "make run" in missing.json()["detail"]
    first = boards.pin_summary(board, summary_records)
    answer = client.get("/summary", headers=auth("predict")).json()
    assert answer == {"version": first, "rows": summary_records}
    assert boards.pin_summary(board, summary_records) is None  # same rows: no new version
    changed = [{**summary_records[0], "n_penguins": 1}, *summary_records[1:]]
    second = boards.pin_summary(board, changed)
    answer = client.get("/summary", headers=auth("predict")).json()
    assert answer["version"] == second != first and answer["rows"][0]["n_penguins"] == 1
