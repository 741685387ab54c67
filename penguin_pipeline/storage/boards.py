"""The pins board (a folder by default, S3 by URL) and the model pin, written with vetiver.

A pins BaseBoard over the board's storage Location (locations.py): the same code for a folder and
for S3. Two pins behaviours are not what the pipeline needs, and no pins option changes them:

- Version names. pins names versions "<second>-<hash5>", stamps local time with a "Z"
  (rstudio/pins-python#285) and sorts versions as strings, so two versions written in the same
  second collide or sort by hash, the older one last (rstudio/pins-python#258, #170). This board
  stamps each new version in UTC, strictly after the newest one (`prepare_pin_version`), so
  "latest" is always the version written last, whoever writes (pin_write, pin_upload, vetiver).
- Half-written versions. pins copies a version's folder (data file + data.txt) with one unordered
  `fs.put`, so a write cut short can leave data without data.txt, or data.txt beside missing data,
  and pins' readers take such a folder for the latest version (no upstream issue found). The board
  hands pins a filesystem view (`VersionFolders`) whose folder copy writes the data files first and
  data.txt last, each file whole (temp name + rename on folders, one PUT on S3), and lists only
  complete versions, so every reader (ours, vetiver's, the API's) skips a half-written one.
"""

from __future__ import annotations

import io
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pins.boards import BaseBoard
from pins.config import pins_options
from pins.errors import PinsError
from pins.versions import Version, guess_version

from .locations import Location, open_location

NAME_ATTEMPTS = 5  # writes of one pin that may find their version name taken by a concurrent one

MODEL_PIN = "penguin_model"
REPORT_PIN = "penguin_report"
# Which model version is champion: each promotion decision is one version of this small JSON pin,
# the decision in its metadata, written through the same data-first board as the model (pins'
# own files are never rewritten).
CHAMPION_PIN = "penguin_model_champion"
METRICS_PIN = "penguin_model_metrics"  # vetiver's monitoring pin: metrics per season and version
# penguin_summary at species x sex grain: what the model explorer draws, through the API
SUMMARY_PIN = "penguin_summary"
META_NAME = "data.txt"

pins_options.quiet = True  # pins prints each write to stderr; its logger still says it


class VersionFolders:
    """The board's filesystem as pins sees it: fsspec's own, except for copying a folder onto it.

    pins (0.9.2) writes a pin version with one `fs.put(tmp_dir, version_path, recursive=True)`;
    here that writes the folder's files one by one, each whole, data.txt last, so a version with
    a readable data.txt always has all its data.
    """

    def __init__(self, location: Location):
        self.location = location

    def __getattr__(self, name: str):
        return getattr(self.location.fs, name)

    def put(self, lpath, rpath, recursive: bool = False, **kwargs) -> None:
        files = sorted(Path(lpath).iterdir(), key=lambda p: (p.name == META_NAME, p.name))
        for file in files:
            self.write_file(file, f"{str(rpath).rstrip('/')}/{file.name}")

    def write_file(self, source: Path, target: str) -> None:
        self.location.put_whole(target, source)


