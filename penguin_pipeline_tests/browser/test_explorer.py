# ruff: noqa: F811  (pytest fixtures imported from the API tests are parameters here)
"""The model explorer in Chromium, with Shiny's own Playwright controllers, against a real API
(uvicorn) on a real board: the click path against the API's own answer, refusals said on the page,
the API stopped and restarted, and what each kind of key may do."""

from __future__ import annotations

import os

import pytest
import requests

from penguin_pipeline.storage import boards

from ..api.conftest import (  # noqa: F401  (fixtures shared with the API tests)
    KEYS,
    KEYS_ENV,
    Server,
    board_factory,
    fitted,
    fitted_without_chinstrap,
    summary_records,
    write_version,
)
from ..processes import ROOT, free_port
from .conftest import ARTIFACTS
from .explorer_app import running_explorer
from .test_materialize_all import UPDATE_SCREENSHOTS_ENV

pytestmark = [pytest.mark.browser, pytest.mark.integration]
# README's screenshot, rewritten with PENGUIN_UPDATE_SCREENSHOTS=1
SCREENSHOT = ROOT / "docs" / "images" / "explorer.png"


def served_api(board_factory, summary_records, tmp, name: str, port=None, **env) -> Server:
    path, board = board_factory(name)
    if summary_records is not None:
        boards.pin_summary(board, summary_records)
    server = Server(path, tmp / f"{name}-api.log", port, PENGUIN_API_KEYS=KEYS_ENV, **env)
    server.board, server.board_path = board, path
    return server


@pytest.fixture(scope="module")
def api(board_factory, summary_records, tmp_path_factory):
    server = served_api(
        board_factory,
        summary_records,
        tmp_path_factory.mktemp("explorer"),
        "explorer_api",
        PENGUIN_MODEL_POLL_SECONDS="0",
    )
    yield server
    server.stop()


@pytest.fixture(scope="module")
def predict_only(api, tmp_path_factory):
    """The explorer as `make app` starts it with a predict-only key."""
    log = tmp_path_factory.mktemp("explorer_app") / "explorer.log"
    with running_explorer(api.url, KEYS["predict"], log) as url:
        yield url


def api_answer(api_url: str, record: dict) -> dict:
    headers = {"Authorization": f"Bearer {KEYS['predict']}"}
    answer = requests.post(f"{api_url}/predict", json=record, headers=headers, timeout=10)
    assert answer.status_code == 200, answer.text
    return answer.json()


def choose(page, record: dict) -> None:
    from shiny.playwright import controller

    controller.InputSelect(page, "field_species").set(record["species"])
    controller.InputSelect(page, "field_sex").set(record["sex"])
    controller.InputNumeric(page, "field_bill_length_mm").set(str(record["bill_length_mm"]))


def expect_prediction(page, api_url: str, record: dict) -> dict:
    """The page shows the API's number for `record`, to the gram, and the version that answered."""
    from playwright.sync_api import expect
    from shiny.playwright import controller

    answer = api_answer(api_url, record)
    controller.OutputText(page, "grams").expect_value(f"{answer['predict'][0]:,.0f} g")
    expect(page.locator("#version-lines")).to_contain_text(answer["model_version"])
    expect(page.locator("#version-lines")).to_contain_text(answer["data_snapshot"])
    expect(page.locator("#problem-text")).to_have_count(0)
    return answer


def test_the_click_path_shows_the_apis_prediction_with_a_predict_only_key(
    browsing, api, predict_only
):
    from playwright.sync_api import expect
    from shiny.playwright import controller

    page = browsing.page
    page.goto(predict_only)
    # The choices and the range are the served version's, told by the API.
    controller.InputSelect(page, "field_species").expect_choices(["Adelie", "Chinstrap", "Gentoo"])
    controller.InputSelect(page, "field_sex").expect_choices(["female", "male"])
    controller.InputNumeric(page, "field_bill_length_mm").expect_max("62.4")
    for record in (
        {"species": "Gentoo", "sex": "male", "bill_length_mm": 50.1},
        {"species": "Adelie", "sex": "female", "bill_length_mm": 36.7},
        {"species": "Chinstrap", "sex": "male", "bill_length_mm": 51.3},
    ):
        choose(page, record)
        expect_prediction(page, api.url, record)
        expect(page.locator("#version-lines")).to_contain_text("(the champion)")
        expect(page.locator("#placement_text")).to_contain_text(
            f"{record['sex']} {record['species']} penguins measured"
        )
    expect(page.locator("#placement .pf-chosen .pf-prediction")).to_be_visible()
    # A predict-only key: no admin control anywhere on the page.
    expect(page.get_by_text("Enable admin actions")).to_have_count(0)
    expect(page.locator("#reload")).to_have_count(0)
    assert browsing.blocked == []  # nothing fetched beyond this machine
    # Like the Materialize-all test: README's screenshot is rewritten only when asked, so that a
    # test run leaves the work tree as it found it; otherwise it goes to the test artifacts.
    shot = (
        SCREENSHOT if os.environ.get(UPDATE_SCREENSHOTS_ENV) == "1" else ARTIFACTS / SCREENSHOT.name
    )
    shot.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=str(shot), full_page=True)


