"""Where stored things live: a local folder or an s3://bucket/prefix, both reached through fsspec.

The landing zone, the pins board and the reports all work on a `Location`: an fsspec filesystem
(which pins and s3fs already use), the root path inside it, and a backend, the one seam for what
really differs between a folder and S3:

- a listed file's content hash: sha256 of its bytes on a folder (cached while size, mtime and
  inode hold); the ETag on S3, or the version id on a versioned bucket;
- a listed file as a local path for DuckDB: the file itself; on S3 a download pinned to the
  listed version and ETag;
- a whole-file write: a hidden temp name, then a rename; on S3 one PUT;
- failures: on S3 one S3StorageError naming action, bucket and endpoint (s3.py);
- the start-up check: nothing to check on a folder; one HEAD per S3 bucket.

Everything else (listing, moving, reading) is the filesystem's own API. Which backend serves a URL
is decided once, from its protocol, in `open_location`; no other module asks.
"""

from __future__ import annotations

import hashlib
import os
import re
import time
import uuid
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import fsspec
from fsspec.implementations.local import LocalFileSystem

from . import s3

Content = bytes | Path  # what a whole-file write takes: the bytes, or a local file to copy


class Backend(Protocol):
    def describe(self) -> str: ...

    def guard(self, action: str) -> AbstractContextManager[None]: ...

    def check(self) -> None: ...

    def file_facts(self, path: str, info: dict) -> tuple[str, float]: ...  # (content hash, mtime)

    def local_copy(self, path: str, info: dict) -> AbstractContextManager[Path]: ...

    def put_whole(self, path: str, content: Content) -> None: ...


@dataclass(frozen=True)
class Location:
    """A folder or an S3 prefix: `fs` and `root` (a path as `fs` names it) plus its backend."""

    fs: fsspec.AbstractFileSystem
    root: str
    scheme: str  # "" for folders, "s3://" for S3: url_of() gives what a person can paste
    backend: Backend

    @property
    def url(self) -> str:
        return self.scheme + self.root

    def path(self, name: str) -> str:
        return f"{self.root}/{name}"

    def url_of(self, path: str) -> str:
        return self.scheme + path

    def describe(self) -> str:
        return self.backend.describe()

    def guard(self, action: str) -> AbstractContextManager[None]:
        """Any storage failure inside the block names what was done and where (on S3)."""
        return self.backend.guard(action)

    def check(self) -> None:
        self.backend.check()

    def put_whole(self, path: str, content: Content) -> None:
        """Write a whole file at `path`: readers see the old one or the new one, never half."""
        self.backend.put_whole(path, content)

    def write(self, name: str, content: Content) -> str:
        """put_whole under the root, guarded; returns where it went."""
        path = self.path(name)
        with self.guard(f"writing {self.url_of(path)}"):
            self.put_whole(path, content)
        return self.url_of(path)

    def read_start(self, name: str, size: int) -> bytes | None:
        """The first `size` bytes of a file under the root; None when there is no such file."""
        path = self.path(name)
        with self.guard(f"reading {self.url_of(path)}"):
            try:
                with self.fs.open(path, "rb") as handle:
                    return handle.read(size)
            except FileNotFoundError:
                return None

    def sibling(self, name: str) -> Location:
        """The location `name` beside this one: .../raw -> .../quarantine (s3://b -> s3://b/name)."""
        parent, sep, _ = self.root.rpartition("/")
        root = f"{parent}/{name}" if sep else f"{self.root}/{name}"
        return Location(self.fs, root, self.scheme, self.backend)


def open_location(
    url: str, endpoint_url: str | None = None, object_versions: bool = False
) -> Location:
    """The Location for a folder path or an s3://bucket/prefix URL.

    object_versions: list each object's version id where the store keeps versions (the landing
    zone hashes by it); folders ignore it.
    """
    url = unmangled(str(url))
    opener = _OPENERS.get(protocol_of(url))
    if opener is None:
        raise ValueError(f"not a folder or an s3://bucket/prefix URL: {url!r}")
    return opener(url, endpoint_url, object_versions)


