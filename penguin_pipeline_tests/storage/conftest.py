"""S3 over real HTTP: moto's standalone server on 127.0.0.1 (a free port), fake credentials, a
fresh bucket.

No in-process patching of boto3: every S3 call in these tests goes through a socket to the server.
"""

from __future__ import annotations

import functools
import logging
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing-key-id",
    "AWS_SECRET_ACCESS_KEY": "testing-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    # no 1 s instance-metadata probe when credentials are missing
    "AWS_EC2_METADATA_DISABLED": "true",
}
UNSET_AWS_ENV = ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_SECURITY_TOKEN", "AWS_ENDPOINT_URL_S3")


class MotoServer:
    """ThreadedMotoServer that can be stopped (socket closed: clients get "connection refused",
    not a hang) and started again on the same port. moto keeps its buckets in process memory,
    so they survive a restart."""

    def __init__(self):
        self.port = 0
        self._server = None

    def start(self) -> MotoServer:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=self.port, verbose=False)
        self._server.start()
        self.port = self._server.get_host_and_port()[1]
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()  # shutdown() only: the listening socket would stay open
            self._server._server.server_close()
            self._server = None

    @property
    def running(self) -> bool:
        return self._server is not None

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def _start_server() -> MotoServer:
    logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one log line per request otherwise
    return MotoServer().start()


@pytest.fixture(scope="session")
def moto_server():
    """One server for the session (buckets are per test, so tests stay independent)."""
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture
def own_moto_server():
    """A server for one test that may stop and restart it."""
    server = _start_server()
    yield server
    server.stop()


@pytest.fixture
def aws_env(monkeypatch):
    for name, value in FAKE_AWS_ENV.items():
        monkeypatch.setenv(name, value)
    for name in UNSET_AWS_ENV:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("AWS_ENDPOINT_URL", raising=False)


@functools.lru_cache(maxsize=8)
def direct_client(endpoint_url: str):
    """One boto3 client per endpoint for the tests' own direct reads and writes (clients are slow
    to build)."""
    from penguin_pipeline.storage import s3

    return s3.client(endpoint_url)


def make_bucket(endpoint_url: str, versioned: bool = False) -> str:
    name = f"penguins-{uuid.uuid4().hex[:10]}"
    client = direct_client(endpoint_url)
    client.create_bucket(Bucket=name)
    if versioned:
        client.put_bucket_versioning(Bucket=name, VersioningConfiguration={"Status": "Enabled"})
    return name


def empty_bucket(endpoint_url: str, bucket: str) -> None:
    client = direct_client(endpoint_url)
    for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for item in page.get("Versions", []) + page.get("DeleteMarkers", []):
            client.delete_object(Bucket=bucket, Key=item["Key"], VersionId=item["VersionId"])
    client.delete_bucket(Bucket=bucket)


@pytest.fixture
def s3_bucket(moto_server, aws_env):
    bucket = make_bucket(moto_server.endpoint_url)
    yield bucket
    if moto_server.running:
        empty_bucket(moto_server.endpoint_url, bucket)


@dataclass
class Backend:
    """Where a contract test's board, landing and quarantine live, and how to touch them
    directly."""

    kind: str  # "folder" or "s3"
    board_url: str
    landing_url: str
    quarantine_url: str
    reports_url: str
    endpoint_url: str | None = None

    def put_raw(self, url: str, relative: str, content: bytes) -> None:
        """Write bytes under a board/landing URL without our code (to build broken states)."""
        if self.kind == "folder":
            path = Path(url) / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)
            return
        from penguin_pipeline.storage import s3

        location = s3.S3Location.parse(url, self.endpoint_url)
        direct_client(self.endpoint_url).put_object(
            Bucket=location.bucket, Key=location.key(relative), Body=content
        )

    def list_raw(self, url: str) -> dict[str, bytes]:
        """Every object/file under a URL, by relative name."""
        if self.kind == "folder":
            root = Path(url)
            return {
                p.relative_to(root).as_posix(): p.read_bytes()
                for p in sorted(root.rglob("*"))
                if p.is_file()
            }
        from penguin_pipeline.storage import s3

        location = s3.S3Location.parse(url, self.endpoint_url)
        client = direct_client(self.endpoint_url)
        found = {}
        for page in client.get_paginator("list_objects_v2").paginate(
            Bucket=location.bucket, Prefix=location.prefix + "/"
        ):
            for item in page.get("Contents", []):
                body = client.get_object(Bucket=location.bucket, Key=item["Key"])["Body"].read()
                found[item["Key"][len(location.prefix) + 1 :]] = body
        return found


@pytest.fixture(params=["folder", pytest.param("s3", marks=pytest.mark.integration)])
def backend(request, tmp_path) -> Backend:
    """The same contract test once on folders, once on S3 (moto over HTTP)."""
    if request.param == "folder":
        return Backend(
            "folder",
            str(tmp_path / "board"),
            str(tmp_path / "raw"),
            str(tmp_path / "quarantine"),
            str(tmp_path / "reports"),
        )
    server = request.getfixturevalue("moto_server")
    bucket = request.getfixturevalue("s3_bucket")
    return Backend(
        "s3",
        f"s3://{bucket}/board",
        f"s3://{bucket}/raw",
        f"s3://{bucket}/quarantine",
        f"s3://{bucket}/reports",
        server.endpoint_url,
    )
