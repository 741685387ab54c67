"""How the pipeline reaches the DuckDB warehouse: the settings of every writing connection, the
limits DuckDB only enforces once set on an open connection, closing it whatever happens, and what to
tell the user when one of those limits (memory, spill space, disk) is reached.

This is the one module that knows how a connection is made and what its limits are. The processing
layer only ever receives an open connection: `processing/tables.py` (table names and schema) and
`processing/db.py` (small SQL helpers, and which DuckDB errors mean "a machine limit, not bad
data") are plain SQL over that connection, so they stay beside the processing functions that use
them and are tested with an in-memory DuckDB.

Two backends, chosen by PENGUIN_WAREHOUSE alone (README, "Warehouse backends"):
- unset: one DuckDB file. DuckDB allows one writing process per file; Dagster serialises the
  pipeline's DuckDB steps with the `duckdb` pool (dagster.yaml). Readers outside the pipeline open
  read-only connections.
- `ducklake:postgres:<libpq string>`: a DuckLake, catalog in that Postgres database, Parquet files
  under PENGUIN_LAKE_DATA (folder or s3://). Writers in many processes at once; every commit is a
  snapshot. The connection is an in-memory DuckDB with the lake attached and selected (`USE`), so
  the processing layer's SQL names the same tables on either backend.

Extensions come from installed Python packages (duckdb-extension-*), loaded by file path; DuckDB
never installs or downloads one at run time.
"""

from __future__ import annotations

import hashlib
import importlib
import os
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ..processing.db import out_of_resources
from ..processing.lter import literal

# DuckDB 2.0 accepts max_temp_directory_size in connect(config=...) and reports it back, but
# does not enforce it (measured: a 1 MB cap, 190 MB spilled); SET on the open connection, it is.
# DuckDB 1.5 ignores disabled_compression_methods in connect(config=...) too.
SET_AFTER_CONNECT = ("max_temp_directory_size", "disabled_compression_methods")
# FSST alone is tried on every text segment DuckDB writes, and on our tables (near-unique ids stored
# plain, the rest dictionary-friendly) it is almost never the one chosen: trying it is most of
# what compression costs when raw_penguins and penguins are written (docs, Benchmarks).
UNUSED_COMPRESSION = "fsst"
# A new DuckDB file in the running DuckDB's own storage format (DuckDB 2.0's default; 1.5 would
# write the 1.0-compatible one): its dictionary compression (dict_fsst) writes the raw layer ~25%
# faster than the old format's at the same size (docs, Benchmarks, "bench-compare"). Every reader
# is this same DuckDB, so the older format's compatibility buys nothing here.
STORAGE_VERSION = "latest"


class LimitReached(RuntimeError):
    """DuckDB ran out of memory, spill space or disk; the message names the settings to raise."""


class WarehouseUnavailable(RuntimeError):
    """The warehouse cannot be opened: one line naming what and what to do."""


def check_database_path(database: str) -> None:
    """Fail at once on a path that no retry can open: dagster-duckdb retries every IOException
    for about 100 s, which is meant for a file another process holds."""
    path = Path(database)
    if path.is_dir():
        raise WarehouseUnavailable(
            f"The warehouse PENGUIN_DUCKDB={path} is a folder; it must name a DuckDB file "
            f"(for example {path / 'penguins.duckdb'})."
        )


LAKE_SCHEME = "ducklake:postgres:"
LAKE_NAME = "lake"  # the attached lake's name in every lake connection
# Extension -> the package that ships it, built for exactly one DuckDB version: LAKE_DUCKDB, the
# DuckDB of the lake's environment .venv-lake (pyproject.toml, the extra `lake`).
LAKE_DUCKDB = "1.5.5"
EXTENSION_PACKAGES = {
    "ducklake": "duckdb-extension-ducklake",
    "postgres_scanner": "duckdb-extension-postgres-scanner",
    "httpfs": "duckdb-extension-httpfs",
}
# No extension is fetched from the network or loaded implicitly: only the packaged files, by path.
NO_DOWNLOADS = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


