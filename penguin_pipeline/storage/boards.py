"""pins boards (a folder by default, S3 by URL) and the model pin written with vetiver.

pins names versions "<UTC second>-<hash5>" and sorts them as strings, so two versions written in
the same second can sort the older one last; it also stamps local time with a "Z". We pass
`created` ourselves, in UTC and strictly after the newest existing version, so "latest" is
always the version written last.

pins copies a version's folder (data file + data.txt) in one unordered `fs.put`, so a write cut
short can leave a version folder with data but no data.txt, or data.txt beside missing data; pins'
readers would then take that broken folder as latest. Our board writes the data files first and
data.txt last (each file whole: a temp name then a rename on folders, one PUT on S3), and lists
only complete versions, so every reader (ours, vetiver's, the API's) skips a half-written one.
"""

from __future__ import annotations

import io
import tempfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pins
from pins.boards import BaseBoard
from pins.errors import PinsError
from pins.versions import Version, guess_version

from . import s3

MODEL_PIN = "penguin_model"
REPORT_PIN = "penguin_report"
META_NAME = "data.txt"


class PenguinBoard(BaseBoard):
    """A pins board whose versions are written data-first and listed only when complete.

    On S3, every board operation's failure becomes one S3StorageError naming endpoint and bucket.
    """

    def __init__(self, path: str, fs, location: s3.S3Location | None = None, allow_pickle_read: bool = True):
        super().__init__(path, fs, versioned=True, allow_pickle_read=allow_pickle_read)
        self.location = location
        self._bucket_checked = False

    def describe(self) -> str:
        return self.location.describe() if self.location else f"folder {self.board}"

    def _guarded(self, action: str, func, *args, **kwargs):
        if self.location is None:
            return func(*args, **kwargs)
        with s3.guard(self.location, action):
            if not self._bucket_checked:
                # s3fs reports a missing bucket as "no such pin"; say what is really wrong.
                s3.head_bucket(self.fs, self.location)
                self._bucket_checked = True
            return func(*args, **kwargs)

    # -- reading: only complete versions ---------------------------------------------------

    def pin_exists(self, name: str) -> bool:
        return self._guarded(f"checking pin {name}", super().pin_exists, name)

    def pin_versions(self, name: str, as_df: bool = True):
        versions = self._guarded(f"listing versions of pin {name}", self._complete_versions, name)
        if as_df:
            import pandas as pd

            return pd.DataFrame([v.to_dict() for v in versions])
        return versions

    def pin_meta(self, name, version: str | None = None):
        return self._guarded(f"reading pin {name} metadata", super().pin_meta, name, version)

    def pin_read(self, name, version: str | None = None, hash: str | None = None):
        return self._guarded(f"reading pin {name}", super().pin_read, name, version, hash)

    def scan_versions(self, name: str) -> tuple[list, list[tuple[str, str]]]:
        """(complete versions oldest first, [(version, problem)] for newer ones that are not), from one listing."""
        return self._guarded(f"listing versions of pin {name}", self._scan_versions, name)

    def verify_version(self, name: str, version: str) -> str | None:
        """None when the version's files have the content hash its data.txt records; else what is wrong.

        The listing checks only names and sizes; this reads the files (a model is a few KB), so a file
        overwritten with garbage of the same size, or flipped bits, are caught before anyone trusts it.
        """
        return self._guarded(f"checking pin {name} version {version}", self._verify, name, version)

    def _complete_versions(self, name: str) -> list:
        return self._scan_versions(name)[0]

    def _scan_versions(self, name: str) -> tuple[list, list[tuple[str, str]]]:
        if not BaseBoard.pin_exists(self, name):
            raise PinsError(f"Cannot check version, since pin {name} does not exist")
        root = self.fs._strip_protocol(self.construct_path([self.path_to_pin(name)])).rstrip("/")
        sizes: dict[str, dict[str, int]] = {}
        for path, info in self.fs.find(root, detail=True).items():
            relative = self.fs._strip_protocol(path)[len(root) + 1:]
            version, _, file_name = relative.partition("/")
            if file_name and "/" not in file_name:
                sizes.setdefault(version, {})[file_name] = int(info.get("size") or 0)
        candidates = sorted((guess_version(v) for v, files in sizes.items() if META_NAME in files),
                            key=lambda v: v.version)
        # One data.txt read per call in the normal case: the newest version is complete. data.txt is
        # written last, so a version that has one but lacks its data was damaged, not cut short.
        damaged = []
        while candidates:
            problem = self._missing_data(name, candidates[-1], sizes[candidates[-1].version])
            if problem is None:
                break
            damaged.append((candidates.pop().version, problem))
        return candidates, damaged

    def _missing_data(self, name: str, version, present: dict[str, int]) -> str | None:
        try:
            meta = BaseBoard.pin_meta(self, name, version.version)
        except Exception:  # noqa: BLE001 - unreadable or truncated data.txt: not a complete version
            return f"its {META_NAME} cannot be read"
        files, expected = _files_and_sizes(meta)
        if not files:
            return f"its {META_NAME} names no file"
        for file, size in zip(files, expected):
            if file not in present:
                return f"{file} is missing"
            if size is not None and present[file] != size:
                return f"{file} has {present[file]} bytes where {META_NAME} records {size} (truncated or overwritten)"
        return None

    def _verify(self, name: str, version: str) -> str | None:
        try:
            meta = BaseBoard.pin_meta(self, name, version)
        except Exception as exc:  # noqa: BLE001 - any unreadable data.txt means "not a valid version"
            return f"its {META_NAME} cannot be read ({type(exc).__name__})"
        files, _ = _files_and_sizes(meta)
        hashes = []
        for file in files:
            try:
                with self.fs.open(self.construct_path([self.path_to_pin(name), version, file]), "rb") as handle:
                    hashes.append(Version.hash_file(handle, 1 << 20))
            except FileNotFoundError:
                return f"{file} is missing"
        # pins' own rule: one file's xxh64, or the xxh64 of several files' hashes joined.
        digest = hashes[0] if len(hashes) == 1 else Version.from_files([io.BytesIO("".join(hashes).encode())]).hash
        if digest != meta.pin_hash:
            return f"{', '.join(files)} does not match the content hash in {META_NAME} (damaged or overwritten)"
        return None

    # -- writing: data first, data.txt last ------------------------------------------------

    def _pin_store(self, x, name=None, type=None, title=None, description=None, metadata=None,
                   versioned=None, created=None, *, force_identical_write: bool = False):
        return self._guarded(f"writing pin {name}", self._store_in_order, x, name, type, title, description,
                             metadata, created, force_identical_write)

    def _store_in_order(self, x, name, type, title, description, metadata, created, force_identical_write):
        object_name = None
        if type == "file":
            path = Path(x[0] if isinstance(x, (list, tuple)) else x)
            x, object_name = str(path), path.name[: len(path.name) - len("".join(path.suffixes))]
        newest = None if force_identical_write else newest_version(self, name)
        last = self.pin_meta(name, newest.version) if newest else None
        with tempfile.TemporaryDirectory() as tmp_dir:
            # _create_meta, not prepare_pin_version: its version_setup (for unversioned boards only)
            # fails on a pin whose every version is damaged or half-written ("KeyError: 'version'").
            meta = self._create_meta(tmp_dir, x, self.path_to_pin(name), type, title, description,
                                     metadata, True, created, object_name=object_name)
            if last is not None and last.pin_hash == meta.pin_hash:
                return last
            target = self.path_to_deploy_version(name, meta.version.version)
            if self.fs.exists(target):
                raise PinsError(f"Attempting to write pin version to {target}, but that directory already exists.")
            files = sorted(Path(tmp_dir).iterdir(), key=lambda p: p.name == META_NAME)  # data.txt last
            for file in files:
                self._put_whole(str(file), f"{target}/{file.name}")
        return meta

    def _put_whole(self, source: str, target: str) -> None:
        if self.location is not None:
            self.fs.put_file(source, target)  # one PUT (or a multipart upload completed at the end)
            return
        partial = target.rsplit("/", 1)
        partial = f"{partial[0]}/.{partial[1]}.partial"
        self.fs.makedirs(target.rsplit("/", 1)[0], exist_ok=True)
        self.fs.put_file(source, partial)
        self.fs.mv(partial, target)  # a rename: readers see the whole file or none