class PenguinBoard(BaseBoard):
    """A versioned pins board whose versions are stamped in UTC, written data-first and listed only
    when complete. On S3, every board operation's failure becomes one S3StorageError naming
    endpoint and bucket."""

    def __init__(self, location: Location, allow_pickle_read: bool = True):
        super().__init__(
            location.root,
            VersionFolders(location),
            versioned=True,
            allow_pickle_read=allow_pickle_read,
        )
        self.location = location
        # pin name -> the version this board last wrote: vetiver's writer returns nothing, and the
        # newest listed version after a write may be another run's.
        self.written: dict[str, str] = {}

    def describe(self) -> str:
        return self.location.describe()

    def _guarded(self, action: str, func, *args, **kwargs):
        with self.location.guard(action):
            return func(*args, **kwargs)

    # -- reading: only complete versions ---------------------------------------------------

    def pin_exists(self, name: str) -> bool:
        """True when the pin has a complete version (a half-written one is not a version yet)."""
        return bool(self.scan_versions(name)[0])

    def pin_versions(self, name: str, as_df: bool = True):
        versions = self.scan_versions(name)[0]
        if not versions:
            raise PinsError(f"Cannot check version, since pin {name} has no complete version")
        if as_df:
            import pandas as pd

            return pd.DataFrame([v.to_dict() for v in versions])
        return versions

    def pin_meta(self, name, version: str | None = None):
        return self._guarded(f"reading pin {name} metadata", super().pin_meta, name, version)

    def pin_read(self, name, version: str | None = None, hash: str | None = None):
        return self._guarded(f"reading pin {name}", super().pin_read, name, version, hash)

    def scan_versions(self, name: str) -> tuple[list, list[tuple[str, str]]]:
        """(complete versions oldest first, [(version, problem)] for newer ones that are not),
        from one listing; ([], []) for a pin never written."""
        return self._guarded(f"listing versions of pin {name}", self._scan_versions, name)

    def version_names(self, name: str) -> set[str]:
        """The name of every version folder of the pin, complete or not, from one listing."""
        return set(self._guarded(f"listing versions of pin {name}", self._version_files, name))

    def creation_slots(self, name: str) -> tuple[Version | None, set[datetime]]:
        """From one listing: the newest complete version, and the creation times in the names of
        every version folder of the pin, complete or not (a concurrent writer's half-written
        version has taken its name already)."""
        return self._guarded(f"listing versions of pin {name}", self._creation_slots, name)

    def _creation_slots(self, name: str) -> tuple[Version | None, set[datetime]]:
        files = self._version_files(name)
        complete, _ = self._complete_versions(name, files)
        versions = [guess_version(folder) for folder in files]
        taken = {v.created for v in versions if isinstance(v, Version)}  # VersionRaw: no time
        return _newest(complete), taken

    def verify_version(self, name: str, version: str) -> str | None:
        """None when the version's files have the content hash its data.txt records; else what is
        wrong.

        The listing checks only names and sizes; this reads the files (a model is a few KB), so a
        file overwritten with garbage of the same size, or flipped bits, are caught before anyone
        trusts it.
        """
        return self._guarded(f"checking pin {name} version {version}", self._verify, name, version)

    def _scan_versions(self, name: str) -> tuple[list, list[tuple[str, str]]]:
        return self._complete_versions(name, self._version_files(name))

    def _version_files(self, name: str) -> dict[str, dict[str, int]]:
        """Version folder -> {file name: size} for every folder of the pin, from one listing."""
        root = self.construct_path([self.path_to_pin(name)])
        sizes: dict[str, dict[str, int]] = {}
        for path, info in self.fs.find(root, detail=True).items():
            version, _, file_name = path[len(root) + 1 :].partition("/")
            files = sizes.setdefault(version, {})
            if file_name and "/" not in file_name:
                files[file_name] = int(info.get("size") or 0)
        return sizes

    def _complete_versions(
        self, name: str, sizes: dict[str, dict[str, int]]
    ) -> tuple[list, list[tuple[str, str]]]:
        candidates = sorted(
            (guess_version(v) for v, files in sizes.items() if META_NAME in files),
            key=lambda v: v.version,
        )
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
        except Exception as exc:  # noqa: BLE001 - unreadable or truncated data.txt: not complete
            if _store_failed(exc):
                raise  # the store did not answer: that says nothing about this version
            return f"its {META_NAME} cannot be read"
        files, expected = _files_and_sizes(meta)
        if not files:
            return f"its {META_NAME} names no file"
        for file, size in zip(files, expected, strict=True):
            if file not in present:
                return f"{file} is missing"
            if size is not None and present[file] != size:
                return (
                    f"{file} has {present[file]} bytes where {META_NAME} records {size} "
                    "(truncated or overwritten)"
                )
        return None

    def _verify(self, name: str, version: str) -> str | None:
        try:
            meta = BaseBoard.pin_meta(self, name, version)
        except Exception as exc:  # noqa: BLE001 - any unreadable data.txt means "not a valid version"
            if _store_failed(exc):
                raise  # the store did not answer: that says nothing about this version
            return f"its {META_NAME} cannot be read ({type(exc).__name__})"
        files, _ = _files_and_sizes(meta)
        hashes = []
        for file in files:
            try:
                with self.fs.open(
                    self.construct_path([self.path_to_pin(name), version, file]), "rb"
                ) as handle:
                    hashes.append(Version.hash_file(handle, 1 << 20))
            except FileNotFoundError:
                return f"{file} is missing"
        # pins' own rule: one file's xxh64, or the xxh64 of several files' hashes joined.
        digest = (
            hashes[0]
            if len(hashes) == 1
            else Version.from_files([io.BytesIO("".join(hashes).encode())]).hash
        )
        if digest != meta.pin_hash:
            return (
                f"{', '.join(files)} does not match the content hash in {META_NAME} "
                "(damaged or overwritten)"
            )
        return None

    # -- writing: pins' own pin_write and pin_upload ------------------------------------------

    def pin_write(self, x, name=None, *args, force_identical_write: bool = True, **kwargs):
        """pins' pin_write, except that it always writes a new version by default: whether one is
        wanted is the caller's decision (the pipeline compares training data), and pins' own check
        would compare with the newest listed version even when that one is damaged."""
        forced = {"force_identical_write": force_identical_write}
        meta = self._new_version(super().pin_write, x, name, *args, **kwargs, **forced)
        self.written[name] = meta.version.version
        return meta

    def pin_upload(self, paths, name=None, *args, **kwargs):
        return self._new_version(super().pin_upload, paths, name, *args, **kwargs)

    def _new_version(self, write, x, name, *args, **kwargs):
        """pins' `write` of a new version of `name`. Two writers stamped the same second with the
        same content (runs at once fitting the same data, or rendering the same report on the
        lake, which has no pool of one): the one that lost takes the next free second."""
        for attempt in range(1, NAME_ATTEMPTS + 1):
            try:
                return self._guarded(f"writing pin {name}", write, x, name, *args, **kwargs)
            except PinsError as exc:
                if "already exists" not in str(exc) or attempt == NAME_ATTEMPTS:
                    raise

    def prepare_pin_version(
        self,
        pin_dir_path,
        x,
        name=None,
        type=None,
        title=None,
        description=None,
        metadata=None,
        versioned=None,
        created=None,
        object_name=None,
    ):
        """pins' own, with `created` in UTC and strictly after the newest version when not given
        (pins-python#285, #258: see the module docstring). Every pins write comes through here."""
        return super().prepare_pin_version(
            pin_dir_path,
            x,
            name,
            type,
            title,
            description,
            metadata,
            versioned,
            created or next_created(self, name),
            object_name,
        )


