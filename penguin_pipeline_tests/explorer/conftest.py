"""The explorer's logic against the real API app in-process (FastAPI's TestClient is an
httpx.Client): a real board with a model version and the pinned lookup table, keys on."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from penguin_pipeline.api.app import create_app
from penguin_pipeline.explorer.client import ApiClient
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..api.conftest import (  # noqa: F401  (fixtures, shared with the API tests)
    KEYS,
    KEYS_ENV,
    board_factory,
    fitted,
    summary_records,
)


@pytest.fixture(scope="module")
def api(board_factory, summary_records):  # noqa: F811
    path, board = board_factory("explorer_unit")
    boards.pin_summary(board, summary_records)
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    app = create_app(load_settings({**env, "PENGUIN_MODEL_POLL_SECONDS": "0"}))
    with TestClient(app) as http:
        yield app, http


@pytest.fixture
def client_for(api):
    """An ApiClient with the named key (None: no key) on the in-process API."""
    app, _ = api

    def make(which: str | None) -> ApiClient:
        http = TestClient(app)
        return ApiClient("http://testserver", KEYS.get(which, which), http=http)

    return make