@dataclass(frozen=True)
class Lake:
    """A DuckLake: its Postgres catalog (libpq connection string) and where its files go."""

    catalog: str
    data_path: str  # a folder or s3://bucket/prefix
    endpoint_url: str | None = None  # S3-compatible endpoint (AWS_ENDPOINT_URL)

    @property
    def on_s3(self) -> bool:
        return self.data_path.startswith("s3://")

    @property
    def extensions(self) -> tuple[str, ...]:
        return ("ducklake", "postgres_scanner") + (("httpfs",) if self.on_s3 else ())


def lake_from_settings(
    warehouse: str | None, data_path: str, endpoint_url: str | None
) -> Lake | None:
    """The Lake that PENGUIN_WAREHOUSE names, or None for the DuckDB file."""
    if not warehouse:
        return None
    if not warehouse.startswith(LAKE_SCHEME):
        raise WarehouseUnavailable(
            f"PENGUIN_WAREHOUSE must be unset (the DuckDB file) or start with {LAKE_SCHEME} "
            "followed by a libpq connection string, e.g. "
            f"{LAKE_SCHEME}dbname=penguin_lake host=127.0.0.1 user=postgres"
        )
    return Lake(warehouse[len(LAKE_SCHEME) :], data_path, endpoint_url)


def extension_file(name: str) -> Path:
    """The packaged extension file for the running DuckDB (no download, ever)."""
    package = EXTENSION_PACKAGES[name]
    fix = (
        f"the lake runs in its own environment with DuckDB {LAKE_DUCKDB} (this one has "
        f"{duckdb.__version__}): `make setup-lake`, and make targets run there when "
        "PENGUIN_WAREHOUSE is set"
    )
    try:
        module = importlib.import_module(package.replace("-", "_"))
    except ImportError:
        raise WarehouseUnavailable(
            f"DuckDB extension {name} missing: the package {package} is not installed; {fix}"
        ) from None
    path = Path(module.__file__).parent / "extensions" / f"v{duckdb.__version__}"
    path = path / f"{name}.duckdb_extension"
    if not path.is_file():
        raise WarehouseUnavailable(
            f"DuckDB extension {name}: {package} has no build for DuckDB {duckdb.__version__} "
            f"({path} missing); {fix}"
        )
    return path


def connect_lake(lake: Lake, config: dict) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with the lake attached and selected, every limit of `config` applied."""
    con = duckdb.connect(config=config)
    try:
        for name in lake.extensions:
            con.execute(f"LOAD {literal(extension_file(name))}")
        if lake.on_s3:
            _s3_secret(con, lake.endpoint_url)
        # The first ATTACH creates the catalog's tables; runs starting together on a new lake
        # raced there (a duplicate key in Postgres), so attaching is one process at a time.
        with catalog_lock(lake, "attach"):
            con.execute(
                f"ATTACH {literal(LAKE_SCHEME + lake.catalog)} AS {LAKE_NAME} "
                f"(DATA_PATH {literal(_data_path(lake.data_path))})"
            )
        con.execute(f"USE {LAKE_NAME}")
    except duckdb.Error as exc:
        con.close()
        raise WarehouseUnavailable(_attach_problem(lake, exc)) from exc
    except BaseException:
        con.close()
        raise
    return con


def _data_path(path: str) -> str:
    """DuckLake's DATA_PATH: a folder (made absolute, created) or an s3:// prefix, ending in /."""
    if path.startswith("s3://"):
        return path.rstrip("/") + "/"
    folder = Path(path).resolve()
    folder.mkdir(parents=True, exist_ok=True)
    return f"{folder}/"


