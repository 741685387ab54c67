"""S3-only behaviour: start-up checks, versioned buckets, 5xx and a server stopped mid-write."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pandas as pd
import pytest

from penguin_pipeline.processing import modeling
from penguin_pipeline.storage import boards, landing, locations, s3

from ..test_summary_and_model import clean  # noqa: F401  (fixture)
from .conftest import FAKE_AWS_ENV, direct_client, empty_bucket, make_bucket

pytestmark = pytest.mark.integration

ROW = pd.DataFrame([{"species": "Gentoo", "sex": "male", "bill_length_mm": 49.0}])


@pytest.fixture
def fitted(clean):  # noqa: F811
    from penguin_pipeline.processing import tables

    return modeling.fit_model(modeling.load_training_frame(clean, tables.CLEAN))


def assert_no_secret(message: str) -> None:
    assert FAKE_AWS_ENV["AWS_SECRET_ACCESS_KEY"] not in message
    assert FAKE_AWS_ENV["AWS_ACCESS_KEY_ID"] not in message


# -- start-up checks ----------------------------------------------------------------------------


def test_check_reachable_passes_for_folders_and_existing_buckets(moto_server, s3_bucket, tmp_path):
    locations.check_storage(
        str(tmp_path / "board"),
        f"s3://{s3_bucket}/board",
        f"s3:/{s3_bucket}/quarantine",
        endpoint_url=moto_server.endpoint_url,
    )


def test_missing_bucket_is_named_with_its_endpoint_at_start(moto_server, aws_env):
    with pytest.raises(s3.S3StorageError) as failure:
        s3.check_reachable("s3://no-such-penguin-bucket/board", moto_server.endpoint_url)
    message = str(failure.value)
    assert "no-such-penguin-bucket" in message and moto_server.endpoint_url in message
    assert "does not exist" in message
    assert_no_secret(message)


def test_board_on_a_missing_bucket_says_so_instead_of_no_pin(moto_server, aws_env):
    board = boards.board_from_url("s3://no-such-penguin-bucket/board", moto_server.endpoint_url)
    with pytest.raises(s3.S3StorageError, match="no-such-penguin-bucket.*does not exist"):
        boards.latest_model_facts(board)


def test_landing_on_a_missing_bucket_says_so(moto_server, aws_env):
    zone = landing.landing_from_url(
        "s3://no-such-penguin-bucket/raw", "data/quarantine", moto_server.endpoint_url
    )
    with pytest.raises(s3.S3StorageError) as failure:
        zone.files()
    message = str(failure.value)
    assert "no-such-penguin-bucket" in message and moto_server.endpoint_url in message
    assert "does not exist" in message


def test_missing_credentials_are_named(moto_server, aws_env, monkeypatch, tmp_path):
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "none"))
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "none"))
    with pytest.raises(s3.S3StorageError) as failure:
        s3.check_reachable("s3://some-penguin-bucket/board", moto_server.endpoint_url)
    assert "credentials" in str(failure.value) and "some-penguin-bucket" in str(failure.value)


# -- a versioned landing bucket -----------------------------------------------------------------


def test_versioned_bucket_uses_the_version_id_as_content_hash(moto_server, aws_env):
    bucket = make_bucket(moto_server.endpoint_url, versioned=True)
    try:
        zone = landing.landing_from_url(
            f"s3://{bucket}/raw", "data/quarantine", moto_server.endpoint_url
        )
        zone.land("a.csv", b"same bytes\n")
        [first] = zone.files()
        zone.land("a.csv", b"same bytes\n")  # a new upload is a new version, even with equal bytes
        [second] = zone.files()
        client = direct_client(moto_server.endpoint_url)
        latest = client.head_object(Bucket=bucket, Key="raw/a.csv")["VersionId"]
        assert second.content_hash == latest != first.content_hash
        with zone.local_copy("a.csv") as path:
            assert path.read_bytes() == b"same bytes\n"
        # no s3:// quarantine given: a "quarantine" prefix beside the landing prefix
        assert zone.quarantine("a.csv", "why").startswith(f"s3://{bucket}/quarantine/")
        assert zone.files() == []
    finally:
        empty_bucket(moto_server.endpoint_url, bucket)


def test_an_object_replaced_after_listing_is_not_read_under_the_old_hash(moto_server, s3_bucket):
    zone = landing.landing_from_url(
        f"s3://{s3_bucket}/raw", f"s3://{s3_bucket}/quarantine", moto_server.endpoint_url
    )
    zone.land("a.csv", b"first\n")
    zone.files()
    zone.land("a.csv", b"second, longer\n")
    with pytest.raises(s3.S3StorageError, match="changed after it was listed"):
        with zone.local_copy("a.csv"):
            pass


# -- 5xx: bounded retries, then one clear error --------------------------------------------------


class AlwaysUnavailable(BaseHTTPRequestHandler):
    requests_seen = 0

    def _answer(self):
        type(self).requests_seen += 1
        body = b"<Error><Code>ServiceUnavailable</Code><Message>down for a test</Message></Error>"
        self.send_response(503)
        self.send_header("Content-Type", "application/xml")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    do_GET = do_PUT = do_HEAD = do_POST = do_DELETE = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def unavailable_endpoint():
    AlwaysUnavailable.requests_seen = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), AlwaysUnavailable)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_5xx_is_retried_a_bounded_number_of_times_then_named(unavailable_endpoint, aws_env):
    with pytest.raises(s3.S3StorageError) as failure:
        s3.check_reachable("s3://penguin-bucket/board", unavailable_endpoint)
    message = str(failure.value)
    assert AlwaysUnavailable.requests_seen == s3.MAX_ATTEMPTS
    assert "503" in message and "penguin-bucket" in message and unavailable_endpoint in message
    assert_no_secret(message)

    AlwaysUnavailable.requests_seen = 0
    board = boards.board_from_url("s3://penguin-bucket/board", unavailable_endpoint)
    with pytest.raises(s3.S3StorageError) as failure:
        boards.latest_model_facts(board)
    assert "penguin-bucket" in str(failure.value) and unavailable_endpoint in str(failure.value)
    assert "HTTP 503" in str(failure.value)
    assert 1 < AlwaysUnavailable.requests_seen <= s3.MAX_ATTEMPTS * (s3.S3FS_RETRIES + 1)


# -- the server stops in the middle of a write ----------------------------------------------------


def test_server_stopped_mid_write_leaves_the_last_good_model_latest(
    own_moto_server, aws_env, fitted
):
    endpoint = own_moto_server.endpoint_url
    bucket = make_bucket(endpoint)
    url = f"s3://{bucket}/board"
    board = boards.board_from_url(url, endpoint)
    good = boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    serving = boards.read_model(board)  # what an API process holds

    uploads = []
    fs = board.location.fs  # the filesystem under the board, the one that writes each file
    put_file = fs.put_file

    def put_then_crash(source, target, *args, **kwargs):
        put_file(source, target, *args, **kwargs)
        uploads.append(target)
        own_moto_server.stop()  # after the first file of the version: the rest never arrives

    fs.put_file = put_then_crash
    with pytest.raises(s3.S3StorageError) as failure:
        boards.write_vetiver_pin(board, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    message = str(failure.value)
    assert bucket in message and endpoint in message and "unreachable" in message
    assert_no_secret(message)
    assert len(uploads) == 1 and uploads[0].endswith(".joblib")

    # while S3 is down: a clear error for readers, and the model already loaded keeps predicting
    with pytest.raises(s3.S3StorageError, match="unreachable"):
        boards.latest_model_facts(boards.board_from_url(url, endpoint))
    with pytest.raises(s3.S3StorageError, match="unreachable"):
        landing.landing_from_url(f"s3://{bucket}/raw", "q", endpoint).files()
    assert serving.model.predict(ROW)[0] == fitted.pipeline.predict(ROW)[0]

    own_moto_server.start()  # same port, same buckets
    reader = boards.board_from_url(url, endpoint)
    orphan = uploads[0].rsplit("/", 2)[-2]
    assert orphan > good and reader.fs.exists(
        uploads[0]
    )  # the half-written version really is there
    assert [v.version for v in reader.pin_versions(boards.MODEL_PIN, as_df=False)] == [good]
    assert boards.latest_model_facts(reader)["version"] == good
    assert boards.read_model(reader).metadata.version == good
    retried = boards.write_vetiver_pin(reader, modeling.to_vetiver(fitted, boards.MODEL_PIN))
    assert boards.latest_model_facts(reader)["version"] == retried > orphan


def test_settings_keep_s3_locations_as_written():
    from penguin_pipeline.settings import load_settings

    urls = {
        "PENGUIN_BOARD": "s3://penguins/board",
        "PENGUIN_LANDING": "s3://penguins/raw",
        "PENGUIN_QUARANTINE": "s3://penguins/quarantine",
    }
    settings = load_settings(urls)
    assert (settings.board_url, settings.landing_url, settings.quarantine_url) == tuple(
        urls.values()
    )