def _files_and_sizes(meta) -> tuple[list[str], list[int | None]]:
    files = [meta.file] if isinstance(meta.file, str) else list(meta.file or [])
    sizes = [meta.file_size] if isinstance(meta.file_size, int) else list(meta.file_size or [])
    return files, sizes if len(sizes) == len(files) else [None] * len(files)


class DamagedVersion(PinsError):
    """A version whose files do not match its data.txt: never served, never taken as the latest
    model."""

    def __init__(self, name: str, version: str, problem: str):
        super().__init__(f"{name} version {version} is damaged: {problem}")
        self.version = version
        self.problem = problem


def board_from_url(url: str, endpoint_url: str | None = None) -> PenguinBoard:
    """A versioned pins board for a folder path or an s3://bucket/prefix URL."""
    return PenguinBoard(open_location(url, endpoint_url))


def next_created(board, name: str, now: datetime | None = None) -> datetime:
    """A naive-UTC creation time, whole seconds, strictly after the pin's newest complete version
    and in a second no version folder of the pin has taken."""
    now = (now or datetime.now(UTC)).astimezone(UTC).replace(tzinfo=None, microsecond=0)
    newest, taken = board.creation_slots(name)
    created = newest.created + timedelta(seconds=1) if newest and now <= newest.created else now
    # A second another writer's folder has (half-written: not complete) is not free either.
    while created in taken:
        created += timedelta(seconds=1)
    return created


