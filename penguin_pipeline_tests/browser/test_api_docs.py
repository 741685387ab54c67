"""The prediction API's docs in a browser that cannot leave this machine: they render and work."""

from __future__ import annotations

import json
import re

import pytest
import requests
from playwright.sync_api import expect

from penguin_pipeline.storage import boards

from ..api.conftest import Server

pytestmark = [pytest.mark.browser, pytest.mark.integration]


@pytest.fixture(scope="module")
def api(pipeline_outputs, tmp_path_factory):
    """The API (`make serve`'s command) on a free port, serving the pipeline's model pin."""
    board = pipeline_outputs.data / "board"
    server = Server(
        board, tmp_path_factory.mktemp("api") / "api.log", PENGUIN_MODEL_POLL_SECONDS="0"
    )
    server.facts = boards.latest_model_facts(boards.board_from_url(str(board)))
    yield server
    server.stop()


@pytest.mark.parametrize("path", ["/docs", "/"], ids=["docs", "root"])
def test_docs_render_offline_and_try_it_out_predicts(browsing, api, path):
    page = browsing.page
    browsing.server_logs.append(api.log_path)
    page.goto(api.url + path)

    expect(
        page.get_by_role("heading", name=re.compile(r"^penguin_model model API"))
    ).to_be_visible()
    operation = page.get_by_role("button", name=re.compile(r"^POST \/predict\b"))
    expect(operation).to_be_visible()
    operation.click()
    page.get_by_role("button", name="Try it out").click()
    example = json.loads(
        page.get_by_role("tabpanel", name="Edit Value").get_by_role("textbox").input_value()
    )
    assert set(example) == {"species", "sex", "bill_length_mm"}, example

    with page.expect_response(
        lambda r: r.url == f"{api.url}/predict" and r.request.method == "POST"
    ) as sent:
        page.get_by_role("button", name="Execute").click()
    assert sent.value.status == 200

    answer = page.get_by_role("row").filter(has=page.get_by_role("heading", name="Response body"))
    expect(answer.get_by_role("cell").first).to_have_text("200")
    shown = json.loads(answer.get_by_role("code").first.inner_text())
    direct = requests.post(f"{api.url}/predict", json=example, timeout=10).json()
    assert shown == direct
    assert len(shown["predict"]) == 1 and 2000 < shown["predict"][0] < 7000
    assert shown["model_version"] == api.facts["version"]

    assert any("/docs-static/swagger-ui-bundle.js" in r for r in browsing.requests), (
        browsing.requests
    )
    assert browsing.blocked == [], f"the page tried to leave the machine: {browsing.blocked}"
