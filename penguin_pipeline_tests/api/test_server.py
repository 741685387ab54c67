"""The real server (uvicorn): vetiver's client, plain JSON, keys, new versions, fuzzing."""

from __future__ import annotations

import pandas as pd
import pytest
import requests
import schemathesis
import vetiver
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.generation import GenerationMode

from .conftest import KEYS, auth, corrupt, wait_for, write_version

pytestmark = pytest.mark.integration

ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


def served_version(server) -> str:
    return requests.get(server.url + "/admin/status", headers=auth("admin"), timeout=5).json()[
        "model_version"
    ]


def test_vetiver_client_works_including_body_without_json_content_type(keyed_server, fitted):
    # vetiver.predict posts a DataFrame as `data=` (no content type: vetiver-python issue 241).
    frame = pd.DataFrame([ROW, {"species": "Adelie", "sex": "female", "bill_length_mm": 38.0}])
    result = vetiver.predict(
        vetiver.vetiver_endpoint(keyed_server.url + "/predict"), frame, headers=auth("predict")
    )
    assert result["predict"].tolist() == fitted.pipeline.predict(frame).tolist()
    assert set(result["model_version"]) == {served_version(keyed_server)}
    one = vetiver.predict(
        keyed_server.url + "/predict", ROW, headers=auth("predict")
    )  # dict -> json=[...]
    assert one["predict"].tolist() == fitted.pipeline.predict(pd.DataFrame([ROW])).tolist()


def test_plain_json_one_record_says_which_model_answered(keyed_server, fitted):
    response = requests.post(
        keyed_server.url + "/predict", json=ROW, headers=auth("predict"), timeout=5
    )
    body = response.json()
    assert response.status_code == 200 and len(body["predict"]) == 1
    assert (
        body["model_version"] == response.headers["X-Model-Version"] == served_version(keyed_server)
    )
    assert body["data_snapshot"] == response.headers["X-Data-Snapshot"]


def test_vetiver_endpoints_keep_their_shapes(keyed_server):
    assert requests.get(keyed_server.url + "/ping", timeout=5).json() == {"ping": "pong"}  # public
    metadata = requests.get(
        keyed_server.url + "/metadata", headers=auth("predict"), timeout=5
    ).json()
    assert metadata["version"] == served_version(keyed_server) and "categories" in metadata["user"]
    prototype = requests.get(
        keyed_server.url + "/prototype", headers=auth("predict"), timeout=5
    ).json()
    assert set(prototype["properties"]) == {"species", "sex", "bill_length_mm"}
    assert requests.get(keyed_server.url + "/docs", timeout=5).status_code == 200


@pytest.mark.parametrize(
    "body, status, words",
    [
        (
            {"species": "Emperor", "sex": "male", "bill_length_mm": 45},
            422,
            "'Adelie', 'Chinstrap' or 'Gentoo'",
        ),
        ([], 422, "at least 1 item"),
        ([{**ROW, "bill_length_mm": -4}], 422, "greater than or equal to 29.3"),
        ([{**ROW, "bill_length_mm": "long"}], 422, "valid number"),
        ([{"species": "Gentoo"}], 422, "Field required"),
        ("{not json", 422, "not valid JSON"),
        ([ROW] * 2001, 413, "limit is 2000"),
    ],
)
def test_bad_input_gets_a_readable_4xx(keyed_server, body, status, words):
    kwargs = {"data": body} if isinstance(body, str) else {"json": body}
    response = requests.post(
        keyed_server.url + "/predict", headers=auth("predict"), timeout=10, **kwargs
    )
    assert response.status_code == status and words in response.text