def _files_and_sizes(meta) -> tuple[list[str], list[int | None]]:
    files = [meta.file] if isinstance(meta.file, str) else list(meta.file or [])
    sizes = [meta.file_size] if isinstance(meta.file_size, int) else list(meta.file_size or [])
    return files, sizes if len(sizes) == len(files) else [None] * len(files)


class DamagedVersion(PinsError):
    """A version whose files do not match its data.txt: never served, never taken as the latest model."""

    def __init__(self, name: str, version: str, problem: str):
        super().__init__(f"{name} version {version} is damaged: {problem}")
        self.version = version
        self.problem = problem


def board_from_url(url: str, endpoint_url: str | None = None) -> PenguinBoard:
    """A versioned pins board for a folder path or an s3://bucket/prefix URL."""
    if s3.is_s3_url(url):
        location = s3.S3Location.parse(url, endpoint_url)
        return PenguinBoard(location.path, s3.filesystem(endpoint_url), location)
    return PenguinBoard(str(url), pins.board_folder(str(url)).fs)


def next_created(board, name: str, now: datetime | None = None) -> datetime:
    """A naive-UTC creation time, whole seconds, strictly after the pin's newest version."""
    now = (now or datetime.now(timezone.utc)).astimezone(timezone.utc).replace(tzinfo=None, microsecond=0)
    newest = newest_version(board, name)
    if newest is not None and now <= newest.created:
        return newest.created + timedelta(seconds=1)
    return now


