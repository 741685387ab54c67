"""S3 that misbehaves: a fault-injecting proxy (fault_proxy.py) between our code and moto.

Transient faults (a few 5xx answers, a dropped connection, a late answer) are retried with backoff
and the run succeeds; persistent ones fail once, naming what was being done, the bucket and the
endpoint, while the last good model stays the newest complete version and the API keeps serving it.
"""

from __future__ import annotations

import pytest
import requests

from penguin_pipeline import cli
from penguin_pipeline.processing import modeling, tables
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards, s3

from ..api.conftest import Server
from ..conftest import query
from ..processes import wait_for
from ..test_summary_and_model import clean  # noqa: F401  (fixture)
from .fault_proxy import FaultProxy

pytestmark = pytest.mark.integration

MODEL_FILES = f"/board/{boards.MODEL_PIN}/"
ROW = {"species": "Gentoo", "sex": "male", "bill_length_mm": 45.1}


@pytest.fixture
def proxy(moto_server):
    faulty = FaultProxy(moto_server.endpoint_url)
    yield faulty
    faulty.close()


@pytest.fixture
def fitted(clean):  # noqa: F811
    return modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))


@pytest.fixture
def on_s3_through_proxy(data_dir, s3_bucket, proxy, monkeypatch):
    """Board and landing on S3, all requests through the proxy; a short read timeout."""
    monkeypatch.setenv("PENGUIN_BOARD", f"s3://{s3_bucket}/board")
    monkeypatch.setenv("PENGUIN_LANDING", f"s3://{s3_bucket}/raw")
    monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
    monkeypatch.setenv("PENGUIN_S3_READ_TIMEOUT_SECONDS", "1")
    return load_settings()


def direct_board(settings, moto_server):
    """The same board, read around the proxy: what is really stored."""
    return boards.board_from_url(settings.board_url, moto_server.endpoint_url)


# -- one write against each persistent fault -------------------------------------------------------


@pytest.mark.parametrize(
    "fault, cause",
    [
        ("503", "the server answered HTTP 503"),
        ("500", "the server answered HTTP 500"),
        ("drop", "the endpoint closed the connection before answering"),
        ("slow", "the endpoint stopped answering (read timeout"),
    ],
)
def test_a_model_write_meeting_a_persistent_fault_fails_once_and_keeps_the_last_version(
    proxy, s3_bucket, fitted, monkeypatch, fault, cause
):
    monkeypatch.setenv("PENGUIN_S3_READ_TIMEOUT_SECONDS", "0.5")
    board = boards.board_from_url(f"s3://{s3_bucket}/board", proxy.endpoint_url)
    good = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    if fault in ("503", "500"):
        proxy.fail(None, int(fault), method="PUT", path_contains=MODEL_FILES)
    elif fault == "drop":
        proxy.drop(None, method="PUT", path_contains=MODEL_FILES)
    else:
        proxy.slow(None, 2.0, method="PUT", path_contains=MODEL_FILES)

    with pytest.raises(s3.S3StorageError) as failure:
        boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    message = str(failure.value)
    assert f"writing pin {boards.MODEL_PIN}" in message and f"bucket '{s3_bucket}'" in message
    assert proxy.endpoint_url in message and cause in message and "with backoff" in message
    # bounded: botocore's attempts; s3fs and aiohttp repeat them only for connection-level errors
    assert s3.MAX_ATTEMPTS <= len(proxy.faults()) <= s3.MAX_REQUESTS_PER_S3FS_CALL
    assert fault in ("drop", "slow") or len(proxy.faults()) == s3.MAX_ATTEMPTS
    assert {f.path.rsplit("/", 1)[-1] for f in proxy.faults()} == {
        f"{boards.MODEL_PIN}.joblib"
    }  # data.txt never sent

    proxy.clear()
    proxy.settle()  # a held upload lands now: the model file of a version that never got its meta
    assert boards.latest_model_facts(board)["version"] == good
    assert boards.read_model(board).metadata.version == good


# -- the whole pipeline ----------------------------------------------------------------------------


