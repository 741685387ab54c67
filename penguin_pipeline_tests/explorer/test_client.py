"""The explorer's conversation with the API and what the page says, without a browser."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from penguin_pipeline.explorer import view
from penguin_pipeline.explorer.client import ApiClient, ApiProblem

from ..processes import ROOT, free_port

ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 50.1}


def test_the_inputs_come_from_the_served_version(client_for, api):
    app, _ = api
    known = client_for("predict").inputs()
    by_name = {f.name: f for f in known.fields}
    assert [f.label for f in known.fields] == ["Species", "Sex", "Bill length (mm)"]
    assert by_name["species"].categories == ("Adelie", "Chinstrap", "Gentoo")
    assert by_name["sex"].categories == ("female", "male")
    spec = app.state.holder.current.predictor.spec
    assert (by_name["bill_length_mm"].low, by_name["bill_length_mm"].high) == spec.bounds[
        "bill_length_mm"
    ]
    assert known.model_version == app.state.holder.current.version and known.is_champion


def test_a_prediction_is_the_apis_number_to_the_gram(client_for, api):
    _, http = api
    direct = http.post("/predict", json=ROW, headers={"X-API-Key": "test-predict-key-1"}).json()
    outcome = view.predict(client_for("predict"), ROW)
    assert outcome.problem is None and outcome.prediction.grams == direct["predict"][0]
    assert view.grams(outcome.prediction) == f"{direct['predict'][0]:,.0f} g"
    lines = view.version_lines(outcome.prediction, client_for("predict").inputs())
    assert lines[0] == f"Model version {direct['model_version']} (the champion)"
    assert lines[1] == f"Data snapshot {direct['data_snapshot']}"


def test_a_refused_input_is_said_field_by_field(client_for):
    outcome = view.predict(client_for("predict"), {**ROW, "bill_length_mm": 90, "sex": "x"})
    fields = dict(outcome.fields)
    assert outcome.prediction is None and set(fields) == {"sex", "bill_length_mm"}
    assert "less than or equal to 62.4 (got 90)" in fields["bill_length_mm"]
    assert "Bill length (mm): Input should be less than or equal to 62.4" in outcome.problem
    assert outcome.problem.startswith("The API cannot predict this input. Sex: ")


@pytest.mark.parametrize(
    "which, words",
    [
        (None, "requires a key and the explorer has none"),
        ("not-a-key", "refused the explorer's key (the API key is not valid)"),
        ("admin", "not allowed to do this: this API key does not have the 'predict' scope"),
    ],
)
def test_a_refused_key_is_a_sentence(client_for, which, words):
    outcome = view.predict(client_for(which), ROW)
    assert outcome.prediction is None and words in outcome.problem
    assert "not-a-key" not in outcome.problem  # the key itself is never shown


def test_an_api_that_does_not_answer_is_named():
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    outcome = view.predict(ApiClient(url, "some-key"), ROW)
    assert outcome.problem == (
        f"The prediction API at {url} does not answer (connection refused). "
        "The explorer asks again at your next change."
    )
    with pytest.raises(ApiProblem, match="does not answer"):
        ApiClient(url).inputs()


def test_admin_actions_need_an_admin_key(client_for, api):
    app, _ = api
    assert not client_for("predict").is_admin() and not client_for(None).is_admin()
    assert client_for("both").is_admin()
    said = view.reload(client_for("both"))
    assert said == f"Reloaded (unchanged): serving version {app.state.holder.current.version}."
    refused = view.reload(client_for("predict"))
    assert refused.startswith("The explorer's key is not allowed") and "'admin' scope" in refused


def test_an_open_api_gives_no_admin_to_an_explorer_without_a_key(board_factory):
    from fastapi.testclient import TestClient

    from penguin_pipeline.api.app import create_app
    from penguin_pipeline.settings import load_settings

    path, _ = board_factory("explorer_open")
    app = create_app(load_settings({"PENGUIN_BOARD": str(path), "PENGUIN_MODEL_POLL_SECONDS": "0"}))
    with TestClient(app) as http:
        client = ApiClient("http://testserver", None, http=http)
        assert client.inputs().model_version and not client.is_admin()


def test_the_prediction_is_placed_among_its_species_and_sex(client_for, summary_records):
    rows = client_for("predict").summary()
    assert rows == summary_records
    gentoo_male = next(r for r in rows if (r["species"], r["sex"]) == ("Gentoo", "male"))
    mean, sd = gentoo_male["mean_body_mass_g"], gentoo_male["sd_body_mass_g"]
    placed = view.place(rows, "Gentoo", "male", mean + sd)
    assert placed.z == pytest.approx(1.0) and placed.n == gentoo_male["n_body_mass_g"]
    assert {g["sex"] for g in placed.groups} == {"female", "male"}
    said = view.describe(placed, "Gentoo", "male")
    assert f"{mean + sd:,.0f} g is 1.0 standard deviations above the mean of the " in said
    assert f"{gentoo_male['n_body_mass_g']} male Gentoo penguins measured" in said
    assert view.place(rows, "Emperor", "male", 4000.0) is None
    assert "no measured male Emperor penguins" in view.describe(None, "Emperor", "male")
    html = str(view.figure(placed))
    assert html.count('class="pf-band2"') == 2 == html.count('class="pf-band1"')  # per sex
    assert html.count('class="pf-prediction"') == 1 and "male (n=" in html
    # The diamond sits one standard deviation right of the mean: as far as the 1-sd band's edge.
    band = re.search(r'pf-chosen.*?pf-band1" style="left: ([\d.]+)%; width: ([\d.]+)%', html, re.S)
    left, width = map(float, band.groups())
    prediction = float(re.search(r'pf-prediction" style="left: ([\d.]+)%', html).group(1))
    assert prediction == pytest.approx(left + width, abs=0.02)


def test_the_explorer_never_loads_the_model_the_board_or_the_warehouse():
    code = (
        "import sys; import penguin_pipeline.explorer.app as a; a.create_app();"
        "print(sorted(m for m in ('pins', 'duckdb', 'vetiver', 'sklearn') if m in sys.modules))"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_a_version_that_is_not_the_champion_says_so(board_factory, fitted):
    from fastapi.testclient import TestClient

    from penguin_pipeline.api.app import create_app
    from penguin_pipeline.settings import load_settings
    from penguin_pipeline.storage import boards

    from ..api.conftest import KEYS_ENV, write_version
    from ..api.test_champion import decide

    path, board = board_factory("explorer_not_champion")
    first = boards.newest_version(board, boards.MODEL_PIN).version
    second = write_version(board, fitted, delta=25.0)
    decide(board, champion=second, challenger=second, promoted=True)
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    app = create_app(load_settings({**env, "PENGUIN_MODEL_VERSION": first}))  # pinned: not it
    with TestClient(app) as http:
        client = ApiClient("http://testserver", "test-predict-key-1", http=http)
        outcome = view.predict(client, ROW)
        lines = view.version_lines(outcome.prediction, client.inputs())
    assert lines[0] == f"Model version {first} (not the champion; the champion is {second})"


def test_an_api_that_accepts_but_never_answers_is_said_after_the_timeout():
    import socket

    with socket.socket() as listener:  # takes connections, never answers: a hung server
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        outcome = view.predict(ApiClient(url, "some-key", timeout=0.5), ROW)
    assert outcome.problem.startswith(
        f"The prediction API at {url} does not answer (no answer within 0.5 s)."
    )