def has_version(board, name: str, version: str) -> bool:
    """Is `version` one of the pin's version folders (damaged or not)? Answered from the listing,
    so a name that is no folder (a typo, "../x") never reaches the store as a path."""
    return version in board.version_names(name)


def newest_version(board, name: str) -> Version | None:
    """The newest complete version (half-written version folders are never taken)."""
    return newest_listed(board, name)[0]


def newest_listed(board, name: str) -> tuple[Version | None, list[tuple[str, str]]]:
    """From one listing (no data file read): the newest complete version, and the newer versions
    passed over as damaged, with why (a data.txt beside a missing or wrong-sized file)."""
    complete, damaged = board.scan_versions(name)
    return _newest(complete), damaged


def _newest(complete: list) -> Version | None:
    versions = [v for v in complete if isinstance(v, Version)]  # VersionRaw: no creation time
    return max(versions, key=lambda v: v.version) if versions else None


def write_vetiver_pin(board, model) -> str:
    """Pin a VetiverModel with vetiver's own vetiver_pin_write; returns the version it wrote.

    The board stamps the version (UTC, after the newest) and writes it data-first, so vetiver's
    reader (VetiverModel.from_pin) and ours see it whole or not at all.
    """
    # vetiver (with FastAPI and pydantic) loads in ~1-2 s; runs that only read pin metadata skip it.
    from vetiver import vetiver_pin_write
    from vetiver.utils import modelcard_options

    modelcard_options.quiet = True  # vetiver prints a model card reminder to stderr on each write
    vetiver_pin_write(board, model)
    return board.written[model.model_name]


def newest_sound_version(board, name: str = MODEL_PIN) -> tuple[Version | None, list[dict]]:
    """The newest version whose files match its data.txt (sizes and content hash), and the newer
    versions passed over as damaged ({"version", "problem"}), newest first."""
    complete, damaged = board.scan_versions(name)
    skipped = [{"version": version, "problem": problem} for version, problem in damaged]
    for version in reversed(complete):
        problem = board.verify_version(name, version.version)
        if problem is None:
            return version, skipped
        skipped.append({"version": version.version, "problem": problem})
    return None, skipped


def latest_model_facts(board, name: str = MODEL_PIN) -> dict | None:
    """The newest sound model version's id, creation time and our own metadata, without
    unpickling it.

    A damaged newer version is passed over (and listed under "damaged_versions"), so the pipeline
    never takes a broken file for the model it already has.
    """
    newest, damaged = newest_sound_version(board, name)
    if newest is None:
        return None
    return {**model_facts(board, newest.version, name), "damaged_versions": damaged}


def read_model(board, name: str = MODEL_PIN, version: str | None = None):
    """The vetiver.VetiverModel at `version`, or the newest sound one (model and metadata from one
    version).

    The version's files are checked against its data.txt first: DamagedVersion rather than a
    pickle error.
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
    meta = board.pin_upload(
        str(path),
        name,
        title="penguin report",
        description="The rendered penguin report (self-contained HTML).",
    )
    return meta.version.version


def _store_failed(exc: BaseException) -> bool:
    """An error of the store itself (unreachable, HTTP 5xx, access denied), not of a file's
    content. A file gone since the listing is content: its version is incomplete."""
    from .s3 import storage_errors

    return isinstance(exc, storage_errors()) and not isinstance(exc, FileNotFoundError)


# --- champion and monitoring pins ------------------------------------------------------------


def latest_decision(board) -> dict | None:
    """The newest promotion decision (promoted, champion, challenger, reason, figures, decided_at),
    from its data.txt alone; None before the first."""
    newest, _ = newest_listed(board, CHAMPION_PIN)
    if newest is None:
        return None
    return dict(board.pin_meta(CHAMPION_PIN, newest.version).user or {})


def champion(board) -> tuple[dict | None, dict | None]:
    """The newest promotion decision and the champion's facts (each None when there is none): the
    decision's champion, else (a board from before champions) the newest sound model version.
    The decision's data.txt is read once."""
    decision = latest_decision(board)
    version = (decision or {}).get("champion")
    if not version:
        newest, _ = newest_sound_version(board, MODEL_PIN)
        version = newest.version if newest else None
    return decision, (model_facts(board, version) if version else None)