def protocol_of(url: str) -> str:
    return fsspec.core.split_protocol(unmangled(str(url)))[0] or "file"


def unmangled(url: str) -> str:
    """`s3:/b/p` (what pathlib makes of `s3://b/p`) back to `s3://b/p`; anything else unchanged."""
    return re.sub(r"^([a-z][a-z0-9+.-]+):/(?!/)", r"\1://", url)


def check_storage(*urls: str, endpoint_url: str | None = None) -> None:
    """Fail at once (not deep in a run) when a configured location cannot be used: one HEAD per
    S3 bucket, naming bucket, endpoint and cause; folders pass."""
    for url in urls:
        open_location(url, endpoint_url).check()


def _folder(url: str, endpoint_url: str | None, object_versions: bool) -> Location:
    # Its own instance (fsspec caches filesystems by arguments): tests may wrap one's methods.
    fs = LocalFileSystem(auto_mkdir=True, skip_instance_cache=True)
    root = fs._strip_protocol(url).rstrip("/")
    return Location(fs, root, "", Folder(fs, root))


def _s3(url: str, endpoint_url: str | None, object_versions: bool) -> Location:
    where = s3.S3Location.parse(url, endpoint_url)
    fs = s3.filesystem(endpoint_url, version_aware=object_versions)
    return Location(fs, where.path, "s3://", s3.S3Backend(where, fs))


_OPENERS = {"file": _folder, "local": _folder, "s3": _s3}


# -- the folder backend -------------------------------------------------------------------------


class Folder:
    """A local folder: files are already local, written under a temp name then renamed."""

    def __init__(self, fs: LocalFileSystem, root: str):
        self.fs = fs
        self.root = root

    def describe(self) -> str:
        return f"folder {self.root}"

    def guard(self, action: str) -> AbstractContextManager[None]:
        return nullcontext()  # an OSError here already names the file

    def check(self) -> None:
        pass  # a missing folder is created on first write

    def file_facts(self, path: str, info: dict) -> tuple[str, float]:
        return listed_hash(path, info), float(info["mtime"])

    def local_copy(self, path: str, info: dict) -> AbstractContextManager[Path]:
        return nullcontext(Path(path))  # already local: no copy

    def put_whole(self, path: str, content: Content) -> None:
        directory, _, name = path.rpartition("/")
        # Hidden (listings and landing skip it) and the writer's own: two runs publishing the same
        # file at once (the lake's concurrent runs) must not rename each other's.
        partial = f"{directory}/.{name}.{uuid.uuid4().hex[:12]}.partial"
        put(self.fs, partial, content)
        os.replace(partial, path)  # a rename: readers see the whole file or the old one


def put(fs: fsspec.AbstractFileSystem, path: str, content: Content) -> None:
    if isinstance(content, bytes):
        fs.pipe_file(path, content)
    else:
        fs.put_file(str(content), path)


def file_hash(path: Path | str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


# Listing a folder landing zone (every sensor tick) would otherwise re-read every file to hash it:
# ~1.3 GB at 10^8 rows. A hash is reused while the file's size, mtime and inode are unchanged, and
# only for files that had settled when hashed (git's "racy clean" rule): a rewrite within the same
# coarse clock tick, same size, can keep the mtime, so a file changed less than SETTLED_S before
# it was hashed is hashed again next time.
SETTLED_S = 2.0
_hashes: dict[tuple, str] = {}


def listed_hash(path: str, info: dict) -> str:
    key = (path, info["size"], info["mtime"], info.get("ino"))
    if key not in _hashes:
        digest = file_hash(path)
        if time.time() - float(info["mtime"]) < SETTLED_S:
            return digest
        if len(_hashes) > 100_000:
            _hashes.clear()
        _hashes[key] = digest
    return _hashes[key]