def newest_version(board, name: str) -> Version | None:
    """The newest complete version (half-written version folders are never taken)."""
    return newest_listed(board, name)[0]


def newest_listed(board, name: str) -> tuple[Version | None, list[tuple[str, str]]]:
    """From one listing (no data file read): the newest complete version, and the newer versions
    passed over as damaged, with why (a data.txt beside a missing or wrong-sized file)."""
    if not board.pin_exists(name):
        return None, []
    complete, damaged = board.scan_versions(name)
    versions = [v for v in complete if isinstance(v, Version)]
    return (max(versions, key=lambda v: v.version) if versions else None), damaged


def write_vetiver_pin(board, model, created: datetime | None = None) -> str:
    """vetiver_pin_write's layout (so VetiverModel.from_pin and vetiver's API read it), plus our `created`."""
    # vetiver (with FastAPI and pydantic) loads in ~1-2 s; runs that only read pin metadata skip it.
    from vetiver.meta import VetiverMeta
    from vetiver.utils import serialize_prototype

    if isinstance(model.metadata, dict):
        model.metadata = VetiverMeta.from_dict(model.metadata)
    meta = board.pin_write(
        model.model,
        name=model.model_name,
        type="joblib",
        description=model.description,
        metadata={
            "user": model.metadata.user,
            "vetiver_meta": {
                "required_pkgs": model.metadata.required_pkgs,
                "prototype": serialize_prototype(model.prototype) if model.prototype else None,
                "python_version": list(model.metadata.python_version) if model.metadata.python_version else None,
            },
        },
        versioned=True,
        created=created or next_created(board, model.model_name),
        force_identical_write=True,
    )
    return meta.version.version


def newest_sound_version(board, name: str = MODEL_PIN) -> tuple[Version | None, list[dict]]:
    """The newest version whose files match its data.txt (sizes and content hash), and the newer
    versions passed over as damaged ({"version", "problem"}), newest first."""
    if not board.pin_exists(name):
        return None, []
    complete, damaged = board.scan_versions(name)
    skipped = [{"version": version, "problem": problem} for version, problem in damaged]
    for version in reversed(complete):
        problem = board.verify_version(name, version.version)
        if problem is None:
            return version, skipped
        skipped.append({"version": version.version, "problem": problem})
    return None, skipped


def latest_model_facts(board, name: str = MODEL_PIN) -> dict | None:
    """The newest sound model version's id, creation time and our own metadata, without unpickling it.

    A damaged newer version is passed over (and listed under "damaged_versions"), so the pipeline
    never takes a broken file for the model it already has.
    """
    newest, damaged = newest_sound_version(board, name)
    if newest is None:
        return None
    meta = board.pin_meta(name, newest.version)
    return {"version": meta.version.version, "created": meta.created, **(meta.user.get("user") or {}),
            "damaged_versions": damaged}


def read_model(board, name: str = MODEL_PIN, version: str | None = None):
    """The vetiver.VetiverModel at `version`, or the newest sound one (model and metadata from one version).

    The version's files are checked against its data.txt first: DamagedVersion rather than a pickle error.
    """
    from vetiver import VetiverModel

    if version is None:
        newest, _ = newest_sound_version(board, name)
        if newest is None:
            raise PinsError(f"no complete, undamaged version of pin {name} on the board")
        version = newest.version
    else:
        problem = board.verify_version(name, version)
        if problem is not None:
            raise DamagedVersion(name, version, problem)
    return VetiverModel.from_pin(board, name, version=version)


def pin_report(board, path: Path | str, name: str = REPORT_PIN) -> str:
    """Pin the rendered report file beside the model (versioned like it); returns the version."""
    meta = board._pin_store(str(path), name, type="file", title="penguin report",
                            description="The rendered penguin report (self-contained HTML).",
                            created=next_created(board, name), force_identical_write=True)
    return meta.version.version


def report_bytes(board, name: str = REPORT_PIN, version: str | None = None) -> bytes:
    """The pinned report's content (works without a pins cache, on folders and S3)."""
    version = version or newest_version(board, name).version
    meta = board.pin_meta(name, version)
    return board.fs.cat(board.construct_path([board.path_to_pin(name), version, meta.file]))
