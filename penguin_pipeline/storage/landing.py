"""The landing zone: where raw field files arrive, outside the code bundle.

A folder by default, or an s3://bucket/prefix (S3Landing). Files are identified by their name relative to the landing root (also the
raw_penguins partition key) and a content hash, so a changed file is noticed even when its name
stays the same. Every backend offers the same three operations: files(), local_copy(), quarantine().
"""

from __future__ import annotations

import hashlib
import shutil
import tempfile
import time
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterator, Protocol

from ..sources import SUPPORTED_FORMATS, source_of
from . import s3

SUPPORTED_SUFFIXES = tuple(f".{fmt}" for fmt in SUPPORTED_FORMATS)
SEED_FILE_NAME = "penguins-raw.csv"


@dataclass(frozen=True)
class LandedFile:
    name: str  # relative to the landing root; also the raw_penguins partition key
    content_hash: str  # sha256 prefix for folders; ETag (or version id) for object stores
    size: int
    modified: float  # seconds since the epoch


class Landing(Protocol):
    url: str

    def files(self) -> list[LandedFile]: ...

    def local_copy(self, name: str) -> AbstractContextManager[Path]: ...

    def quarantine(self, name: str, reason: str) -> str: ...


def is_landing_file(name: str) -> bool:
    """A registered source's file (sources.py: its prefix), a supported suffix, and no hidden or
    partial part (editors and uploaders write those first)."""
    parts = name.split("/")
    return (name.lower().endswith(SUPPORTED_SUFFIXES) and not any(p.startswith(".") for p in parts)
            and source_of(name) is not None)


def quarantine_name(name: str) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name.replace('/', '__')}"


