"""The app in-process: every route secured or explicitly public, the OpenAPI document and the docs
pages from FastAPI itself (offline, a typical penguin as the example), readable refusals."""

from __future__ import annotations

import json

import anyio.from_thread
import pytest
from fastapi.routing import APIRoute, iter_route_contexts
from fastapi.testclient import TestClient
from starlette.routing import Mount

from penguin_pipeline.api.app import create_app
from penguin_pipeline.api.keys import PUBLIC, SCOPES
from penguin_pipeline.settings import load_settings

from .conftest import KEYS, KEYS_ENV, auth, write_version

ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


@pytest.fixture(scope="module")
def app(board_factory):
    path, _ = board_factory("routes")
    env = {
        "PENGUIN_BOARD": str(path),
        "PENGUIN_API_KEYS": KEYS_ENV,
        "PENGUIN_MODEL_POLL_SECONDS": "0",
    }
    return create_app(load_settings({**env, "PENGUIN_API_MAX_BATCH": "50"}))


@pytest.fixture(scope="module")
def client(app):
    with TestClient(app) as c:
        yield c


def declared_scopes(dependant) -> set[str]:
    return set(dependant.own_oauth_scopes or []).union(
        *map(declared_scopes, dependant.dependencies)
    )


def checked_itself(route) -> set[str]:
    """The scopes of a route that calls the key ring itself (/predict, for speed): its document's
    requirement; the next test shows the route refuses a request without a key."""
    security = (route.openapi_extra or {}).get("security") or [{}]
    return set(security[0].get("api_key", []))


def test_every_route_declares_a_scope_or_is_marked_public(app):
    checked = []
    for route in iter_route_contexts(app.routes):
        original = route.original_route
        if isinstance(original, APIRoute):
            if original.endpoint.__module__ == "fastapi_offline.core":
                continue  # the docs pages themselves (Swagger UI, ReDoc): public by nature
            scopes = (declared_scopes(route.dependant) | checked_itself(route)) & set(SCOPES)
            public = route.openapi_extra == PUBLIC
            assert scopes or public, (
                f"{route.methods} {route.path} declares no scope and is not public"
            )
            assert not (scopes and public), f"{route.path} is both public and scoped"
            checked.append((route.path, "public" if public else ",".join(sorted(scopes))))
        else:  # Starlette's: only FastAPI's own document and the docs' static files may be here
            assert route.path == app.openapi_url or (
                isinstance(original, Mount) and route.path == "/docs-static"
            ), f"unexpected route {route.path}"
    assert ("/predict", "predict") in checked and ("/admin/reload", "admin") in checked
    assert ("/health", "public") in checked and ("/ping", "public") in checked


def test_without_a_key_every_scoped_route_is_401_and_public_ones_answer(app, client):
    for route in iter_route_contexts(app.routes):
        if not isinstance(route.original_route, APIRoute) or route.openapi_extra == PUBLIC:
            continue
        if route.original_route.endpoint.__module__ == "fastapi_offline.core":
            continue
        for method in route.methods - {"HEAD"}:
            assert client.request(method, route.path).status_code == 401, (method, route.path)
    for path in (
        "/ping",
        "/health",
        "/docs",
        "/redoc",
        "/openapi.json",
        "/docs-static/swagger-ui.css",
    ):
        assert client.get(path).status_code == 200, path
    assert client.get("/", follow_redirects=False).headers["location"] == "docs"


def test_the_openapi_document_is_fastapis_with_the_served_models_inputs(app, client):
    doc = client.get("/openapi.json").json()
    served = app.state.holder.current
    assert (
        doc["info"]["version"] == served.version
        and "Batch limit: 50 records" in doc["info"]["description"]
    )
    predict = doc["paths"]["/predict"]["post"]
    assert predict["security"] == [{"api_key": ["predict"]}]
    assert doc["paths"]["/admin/reload"]["post"]["security"] == [{"api_key": ["admin"]}]
    assert (
        doc["paths"]["/ping"]["get"]["security"] == [] == doc["paths"]["/health"]["get"]["security"]
    )
    assert doc["components"]["securitySchemes"]["api_key"]["scheme"] == "bearer"
    body = predict["requestBody"]["content"]["application/json"]
    record, batch = body["schema"]["anyOf"]
    assert record["properties"]["species"]["enum"] == ["Adelie", "Chinstrap", "Gentoo"]
    # The shipped data's bills span 32.1-59.6 mm: the accepted range is a tenth wider each side.
    assert (record["properties"]["bill_length_mm"]["minimum"], batch["maxItems"]) == (29.3, 50)
    example = body["example"]
    assert example == served.predictor.spec.example and example["bill_length_mm"] > 29.3  # typical
    assert client.post("/predict", json=example, headers=auth("predict")).status_code == 200
    assert set(predict["responses"]) >= {"200", "413", "422"}