def _s3_secret(con: duckdb.DuckDBPyConnection, endpoint_url: str | None) -> None:
    """DuckDB's S3 credentials from boto3's chain (the same the board and landing use)."""
    import boto3

    credentials = boto3.session.Session().get_credentials()
    if credentials is None:
        raise WarehouseUnavailable(
            "PENGUIN_LAKE_DATA is on S3 but no AWS credentials were found: set AWS_ACCESS_KEY_ID "
            "and AWS_SECRET_ACCESS_KEY (or a profile)"
        )
    frozen = credentials.get_frozen_credentials()
    options = {
        "KEY_ID": frozen.access_key,
        "SECRET": frozen.secret_key,
        "REGION": boto3.session.Session().region_name or "us-east-1",
    }
    if frozen.token:
        options["SESSION_TOKEN"] = frozen.token
    if endpoint_url:
        scheme, _, host = endpoint_url.partition("://")
        options |= {"ENDPOINT": host.rstrip("/"), "URL_STYLE": "path"}
        options["USE_SSL"] = "true" if scheme == "https" else "false"
    body = ", ".join(f"{key} {literal(value)}" for key, value in options.items())
    con.execute(f"CREATE OR REPLACE SECRET penguin_lake_s3 (TYPE s3, {body})")


def _attach_problem(lake: Lake, exc: duckdb.Error) -> str:
    text = _first_line(exc)
    if "Unable to connect to Postgres" in text:
        return _unreachable(lake, text)
    return f"the lake cannot be opened (PENGUIN_LAKE_DATA={lake.data_path}): {masked(text)}"


def _unreachable(lake: Lake, libpq_error: str) -> str:
    # libpq's message may repeat the connection string (a password too): keep only its reason.
    reason = masked(libpq_error.rsplit(" failed: ", 1)[-1].strip())
    return (
        f"the lake's catalog cannot be reached ({masked(lake.catalog)}): {reason}. "
        "Start Postgres, create the database, or fix PENGUIN_WAREHOUSE"
    )


# A libpq password, as a keyword (password=..., quoted or not) or in a URI (postgresql://u:p@h).
_PASSWORDS = (
    re.compile(r"(password\s*=\s*)('(?:[^'\\]|\\.)*'|[^\s\"]+)", re.IGNORECASE),
    re.compile(r"(://[^:/@\s]+:)[^@\s]+(?=@)"),
)


def masked(text: str) -> str:
    """`text` (a libpq connection string, or a message that may repeat one) with every password
    shown as ***."""
    for password in _PASSWORDS:
        text = password.sub(r"\1***", text)
    return text


def catalog_lost(exc: BaseException, lake: Lake) -> str | None:
    """The one line for a statement that could not reach the lake's catalog (Postgres stopped or
    refusing mid-run), or None for any other failure. DuckDB's own message repeats the whole
    connection string, password included, so it is never shown."""
    for error in _causes(exc):
        if isinstance(error, duckdb.Error) and "Unable to connect to Postgres" in str(error):
            return _unreachable(lake, _first_line(error))
    return None


def check_lake(lake: Lake, config: dict) -> None:
    """Before any run: the catalog answers and the data path takes a file. One line otherwise."""
    if not lake.on_s3:
        _check_writable_folder(Path(lake.data_path))
    with session(connect_lake(lake, config), config) as con:
        if lake.on_s3:
            _check_writable_s3(con, lake.data_path)


def _check_writable_folder(folder: Path) -> None:
    problem = f"the lake's data folder PENGUIN_LAKE_DATA={folder} is not writable"
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise WarehouseUnavailable(f"{problem} ({exc.strerror}): point it elsewhere") from exc
    if not os.access(folder, os.W_OK | os.X_OK):
        raise WarehouseUnavailable(f"{problem}: give this user write access or point it elsewhere")


def _check_writable_s3(con: duckdb.DuckDBPyConnection, data_path: str) -> None:
    probe = f"{data_path.rstrip('/')}/.penguin-write-check.parquet"
    try:
        con.execute(f"COPY (SELECT 1 AS ok) TO {literal(probe)} (FORMAT parquet)")
    except duckdb.Error as exc:
        raise WarehouseUnavailable(
            f"the lake's data path PENGUIN_LAKE_DATA={data_path} is not writable: "
            f"{_first_line(exc)}. Check the bucket, AWS_ENDPOINT_URL and the credentials"
        ) from exc