def file_hash(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# Listing a folder landing zone (every sensor tick) would otherwise re-read every file to hash it:
# ~1.3 GB at 10^8 rows. A hash is reused while the file's size, mtime and inode are unchanged, and
# only for files that had settled when hashed (git's "racy clean" rule): a rewrite within the same
# coarse clock tick, same size, can keep the mtime, so a file changed less than SETTLED_NS before
# it was hashed is hashed again next time.
SETTLED_NS = 2_000_000_000
_hashes: dict[tuple, str] = {}


def listed_hash(path: Path, stat) -> str:
    key = (str(path), stat.st_size, stat.st_mtime_ns, stat.st_ino)
    if key not in _hashes:
        digest = file_hash(path)
        if time.time_ns() - stat.st_mtime_ns < SETTLED_NS:
            return digest
        if len(_hashes) > 100_000:
            _hashes.clear()
        _hashes[key] = digest
    return _hashes[key]


class FolderLanding:
    def __init__(self, root: Path | str, quarantine_root: Path | str):
        self.root = Path(root)
        self.quarantine_root = Path(quarantine_root)
        self.url = str(self.root)

    def files(self) -> list[LandedFile]:
        if not self.root.exists():
            return []
        found = []
        for path in sorted(self.root.rglob("*")):
            name = path.relative_to(self.root).as_posix()
            if path.is_file() and is_landing_file(name):
                stat = path.stat()
                found.append(LandedFile(name, listed_hash(path, stat), stat.st_size, stat.st_mtime))
        return found

    @contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        yield self.root / name  # already local: no copy needed

    def quarantine(self, name: str, reason: str) -> str:
        """Move a whole-file failure out of landing (so it is not retried) with a reason file beside it."""
        target = self.quarantine_root / quarantine_name(name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(self.root / name), target)
        target.with_name(target.name + ".reason.txt").write_text(reason + "\n", encoding="utf-8")
        return str(target)

    def land(self, name: str, content: bytes) -> None:
        """Write a file so that readers never see it half-written (hidden temp name, then rename)."""
        target = self.root / name
        target.parent.mkdir(parents=True, exist_ok=True)
        partial = target.with_name("." + target.name + ".partial")
        partial.write_bytes(content)
        partial.replace(target)


class S3Landing:
    """The landing zone as an s3://bucket/prefix: same names, hashes and operations as a folder.

    content_hash is the object's ETag (it changes whenever the content does), or its version id when
    the bucket is versioned. Objects are read by downloading to a temp file (DuckDB's httpfs
    extension is not available offline), pinned to the listed ETag/version so a file replaced
    between listing and reading fails clearly instead of loading content under the wrong hash.
    """

    def __init__(self, url: str, quarantine_url: str | None = None, endpoint_url: str | None = None):
        self.location = s3.S3Location.parse(url, endpoint_url)
        self.quarantine_location = (s3.S3Location.parse(quarantine_url, endpoint_url)
                                    if s3.is_s3_url(quarantine_url) else sibling_quarantine(self.location))
        self.url = self.location.url
        self._client = None
        self._versioned: bool | None = None
        self._listed: dict[str, LandedFile] = {}
        self._listed_ids: dict[str, dict] = {}

    @property
    def client(self):
        if self._client is None:
            self._client = s3.client(self.location.endpoint_url)
        return self._client

    def _guard(self, action: str):
        return s3.guard(self.location, action)

    def versioned(self) -> bool:
        if self._versioned is None:
            with self._guard(f"reading the versioning of {self.url}"):
                status = self.client.get_bucket_versioning(Bucket=self.location.bucket).get("Status")
            self._versioned = status == "Enabled"
        return self._versioned

    def _name(self, key: str) -> str | None:
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        if not key.startswith(prefix) or key.endswith("/"):
            return None
        quarantine = self.quarantine_location
        if quarantine.bucket == self.location.bucket and key.startswith(f"{quarantine.prefix}/"):
            return None  # quarantine nested inside the landing prefix: not landing files
        name = key[len(prefix):]
        return name if is_landing_file(name) else None

    def files(self) -> list[LandedFile]:
        found, ids = {}, {}
        prefix = f"{self.location.prefix}/" if self.location.prefix else ""
        with self._guard(f"listing {self.url}"):
            versioned = self.versioned()
            operation = "list_object_versions" if versioned else "list_objects_v2"
            pages = self.client.get_paginator(operation).paginate(Bucket=self.location.bucket, Prefix=prefix)
            for page in pages:
                for item in page.get("Versions" if versioned else "Contents", []):
                    name = self._name(item["Key"])
                    if name is None or (versioned and not item.get("IsLatest")):
                        continue
                    etag = item["ETag"].strip('"')
                    content_hash = item["VersionId"] if versioned else etag
                    found[name] = LandedFile(name, content_hash, int(item["Size"]),
                                             item["LastModified"].timestamp())
                    ids[name] = {"VersionId": item["VersionId"]} if versioned else {"IfMatch": item["ETag"]}
        self._listed, self._listed_ids = found, ids
        return [found[name] for name in sorted(found)]

    @contextmanager
    def local_copy(self, name: str) -> Iterator[Path]:
        """Download the object (as listed by files()) to a temp file; removed afterwards."""
        from botocore.exceptions import ClientError

        key = self.location.key(name)
        with tempfile.TemporaryDirectory(prefix="penguin-landing-") as tmp:
            target = Path(tmp) / Path(name).name
            with self._guard(f"downloading s3://{self.location.bucket}/{key}"):
                try:
                    response = self.client.get_object(Bucket=self.location.bucket, Key=key,
                                                      **self._listed_ids.get(name, {}))
                except ClientError as exc:
                    if exc.response.get("Error", {}).get("Code") in ("PreconditionFailed", "412"):
                        raise s3.S3StorageError(
                            f"s3://{self.location.bucket}/{key} changed after it was listed "
                            f"({self.location.describe()}); the next listing picks up the new content") from exc
                    raise
                with open(target, "wb") as handle:
                    for chunk in response["Body"].iter_chunks(1 << 20):
                        handle.write(chunk)
            yield target

    def quarantine(self, name: str, reason: str) -> str:
        """Copy the object to the quarantine prefix with a reason object beside it, then delete it here."""
        source_key = self.location.key(name)
        target = self.quarantine_location
        target_key = target.key(quarantine_name(name))
        with self._guard(f"quarantining s3://{self.location.bucket}/{source_key}"):
            copy_source = {"Bucket": self.location.bucket, "Key": source_key,
                           **{k: v for k, v in self._listed_ids.get(name, {}).items() if k == "VersionId"}}
            self.client.copy_object(Bucket=target.bucket, Key=target_key, CopySource=copy_source)
            self.client.put_object(Bucket=target.bucket, Key=target_key + ".reason.txt",
                                   Body=(reason + "\n").encode("utf-8"), ContentType="text/plain; charset=utf-8")
            self.client.delete_object(Bucket=self.location.bucket, Key=source_key)
        return f"s3://{target.bucket}/{target_key}"

    def land(self, name: str, content: bytes) -> None:
        """One PUT: readers see the whole object or none of it."""
        key = self.location.key(name)
        with self._guard(f"writing s3://{self.location.bucket}/{key}"):
            self.client.put_object(Bucket=self.location.bucket, Key=key, Body=content)


def sibling_quarantine(location: s3.S3Location) -> s3.S3Location:
    """s3://bucket/a/raw -> s3://bucket/a/quarantine; s3://bucket -> s3://bucket/quarantine."""
    parent = location.prefix.rsplit("/", 1)[0] if "/" in location.prefix else ""
    prefix = f"{parent}/quarantine" if parent else "quarantine"
    return s3.S3Location(location.bucket, prefix, location.endpoint_url)


def landing_from_url(url: str, quarantine_url: str, endpoint_url: str | None = None) -> Landing:
    """The landing backend for a folder path or an s3://bucket/prefix URL.

    An S3 landing quarantines to `quarantine_url` when that is s3:// too, else to a `quarantine`
    prefix beside the landing prefix.
    """
    if s3.is_s3_url(url):
        return S3Landing(url, quarantine_url, endpoint_url)
    return FolderLanding(url, quarantine_url)


def packaged_lter_file() -> Path:
    """The raw LTER file that the palmerpenguins package ships (344 penguins, 2007-2009)."""
    import palmerpenguins

    return Path(palmerpenguins.__file__).parent / "data" / "penguins-raw.csv"


def seed_if_empty(landing: Landing) -> bool:
    """On a first run with an empty landing zone, land the packaged LTER file; True if it did."""
    if landing.files():
        return False
    landing.land(SEED_FILE_NAME, packaged_lter_file().read_bytes())
    return True
