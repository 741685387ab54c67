"""The landing zone: where raw field files arrive, outside the code bundle.

A folder by default, or an s3://bucket/prefix: one `Landing` over a storage Location (see
locations.py for what differs between the two). Files are identified by their name relative to the
landing root (also the raw_penguins partition key) and a content hash, so a changed file is noticed
even when its name stays the same.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from ..sources import SUPPORTED_FORMATS, source_of
from .locations import Location, open_location, protocol_of

SUPPORTED_SUFFIXES = tuple(f".{fmt}" for fmt in SUPPORTED_FORMATS)
SEED_FILE_NAME = "penguins-raw.csv"


@dataclass(frozen=True)
class LandedFile:
    name: str  # relative to the landing root; also the raw_penguins partition key
    content_hash: str  # sha256 prefix for folders; ETag (or version id) for object stores
    size: int
    modified: float  # seconds since the epoch


def is_landing_file(name: str) -> bool:
    """A registered source's file (sources.py: its prefix), a supported suffix, and no hidden or
    partial part (editors and uploaders write those first)."""
    parts = name.split("/")
    return (
        name.lower().endswith(SUPPORTED_SUFFIXES)
        and not any(p.startswith(".") for p in parts)
        and source_of(name) is not None
    )


def quarantine_name(name: str) -> str:
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return f"{stamp}-{name.replace('/', '__')}"


class Landing:
    """files() lists what arrived, local_copy() gives one as a local path for DuckDB, quarantine()
    moves an unreadable one aside with its reason, land() writes one whole."""

    def __init__(self, where: Location, quarantine: Location):
        self.where = where
        self.quarantine_at = quarantine
        self._listed: dict[str, dict] = {}  # name -> the listing's info: what local_copy pins

    @property
    def url(self) -> str:
        return self.where.url

    def files(self) -> list[LandedFile]:
        root, fs, backend = self.where.root, self.where.fs, self.where.backend
        nested_quarantine = self.quarantine_at.root + "/"
        found, listed = {}, {}
        with self.where.guard(f"listing {self.url}"):
            for path, info in fs.find(root, detail=True).items():
                name = path[len(root) + 1 :]
                if path.startswith(nested_quarantine) or not is_landing_file(name):
                    continue
                content_hash, modified = backend.file_facts(path, info)
                found[name] = LandedFile(name, content_hash, int(info["size"]), modified)
                listed[name] = info
        self._listed = listed
        return [found[name] for name in sorted(found)]

    def local_copy(self, name: str) -> AbstractContextManager[Path]:
        """The file as files() listed it, as a local path (an S3 object is downloaded, then
        removed)."""
        path = self.where.path(name)
        info = self._listed.get(name)
        if info is None:  # not listed by this object: pin what is there now
            with self.where.guard(f"reading {self.where.url_of(path)}"):
                info = self.where.fs.info(path)
        return self.where.backend.local_copy(path, info)

    def quarantine(self, name: str, reason: str) -> str:
        """Move a whole-file failure out of landing (so it is not retried), with a reason file."""
        source = self.where.path(name)
        target = self.quarantine_at.path(quarantine_name(name))
        with self.where.guard(f"quarantining {self.where.url_of(source)}"):
            self.where.fs.mv(source, target)
            self.quarantine_at.put_whole(target + ".reason.txt", (reason + "\n").encode("utf-8"))
        return self.quarantine_at.url_of(target)

    def land(self, name: str, content: bytes) -> None:
        """Write a file so that readers never see it half-written."""
        self.where.write(name, content)


def landing_from_url(url: str, quarantine_url: str, endpoint_url: str | None = None) -> Landing:
    """The landing zone at a folder path or an s3://bucket/prefix URL.

    Unreadable files go to `quarantine_url` when it is the same kind of storage as the landing
    zone, else to `quarantine` beside the landing root (s3://b/raw -> s3://b/quarantine).
    """
    where = open_location(url, endpoint_url, object_versions=True)
    if protocol_of(quarantine_url) == protocol_of(url):
        quarantine = open_location(quarantine_url, endpoint_url)
    else:
        quarantine = where.sibling("quarantine")
    return Landing(where, quarantine)


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