@contextmanager
def file_claims(lake: Lake) -> Iterator:
    """Claims on landing files shared by every process writing to this lake: a Postgres advisory
    lock per file name on the lake's catalog, on one connection held for the run. Postgres frees a
    claim when its connection ends, also when the process was killed."""
    with _catalog(lake) as catalog:

        @contextmanager
        def claim(source_file: str) -> Iterator[None]:
            with _advisory_lock(catalog, f"landing/{source_file}"):
                yield

        yield claim


@contextmanager
def _catalog(lake: Lake):
    import psycopg2

    try:
        catalog = psycopg2.connect(lake.catalog, connect_timeout=10)
    except psycopg2.OperationalError as exc:
        raise WarehouseUnavailable(_unreachable(lake, _first_line(exc))) from None
    catalog.autocommit = True
    try:
        yield catalog
    finally:
        catalog.close()


@contextmanager
def catalog_lock(lake: Lake, name: str) -> Iterator[None]:
    """One holder of `name` at a time among every process using this lake: a Postgres advisory
    lock on its catalog, which Postgres frees when the holder's connection ends (a killed process
    keeps nothing locked)."""
    with _catalog(lake) as catalog, _advisory_lock(catalog, name):
        yield


@contextmanager
def _advisory_lock(catalog, name: str) -> Iterator[None]:
    key = lock_key(name)
    with catalog.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [key])
    try:
        yield
    finally:
        with catalog.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [key])


def lock_key(name: str) -> int:
    """A signed 64-bit Postgres advisory lock key for one of our names."""
    digest = hashlib.blake2b(f"penguin_pipeline/{name}".encode(), digest_size=8)
    return int.from_bytes(digest.digest(), "big", signed=True)


def table_at(table: str, snapshot: int | None) -> str:
    """`table` as it was at a lake snapshot (DuckLake time travel); the table itself for None."""
    return table if snapshot is None else f"{table} AT (VERSION => {int(snapshot)})"


def current_snapshot(con: duckdb.DuckDBPyConnection) -> int | None:
    """The lake's newest snapshot id; None on the DuckDB file (it has no snapshots)."""
    if not is_lake(con):
        return None
    return con.execute(f"SELECT id FROM {LAKE_NAME}.current_snapshot()").fetchall()[0][0]


def is_lake(con: duckdb.DuckDBPyConnection) -> bool:
    rows = con.execute(
        "SELECT type FROM duckdb_databases() WHERE database_name = current_database()"
    ).fetchall()
    return bool(rows) and rows[0][0] == "ducklake"


def maintain(con: duckdb.DuckDBPyConnection, keep: str) -> dict:
    """Retention: write rows DuckLake kept inline in the catalog to Parquet, expire snapshots
    older than `keep` (an interval, e.g. '7 days'), merge small adjacent files, and delete the
    files no remaining snapshot refers to and the orphans of killed runs. Returns how many
    snapshots expired, small files were merged into larger ones, and files were deleted."""
    interval = f"now() - INTERVAL {literal(keep)}"
    lake = f"'{LAKE_NAME}'"
    con.execute(f"CALL ducklake_flush_inlined_data({lake})").fetchall()
    expired = con.execute(
        f"CALL ducklake_expire_snapshots({lake}, older_than => {interval})"
    ).fetchall()
    merged = con.execute(
        f"SELECT coalesce(sum(files_processed), 0) FROM ducklake_merge_adjacent_files({lake})"
    ).fetchall()[0][0]
    deleted = con.execute(
        f"CALL ducklake_cleanup_old_files({lake}, older_than => {interval})"
    ).fetchall()
    # Files no snapshot ever had: those a killed run wrote before it could commit.
    orphans = con.execute(
        f"CALL ducklake_delete_orphaned_files({lake}, older_than => {interval})"
    ).fetchall()
    return {
        "snapshots_expired": len(expired),
        "files_merged": int(merged),
        "files_deleted": len(deleted),
        "orphaned_files_deleted": len(orphans),
    }