def test_transient_faults_are_retried_and_the_run_succeeds(
    on_s3_through_proxy, moto_server, proxy, instance
):
    settings = on_s3_through_proxy
    script = [
        proxy.fail(2, 503, method="PUT", path_contains=MODEL_FILES),  # the model's upload
        proxy.fail(1, 500, method="GET", path_contains="list-type=2"),  # a listing
        proxy.drop(
            1, method="GET", path_contains="/raw/penguins-raw.csv"
        ),  # the landing file's download
        proxy.slow(1, 3.0, method="GET", path_contains="/data.txt"),  # a model metadata read
    ]
    result = cli.run_pipeline(instance)
    assert result.success, cli.failure_messages(result)

    assert [rule.times for rule in script] == [0, 0, 0, 0]  # every scripted fault was met...
    faults = proxy.faults()
    assert len(faults) == 5 and all(
        proxy.retried_after_fault(f) for f in faults
    )  # ...and its request retried
    assert query(settings, "SELECT count(*) FROM penguins") == [(344,)]
    facts = boards.latest_model_facts(direct_board(settings, moto_server))
    assert facts["rows_used"] + facts["rows"]["held_out"] == 333


def test_an_unanswered_metadata_read_is_a_storage_error_not_a_damaged_version(
    proxy, s3_bucket, fitted
):
    board = boards.board_from_url(f"s3://{s3_bucket}/board", proxy.endpoint_url)
    good = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    proxy.fail(None, 503, method="GET", path_contains="/data.txt")  # listing answers, reads do not
    with pytest.raises(s3.S3StorageError, match="HTTP 503"):
        boards.newest_listed(board, boards.MODEL_PIN)
    with pytest.raises(s3.S3StorageError, match="HTTP 503"):
        board.verify_version(boards.MODEL_PIN, good)
    proxy.clear()
    assert boards.newest_listed(board, boards.MODEL_PIN) == (
        boards.newest_version(board, boards.MODEL_PIN),
        [],
    )


def test_persistent_faults_fail_the_run_cleanly_and_the_api_keeps_serving(
    on_s3_through_proxy, moto_server, proxy, instance, tmp_path, monkeypatch
):
    settings = on_s3_through_proxy
    # About storage faults, not promotion: every new version becomes champion, so the API follows.
    monkeypatch.setenv("PENGUIN_PROMOTION_TOLERANCE", "10")
    monkeypatch.setenv("PENGUIN_DRIFT_BLOCK", "100")
    assert cli.run_pipeline(instance).success
    good = boards.latest_model_facts(direct_board(settings, moto_server))["version"]
    api = Server(
        tmp_path / "api",
        tmp_path / "api.log",
        PENGUIN_BOARD=settings.board_url,
        AWS_ENDPOINT_URL=proxy.endpoint_url,
        PENGUIN_MODEL_POLL_SECONDS="0.3",
    )
    try:
        assert served(api) == good
        cli.new_season(
            rows=150, seed=7, settings=settings
        )  # new data: the next run fits a new model

        proxy.fail(None, 503, method="PUT", path_contains=MODEL_FILES)
        result = cli.run_pipeline(instance)
        assert not result.success
        [failure] = cli.failure_messages(result)
        assert failure.startswith("penguin_model:") and f"writing pin {boards.MODEL_PIN}" in failure
        assert f"bucket '{s3_bucket_of(settings)}'" in failure and proxy.endpoint_url in failure
        assert "HTTP 503" in failure
        assert query(settings, "SELECT count(*) FROM penguins") > [(344,)]  # the new rows did load
        assert (
            boards.newest_version(direct_board(settings, moto_server), boards.MODEL_PIN).version
            == good
        )
        assert served(api) == good and health(api)["status"] == "ok"

        proxy.fail(None, 503)  # the board is unreachable for the API too
        assert wait_for(
            lambda: health(api)["status"] == "degraded", what="the API reporting the board"
        )
        assert "could not be listed" in health(api)["problem"] and served(api) == good
        card = requests.get(f"{api.url}/model-card?version={good}", timeout=60)
        assert card.status_code == 503, card.text  # the store is down; the version is not missing
        assert "could not be read" in card.json()["detail"] and proxy.endpoint_url in card.text

        proxy.clear()
        assert cli.run_pipeline(instance).success
        newer = boards.latest_model_facts(direct_board(settings, moto_server))["version"]
        assert newer > good
        assert boards.champion(direct_board(settings, moto_server))[1]["version"] == newer
        assert wait_for(
            lambda: served(api) == newer and health(api)["status"] == "ok", what="the new version"
        )
    finally:
        print(
            api.log(), *[(f.method, f.path, f.outcome) for f in proxy.faults()], sep="\n"
        )  # shown on failure
        api.stop()


def served(api: Server) -> str:
    answer = requests.post(api.url + "/predict", json=ROW, timeout=10)
    assert answer.status_code == 200
    return answer.json()["model_version"]


def health(api: Server) -> dict:
    answer = requests.get(api.url + "/health", timeout=10)
    assert answer.status_code == 200
    return answer.json()


def s3_bucket_of(settings) -> str:
    return s3.S3Location.parse(settings.board_url).bucket