def test_an_input_the_api_refuses_is_said_by_its_field_and_the_next_one_predicts(
    browsing, api, predict_only
):
    from playwright.sync_api import expect
    from shiny.playwright import controller

    page = browsing.page
    page.goto(predict_only)
    record = {"species": "Gentoo", "sex": "female", "bill_length_mm": 90}
    choose(page, record)
    problem = page.locator("#problem-text")
    expect(problem).to_contain_text(
        "Bill length (mm): Input should be less than or equal to 62.4 (got 90"
    )
    controller.OutputText(page, "grams").expect_value("-")
    choose(page, {**record, "bill_length_mm": 46.5})
    expect_prediction(page, api.url, {**record, "bill_length_mm": 46.5})


def test_the_api_stopped_is_said_and_its_return_predicts_without_a_reload(
    browsing,
    board_factory,
    summary_records,
    tmp_path,
):
    from playwright.sync_api import expect

    server = served_api(board_factory, summary_records, tmp_path, "explorer_restart")
    port, page = server.port, browsing.page
    try:
        with running_explorer(server.url, KEYS["predict"], tmp_path / "explorer.log") as url:
            page.goto(url)
            record = {"species": "Adelie", "sex": "male", "bill_length_mm": 40.2}
            choose(page, record)
            expect_prediction(page, server.url, record)
            server.stop()
            choose(page, {**record, "sex": "female"})
            expect(page.locator("#problem-text")).to_have_text(
                f"The prediction API at {server.url} does not answer (connection refused). "
                "The explorer asks again at your next change."
            )
            server = Server(
                server.board_path, tmp_path / "api-again.log", port, PENGUIN_API_KEYS=KEYS_ENV
            )
            record = {**record, "sex": "male", "bill_length_mm": 41.0}
            choose(page, record)  # the same page: no reload
            expect_prediction(page, server.url, record)
    finally:
        server.stop()


def test_an_admin_key_offers_reload_only_behind_the_switch_and_the_form_follows_the_version(
    browsing,
    board_factory,
    summary_records,
    fitted,
    fitted_without_chinstrap,
    tmp_path,
):
    from playwright.sync_api import expect
    from shiny.playwright import controller

    server = served_api(
        board_factory, summary_records, tmp_path, "explorer_admin", PENGUIN_MODEL_POLL_SECONDS="0"
    )
    page = browsing.page
    try:
        with running_explorer(server.url, KEYS["both"], tmp_path / "explorer.log") as url:
            page.goto(url)
            record = {"species": "Gentoo", "sex": "male", "bill_length_mm": 48.0}
            choose(page, record)
            first = expect_prediction(page, server.url, record)
            switch = controller.InputSwitch(page, "admin_on")
            switch.expect_checked(False)
            expect(page.locator("#reload")).to_be_hidden()  # not clickable until asked for
            newer = write_version(server.board, fitted, delta=100.0, tag="newer")
            switch.set(True)
            page.locator("#reload").click()
            expect(page.locator("#admin_said")).to_have_text(
                f"Reloaded (swapped): serving version {newer}."
            )
            choose(page, {**record, "bill_length_mm": 48.5})
            second = expect_prediction(page, server.url, {**record, "bill_length_mm": 48.5})
            assert second["model_version"] == newer != first["model_version"]
            # A version trained on other categories: the form follows it, no edit of the app.
            other = write_version(server.board, fitted_without_chinstrap)
            page.locator("#reload").click()
            expect(page.locator("#admin_said")).to_have_text(
                f"Reloaded (swapped): serving version {other}."
            )
            species = controller.InputSelect(page, "field_species")
            species.expect_choices(["Adelie", "Gentoo"])
            choose(page, {**record, "bill_length_mm": 49.0})
            expect_prediction(page, server.url, {**record, "bill_length_mm": 49.0})
    finally:
        server.stop()


def test_a_key_the_api_does_not_know_is_said_and_gets_no_admin_control(browsing, api, tmp_path):
    from playwright.sync_api import expect

    page = browsing.page
    with running_explorer(api.url, "not-a-key-of-this-api", tmp_path / "explorer.log") as url:
        page.goto(url)
        expect(page.locator("#problem-text")).to_have_text(
            f"The prediction API at {api.url} refused the explorer's key (the API key is not "
            "valid): start it with PENGUIN_API_KEY set to a key the API knows."
        )
        expect(page.get_by_text("Enable admin actions")).to_have_count(0)
        assert "not-a-key-of-this-api" not in page.content()


def test_an_explorer_started_before_the_api_fills_its_form_when_the_api_comes(
    browsing, board_factory, summary_records, tmp_path
):
    from playwright.sync_api import expect
    from shiny.playwright import controller

    port = free_port()
    api_url, page = f"http://127.0.0.1:{port}", browsing.page
    with running_explorer(api_url, KEYS["predict"], tmp_path / "explorer.log") as url:
        page.goto(url)
        expect(page.locator("#problem-text")).to_contain_text(
            f"The prediction API at {api_url} does not answer (connection refused)."
        )
        # The model is pinned, the lookup table not yet (a pipeline still running).
        server = served_api(board_factory, None, tmp_path, "explorer_late", port=port)
        try:  # the page asks again on its own: no reload, no input needed
            controller.InputSelect(page, "field_species").expect_choices(
                ["Adelie", "Chinstrap", "Gentoo"]
            )
            record = {"species": "Chinstrap", "sex": "female", "bill_length_mm": 47.5}
            choose(page, record)
            expect_prediction(page, server.url, record)
            placement = page.locator("#placement_text")
            expect(placement).to_contain_text("no penguin_summary pin on the board yet (make run)")
            boards.pin_summary(server.board, summary_records)
            expect(placement).to_contain_text("female Chinstrap penguins measured")
            expect(page.locator("#placement .pf-chosen .pf-prediction")).to_be_visible()
        finally:
            server.stop()