def connection_config(
    memory_limit: str, threads: int, temp_dir: Path, max_temp_size: str | None = None
) -> dict:
    """Settings for every pipeline connection: bounded memory, spilling to temp_dir (capped), no
    FSST tried when writing, and no extension ever downloaded or loaded implicitly (on either
    backend)."""
    config = {
        "memory_limit": memory_limit,
        "threads": threads,
        "temp_directory": str(temp_dir),
        "disabled_compression_methods": UNUSED_COMPRESSION,
        "storage_compatibility_version": STORAGE_VERSION,
        **NO_DOWNLOADS,
    }
    if max_temp_size:
        config["max_temp_directory_size"] = max_temp_size
    return config


def apply_limits(con: duckdb.DuckDBPyConnection, config: dict) -> None:
    for name in SET_AFTER_CONNECT:
        if config.get(name):
            con.execute(f"SET {name} = {literal(config[name])}")  # SET takes no parameters


@contextmanager
def session(con: duckdb.DuckDBPyConnection, config: dict) -> Iterator[duckdb.DuckDBPyConnection]:
    """Use an open connection with every limit enforced; closed at the end whatever happens.

    A limit reached inside the block becomes LimitReached (its cause: the block's own error).
    """
    try:
        apply_limits(con, config)
        yield con
    except Exception as exc:
        problem = resource_problem(exc, config)
        if problem is None:
            raise
        raise LimitReached(problem) from exc
    finally:
        con.close()


def resource_problem(exc: BaseException, config: dict) -> str | None:
    """What to say when DuckDB hit a limit, and which settings to raise; None for other failures.

    Looks through the exception's causes: a step may wrap DuckDB's error in its own
    (FileLoadFailed).
    """
    for error in _causes(exc):
        if out_of_resources(error):
            return f"{_advice(error, config)} (DuckDB: {_first_line(error)})"
    return None


def _advice(error: duckdb.Error, config: dict) -> str:
    text = str(error)
    temp_dir = config.get("temp_directory") or "none"
    memory = config.get("memory_limit")
    cap = config.get("max_temp_directory_size", "90% of the free disk")
    if "max_temp_directory_size" in text or "failed to offload" in text:
        return (
            "The warehouse's temporary space is full: DuckDB's spill folder "
            f"{temp_dir} reached its limit PENGUIN_DUCKDB_MAX_TEMP_SIZE={cap}. "
            "Raise PENGUIN_DUCKDB_MAX_TEMP_SIZE, point PENGUIN_DUCKDB_TEMP_DIR at a disk "
            f"with more room, or raise PENGUIN_DUCKDB_MEMORY_LIMIT (now {memory}) so that "
            "less spills."
        )
    if "No space left" in text or "quota" in text:
        return (
            "The disk under the warehouse is full. Free space there, or move "
            f"PENGUIN_DUCKDB_TEMP_DIR (now {temp_dir}) or PENGUIN_DUCKDB to a disk with more room."
        )
    return (
        f"The warehouse ran out of memory: PENGUIN_DUCKDB_MEMORY_LIMIT={memory}, spill folder "
        f"PENGUIN_DUCKDB_TEMP_DIR={temp_dir}. Raise PENGUIN_DUCKDB_MEMORY_LIMIT, or give DuckDB "
        "a spill folder with room (PENGUIN_DUCKDB_TEMP_DIR, PENGUIN_DUCKDB_MAX_TEMP_SIZE)."
    )


def _causes(exc: BaseException):
    seen, todo = set(), [exc]
    while todo:
        error = todo.pop(0)
        if id(error) in seen:
            continue
        seen.add(id(error))
        yield error
        todo += [
            c
            for c in (error.__cause__, error.__context__, getattr(error, "cause", None))
            if isinstance(c, BaseException)
        ]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
