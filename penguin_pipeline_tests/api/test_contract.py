"""The API's contract: its OpenAPI document says every status each operation can answer, with the
body's schema, and schemathesis finds no answer that breaks it (all of its checks, no 5xx), with a
key of each scope and without one.

In-process over the ASGI app (no server to start: several hundred requests in seconds). The
pytest plugin (`schemathesis.pytest.from_fixture`) breaks on this pytest ("'Function' object has
no attribute '_nodeid'"), so each operation's hypothesis strategy is driven directly.
"""

from __future__ import annotations

from collections import Counter

import pytest
import schemathesis
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, seed, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.config import SchemathesisConfig

from penguin_pipeline.api.app import create_app
from penguin_pipeline.settings import load_settings

from .conftest import KEYS, KEYS_ENV, auth

SEED = 20261206
EXAMPLES = {
    "POST /predict": 100,
    "PUT /admin/version": 50,
}  # where inputs matter most; every other operation gets:
DEFAULT_EXAMPLES = 25
# schemathesis' own list of refusals it expects for invalid data, plus 413: a batch over the
# limit is invalid data (the schema's maxItems) and 413 is the HTTP answer for "too large".
REFUSING = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429"]


@pytest.fixture(scope="module")
def app(board_factory):
    path, _ = board_factory("contract")
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    # A batch limit small enough that generated lists cross it (413) as often as they stay within
    return create_app(
        load_settings({**env, "PENGUIN_MODEL_POLL_SECONDS": "0", "PENGUIN_API_MAX_BATCH": "5"})
    )


def schema_for(app, key: str | None):
    """The document as schemathesis loads it, sending `key` the way the document says (bearer).
    With a key, the security header itself is not fuzzed: the examples go to the operations'
    inputs (the run without a key fuzzes the header)."""
    config = {"checks": {"negative_data_rejection": {"expected-statuses": REFUSING}}}
    if key is not None:
        config["auth"] = {"openapi": {"api_key": {"bearer": KEYS[key]}}}
        config["generation"] = {"with-security-parameters": False}
    return schemathesis.openapi.from_asgi(
        "/openapi.json", app, config=SchemathesisConfig.from_dict(config)
    )


def fuzz(operation, mode: GenerationMode, examples: int, seen: Counter) -> None:
    @seed(SEED)
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode))
    def check(case):
        seen[operation.label, case.call_and_validate().status_code] += 1  # every built-in check

    try:
        check()
    except Unsatisfiable:  # nothing to make invalid (no parameters, no body)
        assert mode == GenerationMode.NEGATIVE


@pytest.mark.parametrize("key", ["predict", "admin", "both", None])
def test_schemathesis_finds_every_answer_documented_and_no_server_error(app, key):
    schema, seen = schema_for(app, key), Counter()
    operations = [result.ok() for result in schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            fuzz(operation, mode, EXAMPLES.get(operation.label, DEFAULT_EXAMPLES), seen)
    assert sum(seen.values()) >= 150 and not any(status >= 500 for _, status in seen)
    secured = {op.label for op in operations} - {"GET /ping", "GET /health"}
    answered = {label: {status for lab, status in seen if lab == label} for label in secured}
    # The fuzzing reached what each key may and may not do, not only one kind of refusal.
    if key is None:  # (a body that cannot be read is refused before the key is looked at)
        assert all(401 in codes and not codes & {200, 404, 409} for codes in answered.values())
    predicts, pins = answered["POST /predict"], answered["PUT /admin/version"]
    assert ({200, 413, 422} <= predicts) == (key in ("predict", "both"))
    assert ({404, 400} <= pins) == (key in ("admin", "both"))
    assert (403 in predicts) == (key == "admin") and (403 in pins) == (key == "predict")


def test_every_secured_operation_documents_its_refusals_with_a_body_schema(app):
    doc = TestClient(app).get("/openapi.json").json()
    assert doc["components"]["securitySchemes"]["api_key"] == {
        "type": "http",
        "scheme": "bearer",
        "description": "Authorization: Bearer <key> (or Key <key>), or X-API-Key: <key>",
    }
    expected = {
        ("/predict", "post"): {"200", "401", "403", "413", "422"},
        ("/metadata", "get"): {"200", "401", "403"},
        ("/model-card", "get"): {"200", "401", "403", "404", "422", "503"},
        ("/admin/version", "put"): {"200", "400", "401", "403", "404", "409", "422", "503"},
        ("/admin/version", "delete"): {"200", "401", "403", "409"},
        ("/admin/reload", "post"): {"200", "401", "403", "409"},
        ("/metrics", "get"): {"200", "401", "403"},
        ("/ping", "get"): {"200"},
        ("/health", "get"): {"200"},
    }
    for (path, method), statuses in expected.items():
        responses = doc["paths"][path][method]["responses"]
        assert set(responses) == statuses, (path, method)
        for status, answer in responses.items():
            assert answer["content"], (path, method, status)  # each with a body schema
            for body in answer["content"].values():
                assert body["schema"], (path, method, status)
    unauthorized = doc["paths"]["/predict"]["post"]["responses"]["401"]
    assert "WWW-Authenticate" in unauthorized["headers"]


def test_pinning_a_version_that_does_not_exist_is_404_and_degrades_nothing(app):
    client = TestClient(app)
    before = client.get("/health").json()
    for version in ("20990101T000000Z-zzzzz", "../board", "0"):
        answer = client.put("/admin/version", json={"version": version}, headers=auth("admin"))
        assert answer.status_code == 404 and "no such version" in answer.json()["detail"]
    assert client.get("/health").json() == before
    status = client.get("/admin/status", headers=auth("admin")).json()
    assert status["pinned_version"] is None and status["last_error"] is None
    card = client.get("/model-card?version=../board", headers=auth("predict"))
    assert card.status_code == 404 and "no such version" in card.json()["detail"]
    typo = client.get("/model-card?verison=x", headers=auth("predict"))
    assert typo.status_code == 422 and typo.json()["detail"][0]["loc"] == ["query", "verison"]
