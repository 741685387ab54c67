"""S3 (and S3-compatible: MinIO, Ceph, R2, moto): the S3 side of storage/locations.py.

One place decides how we talk to S3: bounded retries with backoff, short connect timeouts, and every
failure turned into one `S3StorageError` that names the endpoint and the bucket. `S3Backend` is
what S3 does differently from a folder (content hash, pinned download, one-PUT writes, error
translation, the bucket check); everything else goes through s3fs like any fsspec filesystem.
Credentials are never passed here: boto3/s3fs read them from the standard AWS chain (environment,
profile, role), so they never reach logs, metadata or messages.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

# botocore "standard" retry mode: exponential backoff with jitter, retries connection errors,
# throttling and 5xx. 3 attempts keep an unreachable endpoint's failure to a few seconds.
MAX_ATTEMPTS = 3
CONNECT_TIMEOUT_S = 3
# The read timeout is a setting (PENGUIN_S3_READ_TIMEOUT_SECONDS, default 30 s): a slow link or a
# large upload may need more, and the fault tests need a short one to meet a slow answer quickly.
# s3fs retries some errors (timeouts, truncated reads) again on top of botocore; keep that bounded
# too.
S3FS_RETRIES = 2
# The most requests one s3fs call (board operations) can make: botocore's attempts, repeated by s3fs
# for connection-level errors, and aiohttp (under aiobotocore) re-sends an idempotent request once
# when the server drops the connection. Measured with the fault-injecting proxy in the tests.
MAX_REQUESTS_PER_S3FS_CALL = MAX_ATTEMPTS * S3FS_RETRIES * 2


class S3StorageError(RuntimeError):
    """S3 could not be used; the message names the endpoint, the bucket and what was being done."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str  # no leading or trailing slash; "" for the bucket root
    endpoint_url: str | None = None

    @classmethod
    def parse(cls, url: str, endpoint_url: str | None = None) -> S3Location:
        if not str(url).startswith("s3://"):
            raise ValueError(f"not an s3:// URL: {url!r}")
        bucket, _, prefix = str(url)[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"no bucket in {url!r}: expected s3://bucket/prefix")
        return cls(bucket, prefix.strip("/"), endpoint_url or None)

    @property
    def url(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}" if self.prefix else f"s3://{self.bucket}"

    @property
    def path(self) -> str:
        """bucket/prefix, as s3fs and pins name paths."""
        return f"{self.bucket}/{self.prefix}" if self.prefix else self.bucket

    def key(self, name: str) -> str:
        return f"{self.prefix}/{name}" if self.prefix else name

    def describe(self) -> str:
        endpoint = self.endpoint_url or "AWS default (no AWS_ENDPOINT_URL)"
        return f"bucket '{self.bucket}' at endpoint {endpoint}"


def client_config(max_attempts: int = MAX_ATTEMPTS) -> dict:
    from ..settings import load_settings

    return {
        # total_max_attempts counts the first request; botocore's "max_attempts" counts retries only
        "retries": {"total_max_attempts": max_attempts, "mode": "standard"},
        "connect_timeout": CONNECT_TIMEOUT_S,
        "read_timeout": load_settings().s3_read_timeout_seconds,
    }


def client(endpoint_url: str | None = None, max_attempts: int = MAX_ATTEMPTS):
    """A boto3 S3 client with our retry policy (credentials from the AWS chain)."""
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client(
        "s3", endpoint_url=endpoint_url or None, config=Config(**client_config(max_attempts))
    )


def filesystem(endpoint_url: str | None = None, version_aware: bool = False):
    """An s3fs filesystem with our retry policy and no listing cache (other writers must be seen).

    version_aware: listings give each object's current version id (list_object_versions).
    """
    import s3fs

    fs = s3fs.S3FileSystem(
        endpoint_url=endpoint_url or None,
        config_kwargs=client_config(),
        use_listings_cache=False,
        skip_instance_cache=True,
        version_aware=version_aware,
    )
    fs.retries = S3FS_RETRIES  # a class attribute in s3fs, not a constructor argument
    return fs