def test_keys_and_scopes(keyed_server):
    url = keyed_server.url
    assert requests.post(url + "/predict", json=ROW, timeout=5).status_code == 401
    assert (
        requests.post(
            url + "/predict", json=ROW, headers={"X-API-Key": "nope"}, timeout=5
        ).status_code
        == 401
    )
    assert (
        requests.post(url + "/predict", json=ROW, headers=auth("admin"), timeout=5).status_code
        == 403
    )
    assert (
        requests.post(url + "/admin/reload", headers=auth("predict"), timeout=5).status_code == 403
    )
    assert requests.get(url + "/metadata", timeout=5).status_code == 401
    assert (
        requests.post(url + "/predict", json=ROW, headers=auth("both"), timeout=5).status_code
        == 200
    )
    log = keyed_server.log()
    assert "3 API key(s) configured" in log and not any(k in log for k in KEYS.values())


def test_follows_new_versions_pins_and_survives_a_corrupt_one(keyed_server, fitted):
    url, board = keyed_server.url, keyed_server.board
    base = requests.post(url + "/predict", json=ROW, headers=auth("predict"), timeout=5).json()[
        "predict"
    ][0]
    newer = write_version(board, fitted, delta=1000, tag="plus1000")
    assert wait_for(lambda: served_version(keyed_server) == newer)  # the poller found it
    answer = requests.post(url + "/predict", json=ROW, headers=auth("predict"), timeout=5).json()
    assert answer["model_version"] == newer and answer["data_snapshot"] == "plus1000"
    assert answer["predict"][0] == pytest.approx(base + 1000)

    broken = write_version(board, fitted, delta=2000, tag="broken")
    corrupt(keyed_server.board_path, broken)
    reload = requests.post(url + "/admin/reload", headers=auth("admin"), timeout=30)
    assert reload.status_code == 409 and reload.json()["last_error"]["version"] == broken
    assert served_version(keyed_server) == newer
    assert wait_for(lambda: f"cannot read penguin_model version {broken}" in keyed_server.log())

    pinned = requests.put(
        url + "/admin/version", json={"version": newer}, headers=auth("admin"), timeout=30
    )
    assert pinned.status_code == 200 and pinned.json()["pinned_version"] == newer
    latest = write_version(board, fitted, delta=3000, tag="plus3000")
    assert (
        requests.post(url + "/admin/reload", headers=auth("admin"), timeout=30).json()[
            "model_version"
        ]
        == newer
    )
    missing = requests.put(
        url + "/admin/version",
        json={"version": "20990101T000000Z-zzzzz"},
        headers=auth("admin"),
        timeout=30,
    )
    assert missing.status_code == 404 and "no such version" in missing.json()["detail"]
    assert served_version(keyed_server) == newer
    unpinned = requests.delete(url + "/admin/version", headers=auth("admin"), timeout=30).json()
    assert unpinned["model_version"] == latest and unpinned["pinned_version"] is None
    schema = requests.get(url + "/openapi.json", timeout=5).json()
    assert latest in schema["info"]["description"]


def test_fuzzing_the_openapi_never_gets_a_server_error(keyed_server):
    """schemathesis, from the API's own /openapi.json: valid and invalid data for every operation,
    no 5xx.

    (Its pytest plugin, `schemathesis.pytest.from_fixture`, breaks on this pytest: "'Function'
    object has no attribute '_nodeid'"; the operations' hypothesis strategies do the same work.)
    """
    schema = schemathesis.openapi.from_url(keyed_server.url + "/openapi.json")
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/ping",
        "/metadata",
        "/prototype",
        "/predict",
        "/admin/reload",
    }
    session = requests.Session()
    calls = []
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            examples = 50 if operation.path == "/predict" else 15  # /predict is where inputs matter

            @settings(
                max_examples=examples,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            @given(case=operation.as_strategy(generation_mode=mode))
            def check(case):
                calls.append(
                    case.call_and_validate(
                        session=session,
                        headers=auth("both"),
                        checks=[not_a_server_error],
                        timeout=30,
                    ).status_code
                )

            try:
                check()
            except (
                Unsatisfiable
            ):  # nothing to make invalid (no parameters, no body): positive mode covers it
                assert mode == GenerationMode.NEGATIVE
    assert (
        len(calls) > 150
        and any(code == 422 for code in calls)
        and any(code == 200 for code in calls)
    )
