"""GET /metrics: Prometheus' text format, scope admin; requests and latency by route template and
status, predictions in rows, refusals by reason, the served version as labels, the refresh age."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient
from prometheus_client.parser import text_string_to_metric_families

from penguin_pipeline.api.app import create_app
from penguin_pipeline.settings import load_settings

from .conftest import KEYS_ENV, auth, write_version

ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


@pytest.fixture
def client(board_factory):
    path, _ = board_factory("metrics")
    env = {"PENGUIN_BOARD": str(path), "PENGUIN_API_KEYS": KEYS_ENV}
    app = create_app(load_settings({**env, "PENGUIN_MODEL_POLL_SECONDS": "0"}))
    with TestClient(app) as c:
        yield c


def scrape(client) -> dict[tuple, float]:
    """{(sample name, sorted labels): value} from one GET /metrics."""
    answer = client.get("/metrics", headers=auth("admin"))
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(answer.text)
        for s in family.samples
    }


def value(samples: dict, name: str, **labels) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_metrics_need_the_admin_scope(client):
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers=auth("predict")).status_code == 403
    assert client.get("/metrics", headers=auth("both")).status_code == 200


def test_requests_predictions_and_refusals_are_counted(client):
    before = scrape(client)
    assert client.post("/predict", json=ROW, headers=auth("predict")).status_code == 200
    assert client.post("/predict", json=[ROW] * 3, headers=auth("predict")).status_code == 200
    bad = {**ROW, "species": "Emperor"}
    assert client.post("/predict", json=bad, headers=auth("predict")).status_code == 422
    assert client.post("/predict", json=ROW).status_code == 401
    assert client.post("/predict", json=ROW, headers={"X-API-Key": "nope"}).status_code == 401
    assert client.post("/predict", json=ROW, headers=auth("admin")).status_code == 403
    assert client.get("/no/such/path/12345").status_code == 404
    after = scrape(client)

    def grew(name: str, **labels) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    ok = {"route": "/predict", "method": "POST", "status": "200"}
    assert grew("penguin_api_requests_total", **ok) == 2
    assert grew("penguin_api_request_duration_seconds_count", **ok) == 2
    assert grew("penguin_api_request_duration_seconds_sum", **ok) > 0
    assert grew("penguin_api_predictions_total") == 4  # rows, not requests
    assert grew("penguin_api_requests_total", route="/predict", method="POST", status="401") == 2
    # a path that matches no route is one series, whatever the path
    assert grew("penguin_api_requests_total", route="unmatched", method="GET", status="404") == 1
    assert not any("/no/such/path" in str(labels) for _, labels in after)
    refused = {
        reason: grew("penguin_api_refused_requests_total", reason=reason)
        for reason in ("invalid_input", "no_key", "invalid_key", "missing_scope", "not_found")
    }
    assert refused == dict.fromkeys(refused, 1)


def test_the_served_version_and_refresh_age_follow_a_swap(client, fitted):
    holder = client.app.state.holder
    first = scrape(client)
    old = holder.current
    labels = {"version": old.version, "data_snapshot": old.data_snapshot, "pinned": "false"}
    assert value(first, "penguin_api_served_model", **labels) == 1
    assert 0 <= value(first, "penguin_api_model_refresh_age_seconds") < 60
    assert value(first, "penguin_api_model_degraded") == 0

    holder.last_success -= 600  # as if the board had not been read for ten minutes
    assert value(scrape(client), "penguin_api_model_refresh_age_seconds") >= 600
    new = write_version(holder.board, fitted, delta=3, tag="swapped")
    assert client.post("/admin/reload", headers=auth("admin")).json()["model_version"] == new
    assert value(scrape(client), "penguin_api_model_refresh_age_seconds") < 60
    served = [labels for name, labels in scrape(client) if name == "penguin_api_served_model"]
    assert served == [(("data_snapshot", "swapped"), ("pinned", "false"), ("version", new))]


def test_fastapi_traces_and_logs_are_on_only_with_a_tracer_provider_set(monkeypatch):
    """No provider (this process): FastAPI's OpenTelemetry is off, so requests do not ask for one;
    a deployment's provider (any set one, here OpenTelemetry's no-op) turns traces and logs on."""
    from opentelemetry import trace

    from penguin_pipeline.api.app import telemetry

    assert telemetry() == {"tracing": False, "logs": False, "metrics": False}
    monkeypatch.setattr(trace, "get_tracer_provider", trace.NoOpTracerProvider)
    assert telemetry() == {"tracing": True, "logs": True, "metrics": False}