def explain(exc: BaseException, location: S3Location, action: str) -> S3StorageError:
    """One clear message for any S3 failure: what we did, where, and the likely cause."""
    cause = _cause(_botocore_error(exc) or exc)
    retried = any(
        word in cause for word in ("unreachable", "answering", "HTTP 5", "closed the connection")
    )
    suffix = f" (gave up after {MAX_ATTEMPTS} attempts with backoff)" if retried else ""
    return S3StorageError(f"S3 {action} failed for {location.describe()}: {cause}{suffix}")


def _botocore_error(exc: BaseException) -> BaseException | None:
    """The botocore error behind an exception: s3fs raises OSError(EBUSY, server text) *from* the
    ClientError, whose code and HTTP status say more than the server's free text."""
    from botocore.exceptions import BotoCoreError, ClientError

    seen = 0
    while exc is not None and seen < 10:
        if isinstance(exc, (BotoCoreError, ClientError)):
            return exc
        exc, seen = exc.__cause__, seen + 1
    return None


def _cause(exc: BaseException) -> str:
    from botocore.exceptions import (
        ClientError,
        ConnectionClosedError,
        ConnectTimeoutError,
        EndpointConnectionError,
        NoCredentialsError,
        ReadTimeoutError,
    )

    if isinstance(exc, (EndpointConnectionError, ConnectTimeoutError)):
        return "endpoint unreachable"
    if isinstance(exc, ReadTimeoutError):
        return "the endpoint stopped answering (read timeout, PENGUIN_S3_READ_TIMEOUT_SECONDS)"
    if isinstance(exc, ConnectionClosedError):
        return "the endpoint closed the connection before answering"
    if isinstance(exc, NoCredentialsError):
        return (
            "no AWS credentials found (set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or AWS_PROFILE)"
        )
    if isinstance(exc, ClientError):
        code = str(exc.response.get("Error", {}).get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        return _cause_from_code(code, status) or f"{code or 'error'} (HTTP {status})"
    if isinstance(exc, PermissionError):
        return "access denied: check the credentials and the bucket policy"
    if isinstance(exc, FileNotFoundError) and "bucket" in str(exc).lower():
        return "the bucket does not exist"
    text = str(exc) or type(exc).__name__
    for needle, meaning in (
        ("Internal Server Error", "the server answered HTTP 500"),  # s3fs's OSError texts
        ("Bad Gateway", "the server answered HTTP 502"),
        ("Service Unavailable", "the server answered HTTP 503"),
        ("Gateway Timeout", "the server answered HTTP 504"),
        ("Could not connect", "endpoint unreachable"),
        ("NoSuchBucket", "the bucket does not exist"),
        ("Connection was closed", "the endpoint closed the connection before answering"),
        ("InvalidAccessKeyId", BAD_CREDENTIALS["InvalidAccessKeyId"]),
        ("SignatureDoesNotMatch", BAD_CREDENTIALS["SignatureDoesNotMatch"]),
    ):
        if needle in text:
            return meaning
    return f"{type(exc).__name__}: {text}"


BAD_CREDENTIALS = {
    "InvalidAccessKeyId": (
        "bad credentials: the endpoint does not know this access key id (InvalidAccessKeyId)"
    ),
    "SignatureDoesNotMatch": (
        "bad credentials: the secret key does not match the access key id (SignatureDoesNotMatch)"
    ),
}


def _cause_from_code(code: str, status) -> str | None:
    if code in ("404", "NoSuchBucket"):
        return "the bucket does not exist"
    if code in ("412", "PreconditionFailed"):
        return "the object changed while it was read; the next listing picks up the new content"
    if code in BAD_CREDENTIALS:
        return BAD_CREDENTIALS[code]
    if code in ("InvalidToken", "ExpiredToken"):
        return f"bad credentials ({code})"
    if code in ("403", "AccessDenied") or status == 403:
        return "access denied: check the credentials and the bucket policy"
    if status and int(status) >= 500:
        detail = f" ({code})" if code and code != str(status) else ""
        return f"the server answered HTTP {status}{detail}"
    return None


def storage_errors() -> tuple[type[BaseException], ...]:
    """The exceptions a store raises when it does not answer as asked (network, HTTP errors,
    access), as opposed to a file whose content is wrong."""
    from botocore.exceptions import BotoCoreError, ClientError

    return (BotoCoreError, ClientError, OSError)


@contextmanager
def guard(location: S3Location, action: str) -> Iterator[None]:
    """Turn any S3/network failure inside the block into an S3StorageError naming endpoint and
    bucket."""
    try:
        yield
    except S3StorageError:
        raise
    except storage_errors() as exc:
        raise explain(exc, location, action) from exc


def head_bucket(fs, location: S3Location) -> None:
    """HEAD the bucket through an s3fs filesystem; a missing bucket is named as such, and a 403
    is followed by a one-key listing, whose error code says why (see check_reachable)."""
    try:
        fs.call_s3("head_bucket", Bucket=location.bucket)
    except FileNotFoundError as exc:  # s3fs turns the 404 into a bare "Not Found"
        raise S3StorageError(
            f"S3 bucket check failed for {location.describe()}: the bucket does not exist"
        ) from exc
    except PermissionError:
        fs.call_s3("list_objects_v2", Bucket=location.bucket, MaxKeys=1)
        raise


def check_reachable(
    url: str, endpoint_url: str | None = None, max_attempts: int = MAX_ATTEMPTS
) -> None:
    """Fail fast (at start, not deep in a run) when an s3:// URL's bucket cannot be used.

    One HEAD on the bucket tells apart an unreachable endpoint, a missing bucket and bad
    credentials; the error names bucket and endpoint.
    """
    from botocore.exceptions import ClientError

    location = S3Location.parse(url, endpoint_url)
    api = client(endpoint_url, max_attempts)
    with guard(location, f"start-up check of {location.url}"):
        try:
            api.head_bucket(Bucket=location.bucket)
        except ClientError as exc:
            if exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") != 403:
                raise
            # A HEAD answer has no body, so a 403 cannot say why; a one-key listing names the
            # error (unknown key id, wrong secret, or a policy that denies).
            api.list_objects_v2(Bucket=location.bucket, MaxKeys=1)
            raise


class S3Backend:
    """What an S3 prefix does differently from a folder (the seam of storage/locations.py).

    content hash: the object's ETag (it changes whenever the content does), or its version id on
    a versioned bucket. Listed objects are read by downloading to a temp file (DuckDB's httpfs
    extension is not available offline), pinned to the listed version and ETag, so an object
    replaced between listing and reading fails clearly instead of loading under the old hash.
    """

    def __init__(self, where: S3Location, fs):
        self.where = where
        self.fs = fs
        self._bucket_checked = False

    def describe(self) -> str:
        return self.where.describe()

    @contextmanager
    def guard(self, action: str) -> Iterator[None]:
        with guard(self.where, action):
            if not self._bucket_checked:
                # s3fs reports a missing bucket as a missing file; say what is really wrong.
                head_bucket(self.fs, self.where)
                self._bucket_checked = True
            yield

    def check(self) -> None:
        check_reachable(self.where.url, self.where.endpoint_url)

    def file_facts(self, path: str, info: dict) -> tuple[str, float]:
        return _version(info) or info["ETag"].strip('"'), info["LastModified"].timestamp()

    @contextmanager
    def local_copy(self, path: str, info: dict) -> Iterator[Path]:
        with tempfile.TemporaryDirectory(prefix="penguin-landing-") as tmp:
            target = Path(tmp) / path.rsplit("/", 1)[-1]
            with self.guard(f"downloading s3://{path}"):
                # s3fs reads with If-Match on the ETag it finds at open: compare with the listing's.
                with self.fs.open(path, "rb", version_id=_version(info)) as source:
                    if source.details.get("ETag") != info["ETag"]:
                        raise S3StorageError(
                            f"s3://{path} changed after it was listed ({self.describe()}); "
                            "the next listing picks up the new content"
                        )
                    with open(target, "wb") as out:
                        shutil.copyfileobj(source, out, 1 << 20)
            yield target

    def put_whole(self, path: str, content) -> None:
        # One PUT (a multipart upload of a large file is completed at the end): readers see the
        # whole object or none of it.
        if isinstance(content, bytes):
            self.fs.pipe_file(path, content)
        else:
            self.fs.put_file(str(content), path)


def _version(info: dict) -> str | None:
    """The listed object's version id; None on an unversioned bucket (its versions say "null")."""
    version = info.get("VersionId")
    return version if version not in (None, "null") else None