def test_the_document_follows_a_new_version(app, client, board_factory, fitted):
    board = app.state.holder.board
    version = write_version(board, fitted, delta=5, tag="newer")
    assert client.post("/admin/reload", headers=auth("admin")).json()["model_version"] == version
    assert client.get("/openapi.json").json()["info"]["version"] == version


@pytest.mark.parametrize(
    "body, status, where, words",
    [
        (
            {**ROW, "species": "Emperor"},
            422,
            ["body", "species"],
            "'Adelie', 'Chinstrap' or 'Gentoo'",
        ),
        (
            [ROW, {**ROW, "bill_length_mm": 90}],
            422,
            ["body", 1, "bill_length_mm"],
            "less than or equal to 62.4",  # 59.6 mm, the longest trained-on bill, plus 2.75
        ),
        ([ROW] * 51, 413, ["body"], "limit is 50"),
    ],
)
def test_refusals_name_the_row_the_field_and_what_was_expected(client, body, status, where, words):
    answer = client.post("/predict", json=body, headers=auth("predict"))
    detail = answer.json()["detail"]
    assert answer.status_code == status and detail[0]["loc"] == where and words in detail[0]["msg"]


def test_a_body_beyond_the_size_limit_is_413_before_it_is_parsed(client):
    huge = b"[" + b" " * (50 * 512 + 70_000) + b"]"
    assert client.post("/predict", content=huge, headers=auth("predict")).status_code == 413


def test_a_body_sent_in_chunks_is_measured_as_it_streams(client):
    """No Content-Length (chunked transfer): counted chunk by chunk, refused once over the limit."""

    def chunks(padding: int):
        yield b"["
        yield from [b" " * 1000] * (padding // 1000)
        yield json.dumps(ROW).encode() + b"]"

    for padding, status in [(1000, 200), (50 * 512 + 70_000, 413)]:
        answer = client.post("/predict", content=chunks(padding), headers=auth("predict"))
        assert "content-length" not in answer.request.headers
        assert answer.status_code == status, answer.text


def test_a_client_gone_before_its_body_is_complete_is_a_counted_refusal(app, client):
    """The connection closed half-way through the body: a 400 counted as client_disconnected in
    the metrics, not a server error."""
    messages = iter(
        [{"type": "http.request", "body": b'[{"species": ', "more_body": True}]
        + [{"type": "http.disconnect"}]
    )
    sent = []

    async def receive():
        return next(messages)

    async def send(message):
        sent.append(message)

    headers = [(k.lower().encode(), v.encode()) for k, v in auth("predict").items()]
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": "POST",
        "scheme": "http",
        "path": "/predict",
        "raw_path": b"/predict",
        "root_path": "",
        "query_string": b"",
        "headers": headers,
        "server": ("testserver", 80),
        "client": ("testclient", 50000),
    }
    # in a loop of its own thread, as TestClient runs the app: this thread may have one running
    with anyio.from_thread.start_blocking_portal() as portal:
        portal.call(app, scope, receive, send)
    assert sent[0]["type"] == "http.response.start" and sent[0]["status"] == 400, sent
    metrics = client.get("/metrics", headers=auth("admin")).text
    assert 'penguin_api_refused_requests_total{reason="client_disconnected"} 1.0' in metrics


def test_keys_are_never_in_an_answer(client):
    answer = client.post("/predict", json=ROW, headers={"X-API-Key": KEYS["admin"]})
    assert answer.status_code == 403 and KEYS["admin"] not in answer.text