def model_facts(board, version: str, name: str = MODEL_PIN) -> dict:
    """One model version's id, creation time and our metadata (no pickle read)."""
    meta = board.pin_meta(name, version)
    return {
        "version": meta.version.version,
        "created": meta.created,
        **(meta.user.get("user") or {}),
    }


def write_decision(board, decision: dict) -> str:
    """Record a promotion decision as a new version of the champion pin; returns the version."""
    meta = board.pin_write(
        decision,
        CHAMPION_PIN,
        type="json",
        title="penguin_model champion",
        description=f"{MODEL_PIN} version served by default, and why (the newest decision)",
        metadata=decision,
    )
    return meta.version.version


def pin_season_metrics(board, metrics) -> bool:
    """Upsert metric rows (vetiver's shape: index, n, metric, estimate, plus model_version and
    species) into the metrics pin with vetiver's pin_metrics, by season date; the first rows
    create the pin. True when a version was written: rows the pin already holds write none."""
    if metrics.empty:
        return False
    if not board.pin_exists(METRICS_PIN):
        board.pin_write(
            metrics,
            METRICS_PIN,
            type="csv",
            title="penguin_model metrics per season",
            description="out-of-time metrics of each served version, per field season",
        )
        return True
    if _same_metrics(board.pin_read(METRICS_PIN), metrics):
        return False
    from vetiver import pin_metrics

    pin_metrics(board, metrics, METRICS_PIN, pin_type="csv", index_name="index", overwrite=True)
    return True


def _same_metrics(pinned, metrics) -> bool:
    """Whether the pin already holds exactly these rows for these seasons (CSV keeps ~15
    significant digits: compared at 9 decimals)."""
    import pandas as pd

    def canonical(frame):
        frame = frame.assign(index=pd.to_datetime(frame["index"]))
        frame = frame.assign(estimate=frame["estimate"].astype(float).round(9))
        keys = ["index", "model_version", "species", "metric"]
        return frame[[*keys, "n", "estimate"]].sort_values(keys).reset_index(drop=True)

    new = canonical(metrics)
    old = canonical(pinned)
    old = old[old["index"].isin(new["index"])].reset_index(drop=True)
    return old.astype(str).equals(new.astype(str))


def read_season_metrics(board):
    """The metrics pin as a DataFrame, or None before the first season was scored."""
    if not board.pin_exists(METRICS_PIN):
        return None
    return board.pin_read(METRICS_PIN)


# --- the lookup table, published for readers that never open the warehouse -------------------


def pin_summary(board, records: list[dict]) -> str | None:
    """Publish penguin_summary at species x sex grain (processing.summary.by_species_and_sex) as
    a JSON pin; the version written, or None when the newest version holds these rows already
    (every run would otherwise add one)."""
    newest = read_summary(board)
    if newest is not None and newest[1] == records:
        return None
    meta = board.pin_write(
        records,
        SUMMARY_PIN,
        type="json",
        title="penguin_summary by species and sex",
        description="counts, means and standard deviations of each measure per species and sex",
    )
    return meta.version.version


def read_summary(board) -> tuple[str, list[dict]] | None:
    """(version, records) of the newest summary pin; None before the first."""
    newest, _ = newest_listed(board, SUMMARY_PIN)
    if newest is None:
        return None
    return newest.version, board.pin_read(SUMMARY_PIN, newest.version)
