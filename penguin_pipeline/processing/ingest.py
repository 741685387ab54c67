"""Landing file -> validated rows: read one file in DuckDB, drop exact duplicates, quarantine
bad rows.

A file-level problem (not CSV, unreadable, wrong columns, bad encoding) raises LandingFileError
naming the file; row-level problems never fail the file, they go to the rejects with a reason.
Everything happens in DuckDB (push work to the data source): Python only sees the counts.

A run over many files (ingest_files) is a pre-flight over every file, then one transaction per
file: a run never holds more than one file's rows uncommitted (one transaction over all files
makes DuckDB spill every transaction-local row at scale).
"""

from __future__ import annotations

import codecs
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, ExitStack, contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb

from . import tables
from .db import first_row, out_of_resources, retry_conflicts, row_count, scalar, transaction
from .lter import LTER_COLUMNS, REQUIRED_COLUMNS, literal, quote, row_is_valid, row_problems


class LandingFileError(ValueError):
    """A whole landing file cannot be read as LTER data; the message names the file and the
    problem."""

    def __init__(self, source_file: str, problem: str):
        super().__init__(f"{source_file}: {problem}")
        self.source_file = source_file
        self.problem = problem


@dataclass
class FileAccount:
    """What happened to each row of one landing file; rows_read must equal the other three."""

    source_file: str
    file_hash: str
    rows_read: int = 0
    rows_loaded: int = 0
    rows_rejected: int = 0
    duplicates_dropped: int = 0
    ignored_columns: list[str] = field(default_factory=list)
    note: str = ""
    seconds: dict[str, float] = field(default_factory=dict)  # per step: stage, publish

    @property
    def balanced(self) -> bool:
        return self.rows_read == self.rows_loaded + self.rows_rejected + self.duplicates_dropped

    def as_metadata(self) -> dict:
        return asdict(self)


UNCHANGED = "unchanged since last load: skipped"
_HASH = "__row_hash"
_VALID = "__valid"

_CSV_REJECTS = (
    ", store_rejects = true, rejects_table = 'landing_reject_errors', "
    "rejects_scan = 'landing_reject_scans'"
)
_READERS = {
    ".csv": "read_csv({file}, all_varchar = true, header = true" + _CSV_REJECTS + ")",
    ".parquet": "read_parquet({file}, file_row_number = true)",
}
_LTER = ", ".join(quote(c) for c in LTER_COLUMNS)


def reader_sql(path: Path, file: str = "?") -> str:
    """DuckDB's reader for the file; `file` is a parameter placeholder or, for a view, a literal."""
    suffix = path.suffix.lower()
    if suffix not in _READERS:
        raise LandingFileError(
            path.name, f"unsupported file type '{suffix}' (expected .csv or .parquet)"
        )
    return _READERS[suffix].format(file=file)


def _ordinal_sql(path: Path) -> str:
    # Parquet numbers its rows itself. For CSV, row_number() over an unordered window streams in
    # scan order; rowid cannot be used, because rows written inside a transaction get
    # transaction-local rowids.
    # The offsets give source_line directly: CSV line (header = line 1), Parquet row number
    # (from 1).
    return (
        "file_row_number + 1" if path.suffix.lower() == ".parquet" else "row_number() OVER () + 1"
    )


def stage_file(
    con: duckdb.DuckDBPyConnection, path: Path, source_file: str, file_hash: str
) -> FileAccount:
    """Fill staged_rows (loadable) and staged_rejects (quarantined) from one landing file; the
    account has rows_read and duplicates_dropped (publish_file counts the rest as it writes them).

    A Parquet file without exact duplicates (distinct row hashes, one scan of six columns) is
    staged as views over the file itself: publish_file inserts its valid rows in one read, and
    reads it again only for the rows that fail. Any other file: one scan into a temp table
    `landed` (the LTER columns as text, source_line, a row hash and a validity flag); exact
    duplicates are found by the hash and confirmed on all columns; the reasons are only spelled
    out for the rows that fail. Memory: about one file's rows.
    """
    account = FileAccount(source_file=source_file, file_hash=file_hash)
    if path.stat().st_size == 0:
        account.note = "empty file: nothing to load"
        _create_empty_stage(con, source_file)
        return account
    landed_columns = _describe(con, path, source_file)
    columns = _column_map(landed_columns, source_file)
    account.ignored_columns = sorted(set(landed_columns) - set(columns.values()))
    distinct_rows = _distinct_parquet_rows(con, path, source_file, columns)
    if distinct_rows:
        _stage_straight_from_file(con, path, source_file, columns)
        account.rows_read = distinct_rows
        return account
    _read_landed(con, path, source_file, columns)
    parse_rejects = _parse_rejects(con, path, source_file)
    _number_lines(con, parse_rejects)
    rows_landed = row_count(con, "landed")
    account.duplicates_dropped = _drop_duplicates(con)
    _split_valid_and_rejected(con, source_file)
    account.rows_read = rows_landed + len(parse_rejects)
    if account.rows_read == 0:
        account.note = "header only: nothing to load"
    return account


def _describe(con, path: Path, source_file: str) -> list[str]:
    try:
        rows = con.execute(f"DESCRIBE SELECT * FROM {reader_sql(path)}", [str(path)]).fetchall()
    except duckdb.Error as exc:
        raise _unreadable(source_file, exc) from exc
    return [row[0] for row in rows if row[0] != "file_row_number"]


def _first_line(exc: BaseException) -> str:
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else ""


def _rows_sql(path: Path, columns: dict[str, str], file: str = "?") -> str:
    """SELECT of a file's rows as the LTER columns (text; absent optional columns NULL) and
    source_line."""
    selected = ", ".join(
        f"CAST({quote(columns[c])} AS VARCHAR) AS {quote(c)}"
        if c in columns
        else f"NULL::VARCHAR AS {quote(c)}"
        for c in LTER_COLUMNS
    )
    return f"SELECT {selected}, {_ordinal_sql(path)} AS source_line FROM {reader_sql(path, file)}"


# Exact duplicates share every column, so a hash of a few discriminating ones finds the candidates
# (cheaper than hashing all 17); each candidate is then confirmed on every column.
_ROW_HASH = (
    "hash("
    + ", ".join(
        quote(c)
        for c in (
            "studyName",
            "Sample Number",
            "Individual ID",
            "Date Egg",
            "Culmen Length (mm)",
            "Body Mass (g)",
        )
    )
    + ")"
)


def _read_landed(con, path: Path, source_file: str, columns: dict[str, str]) -> None:
    try:
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE landed AS
            SELECT *, {_ROW_HASH} AS {_HASH}, {row_is_valid()} AS {_VALID}
            FROM ({_rows_sql(path, columns)})""",
            [str(path)],
        )
    except duckdb.Error as exc:
        raise _unreadable(source_file, exc) from exc


def _unreadable(source_file: str, exc: duckdb.Error) -> LandingFileError:
    if out_of_resources(exc):
        # memory or spill space ran out while reading: the file is fine, never quarantine it
        raise exc
    return LandingFileError(source_file, f"cannot be read as CSV or Parquet ({_first_line(exc)})")


def _distinct_parquet_rows(con, path: Path, source_file: str, columns: dict[str, str]) -> int:
    """The row count of a Parquet file without exact duplicates; 0 for any other file.

    Distinct row hashes prove there is no exact duplicate, and Parquet reads only the six hashed
    columns for it. A repeated hash (a duplicate or a collision) sends the file down the staged
    path, which confirms on every column.
    """
    if path.suffix.lower() != ".parquet":
        return 0
    try:
        rows, distinct = first_row(
            con,
            f"SELECT count(*), count(DISTINCT {_ROW_HASH}) FROM ({_rows_sql(path, columns)})",
            [str(path)],
        )
    except duckdb.Error as exc:
        raise _unreadable(source_file, exc) from exc
    return rows if rows and distinct == rows else 0


def _stage_straight_from_file(con, path: Path, source_file: str, columns: dict[str, str]) -> None:
    """staged_rows and staged_rejects are views over the file: its valid rows and the others."""
    rows_sql = _rows_sql(path, columns, file=literal(path))
    _stage_rows(con, source_file, f"SELECT * FROM ({rows_sql}) WHERE {row_is_valid()}")
    _stage_rejects(con, source_file, f"SELECT * FROM ({rows_sql}) WHERE NOT ({row_is_valid()})")


def _stage_rows(con, source_file: str, rows_sql: str) -> None:
    """The view publish_file inserts from: the loadable rows, not a copy of them."""
    con.execute(
        f"CREATE OR REPLACE TEMP VIEW staged_rows AS SELECT {_LTER}, {literal(source_file)} AS "
        f"source_file, source_line FROM ({rows_sql})"
    )


def _stage_rejects(con, source_file: str, rows_sql: str, with_parse_rejects: bool = False) -> None:
    """The view of the rejected rows (the LTER columns as JSON text) with the reasons they failed,
    and the lines the CSV parser rejected (table parse_rejects) after them when asked."""
    source = literal(source_file)
    record = "json_object(" + ", ".join(f"'{c}', {quote(c)}" for c in LTER_COLUMNS) + ")::VARCHAR"
    parsed = f"UNION ALL SELECT {source}, line, raw_record, reason FROM parse_rejects"
    con.execute(
        f"""CREATE OR REPLACE TEMP VIEW staged_rejects AS
        SELECT {source} AS source_file, source_line, {record} AS raw_record,
               array_to_string({row_problems()}, '; ') AS reason
        FROM ({rows_sql}) {parsed if with_parse_rejects else ""}"""
    )


def _column_map(landed_columns: list[str], source_file: str) -> dict[str, str]:
    """LTER column -> the file's own spelling; headers match ignoring case and surrounding
    blanks."""
    by_key = {c.strip().lower(): c for c in landed_columns}
    columns = {c: by_key[c.lower()] for c in LTER_COLUMNS if c.lower() in by_key}
    absent = [c for c in REQUIRED_COLUMNS if c not in columns]
    if absent:
        found = ", ".join(landed_columns[:8])
        raise LandingFileError(
            source_file,
            f"not the Palmer LTER layout: missing column(s) {', '.join(absent)} (found: {found})",
        )
    return columns


def _parse_rejects(con, path: Path, source_file: str) -> list[tuple[int, str, str]]:
    """(line, raw text, reason) for lines the CSV parser could not split into the header's
    columns."""
    if path.suffix.lower() != ".csv":
        return []
    rows = con.execute(
        "SELECT line, any_value(csv_line), "
        "string_agg(DISTINCT error_type || ': ' || error_message, '; '), "
        "bool_or(error_type ILIKE '%unicode%' OR error_type ILIKE '%encoding%') "
        "FROM landing_reject_errors GROUP BY line ORDER BY line"
    ).fetchall()
    for line, _, reason, bad_encoding in rows:
        if bad_encoding:
            raise LandingFileError(
                source_file, f"line {line} is not valid UTF-8 ({reason}); save the file as UTF-8"
            )
    return [(line, (text or "").strip("\r\n"), reason) for line, text, reason, _ in rows]


def _number_lines(con, parse_rejects) -> None:
    """Turn each landed row's ordinal into its source_line.

    CSV: the line in the file (the header is line 1, parser-rejected lines are skipped).
    Parquet: the row number in the file (the first row is 1); Parquet has no lines.
    """
    con.execute(
        "CREATE OR REPLACE TEMP TABLE parse_rejects "
        "(line BIGINT, raw_record VARCHAR, reason VARCHAR)"
    )
    if not parse_rejects:
        return
    con.executemany("INSERT INTO parse_rejects VALUES (?, ?, ?)", parse_rejects)
    # Rare path: shift each row past the rejected lines before it.
    con.execute(
        """
        CREATE OR REPLACE TEMP TABLE landed_lines AS
        WITH lines AS (
            SELECT range AS line
            FROM range(2, 2 + (SELECT count(*) FROM landed) + (SELECT count(*) FROM parse_rejects))
            WHERE range NOT IN (SELECT line FROM parse_rejects)
        )
        SELECT line, row_number() OVER (ORDER BY line) + 1 AS ordinal_line FROM lines
        """
    )
    con.execute(
        "UPDATE landed SET source_line = l.line FROM landed_lines l "
        "WHERE l.ordinal_line = landed.source_line"
    )


def _drop_duplicates(con) -> int:
    """Delete all but the first copy of each exact duplicate row; returns how many were deleted.

    Grouping by one 64-bit hash is cheap; only rows whose hash repeats (usually none) are compared
    on every column, so a hash collision never drops a row that merely shares the hash.
    """
    repeated = con.execute(
        f"SELECT {_HASH} FROM landed GROUP BY {_HASH} HAVING count(*) > 1 LIMIT 1"
    ).fetchall()
    if not repeated:
        return 0
    copies = con.execute(
        f"""
        SELECT source_line FROM (
            SELECT source_line,
                   row_number() OVER (PARTITION BY {_LTER} ORDER BY source_line) AS copy
            FROM landed
            WHERE {_HASH} IN (SELECT {_HASH} FROM landed GROUP BY {_HASH} HAVING count(*) > 1)
        ) WHERE copy > 1
        """
    ).fetchall()
    if copies:
        con.execute(
            "CREATE OR REPLACE TEMP TABLE duplicate_lines AS SELECT unnest(?) AS source_line",
            [[line for (line,) in copies]],
        )
        con.execute(
            "DELETE FROM landed WHERE source_line IN (SELECT source_line FROM duplicate_lines)"
        )
    return len(copies)


def _split_valid_and_rejected(con, source_file: str) -> None:
    _stage_rows(con, source_file, f"SELECT * FROM landed WHERE {_VALID}")
    rejected = f"SELECT * FROM landed WHERE NOT {_VALID}"
    _stage_rejects(con, source_file, rejected, with_parse_rejects=True)


def _create_empty_stage(con, source_file: str) -> None:
    columns = ", ".join(f"{quote(c)} VARCHAR" for c in LTER_COLUMNS)
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE landed ({columns}, source_line BIGINT, "
        f"{_HASH} UBIGINT, {_VALID} BOOLEAN)"
    )
    _number_lines(con, [])
    _split_valid_and_rejected(con, source_file)


def publish_file(con: duckdb.DuckDBPyConnection, account: FileAccount, seen_before: bool) -> None:
    """Replace exactly this file's rows and rejects with the staged ones and record its ledger line.
    `seen_before`: the ledger holds a line for this file (the caller has just read it).

    Call inside a transaction (db.transaction) so a failure anywhere leaves every table as it was.
    """
    # Deleting scans the whole table's source_file column: only worth it for a file seen before.
    if seen_before:
        for table in (tables.RAW, tables.REJECTS, tables.LEDGER):
            con.execute(f"DELETE FROM {table} WHERE source_file = ?", [account.source_file])
    # staged_rows is already in file order; no sort needed.
    account.rows_loaded = scalar(
        con,
        f"INSERT INTO {tables.RAW} SELECT {_LTER}, source_file, source_line, now()::TIMESTAMP "
        "FROM staged_rows",
    )
    # Staged straight from a Parquet file, the rejects are a second read of it: only when short.
    if account.rows_read > account.rows_loaded + account.duplicates_dropped:
        account.rows_rejected = scalar(
            con,
            f"INSERT INTO {tables.REJECTS} SELECT source_file, source_line, raw_record, reason, "
            "now()::TIMESTAMP FROM staged_rejects ORDER BY source_line",
        )
    con.execute(
        f"INSERT INTO {tables.LEDGER} VALUES (?, ?, ?, ?, ?, ?, now()::TIMESTAMP)",
        [
            account.source_file,
            account.file_hash,
            account.rows_read,
            account.rows_loaded,
            account.rows_rejected,
            account.duplicates_dropped,
        ],
    )


def ledger_hash(con: duckdb.DuckDBPyConnection, source_file: str) -> str | None:
    """The content hash the ledger holds for this file, None if it was never loaded."""
    return scalar(
        con, f"SELECT file_hash FROM {tables.LEDGER} WHERE source_file = ?", [source_file]
    )


def ledger_hashes(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """Every loaded file's content hash, in one query (one lookup per file costs ~11 ms on the
    lake)."""
    return dict(con.execute(f"SELECT source_file, file_hash FROM {tables.LEDGER}").fetchall())


def ingest_file(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    source_file: str,
    file_hash: str,
    force: bool = False,
    seen_before: bool | None = None,
) -> FileAccount:
    """Load one landing file unless the ledger already holds this exact content (then say so).
    `seen_before`: whether the ledger holds a line for this file, if the caller has just read it
    (one ledger query less per file: ~11 ms on the lake)."""
    if not force or seen_before is None:
        held = ledger_hash(con, source_file)
        if not force and held == file_hash:
            return FileAccount(source_file=source_file, file_hash=file_hash, note=UNCHANGED)
        seen_before = held is not None
    started = time.perf_counter()
    account = stage_file(con, path, source_file, file_hash)
    staged = time.perf_counter()
    publish_file(con, account, seen_before)
    account.seconds = {
        "stage": round(staged - started, 3),
        "publish": round(time.perf_counter() - staged, 3),
    }
    return account


# --- a run over many files: pre-flight, then one transaction per file -----------------------------


@dataclass
class LandingInput:
    """One landing file of a run: a local path, or None when ingest_files is given a local_copy."""

    path: Path | None
    source_file: str
    file_hash: str


LocalCopy = Callable[
    [str], AbstractContextManager[Path]
]  # landing file name -> a local path while open

# Holds one landing file (by name) for this run while it loads: runs loading at once never load
# the same file twice (storage/warehouse.file_claims; no claim needed with one writer at a time).
Claim = Callable[[str], AbstractContextManager[None]]

# Opens a warehouse connection, closed when the block ends.
Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

# A connection's own state grows with every file it commits (on DuckLake ~1-2 MB per 1M-row file,
# freed when it closes; README, Big data): ingest_in_batches takes a fresh one every this many
# files, so a run's memory stays flat however many files it loads.
FILES_PER_CONNECTION = 100


class UnbalancedAccount(ValueError):
    """rows read != rows loaded + rejected + duplicates dropped for one file (its load is rolled
    back)."""

    def __init__(self, account: FileAccount):
        super().__init__(
            f"{account.source_file}: row accounting does not add up ({account.as_metadata()})"
        )
        self.account = account


class FileLoadFailed(Exception):
    """Loading one file failed after the pre-flight passed.

    That file's own transaction was rolled back (it changed nothing); the files in `committed`
    were loaded and committed earlier in the same run and stay; a retry skips them by content hash.
    """

    def __init__(self, source_file: str, committed: list[FileAccount], cause: BaseException):
        done = ", ".join(a.source_file for a in committed) or "none"
        super().__init__(
            f"{source_file}: load failed ({_first_line(cause) or type(cause).__name__}); "
            "this file's transaction was rolled back, so it changed nothing. "
            f"Files committed earlier in this run stay loaded: {done}"
        )
        self.source_file = source_file
        self.committed = committed
        self.cause = cause


def preflight_file(con: duckdb.DuckDBPyConnection, path: Path, source_file: str) -> None:
    """Raise LandingFileError for a whole-file problem, reading only what that needs.

    Readable as CSV/Parquet and the LTER columns present: DuckDB's schema detection (a CSV sample,
    the Parquet footer). Valid UTF-8 (CSV): one streaming pass of Python's incremental UTF-8 decoder
    over the bytes, several times cheaper than a full DuckDB read of the file. Row-level faults are
    not looked for: they never fail a file.
    """
    if path.stat().st_size == 0:
        return
    _column_map(_describe(con, path, source_file), source_file)
    if path.suffix.lower() == ".csv":
        check_utf8(path, source_file)


def check_utf8(path: Path, source_file: str, chunk_bytes: int = 1 << 22) -> None:
    """Raise LandingFileError naming the first line that is not valid UTF-8 (a BOM is fine)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    line = 1
    with open(path, "rb") as stream:
        while True:
            chunk = stream.read(chunk_bytes)
            try:
                decoder.decode(chunk, final=not chunk)
            except UnicodeDecodeError as exc:
                # exc.object is the decoder's pending bytes (no newline: a partial character)
                # + chunk.
                line += exc.object[: exc.start].count(b"\n")
                raise LandingFileError(
                    source_file,
                    f"line {line} is not valid UTF-8 "
                    f"(byte 0x{exc.object[exc.start]:02x}: {exc.reason}); "
                    "save the file as UTF-8",
                ) from exc
            if not chunk:
                return
            line += chunk.count(b"\n")


@dataclass
class RunLoad:
    """What a run did with its files: an account for each file it loaded or skipped, and the files
    it could not read at all (nothing of those was loaded; each names its problem)."""

    accounts: list[FileAccount]
    unreadable: list[LandingFileError]


def ingest_files(
    con: duckdb.DuckDBPyConnection,
    files: list[LandingInput],
    force: bool = False,
    local_copy: LocalCopy | None = None,
    claim: Claim | None = None,
    at_once: int = 1,
) -> RunLoad:
    """Load a run's files: pre-flight every file to be loaded, then each good file in its own
    transaction.

    - A whole-file problem (not CSV/Parquet, wrong columns, not UTF-8, a corrupt Parquet page found
      while loading) never stops the run: the file loads nothing and is returned in `unreadable`,
      and every other file still loads. One bad delivery is reported in one run, not one per run.
    - Any other failure while loading a file (a full disk, an unbalanced account): that file's
      transaction (its staging, rows, rejects and ledger line) rolls back, the files committed
      before it stay, and FileLoadFailed names the file; a retry skips the committed ones by hash.
    Files whose content the ledger already holds are skipped without being read (unless force), and
    without being fetched: `local_copy` (e.g. an S3 download) is opened only for the files to load.
    Several runs may load at once (a warehouse with concurrent writers): `claim(name)` holds that
    file for this run while it loads, and the ledger is read again under the claim, so a file
    another run loaded meanwhile is skipped; a commit that lost a race is retried.
    """
    held = ledger_hashes(con)
    todo = [f for f in files if force or held.get(f.source_file) != f.file_hash]
    unreadable: list[LandingFileError] = []
    with ExitStack() as copies:
        paths = {
            f.source_file: copies.enter_context(local_copy(f.source_file)) if local_copy else f.path
            for f in todo
        }
        for f in todo:
            try:
                preflight_file(con, paths[f.source_file], f.source_file)
            except LandingFileError as exc:
                unreadable.append(exc)
        bad = {exc.source_file for exc in unreadable}
        loadable = [f for f in files if f.source_file in paths and f.source_file not in bad]
        loaded = _load_all(
            con,
            loadable,
            lambda f, c, turn: _load_or_unreadable(
                c, paths[f.source_file], f, held, force, claim, turn
            ),
            at_once,
            [paths[f.source_file].stat().st_size for f in loadable],
        )
        accounts = []
        for f in files:
            if f.source_file in bad:
                continue
            result = loaded.get(f.source_file)
            if result is None:
                accounts.append(FileAccount(f.source_file, f.file_hash, note=UNCHANGED))
            elif isinstance(result, LandingFileError):
                unreadable.append(result)
            else:
                accounts.append(result)
    return RunLoad(accounts, unreadable)


LOADED_MEANWHILE = "loaded meanwhile by another run: skipped"

Loaded = FileAccount | LandingFileError


# Called inside a file's transaction just before it commits: waits for the files before it.
WaitTurn = Callable[[], object]


def _load_or_unreadable(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    f: LandingInput,
    held: dict[str, str],
    force: bool,
    claim: Claim | None,
    wait_turn: WaitTurn,
) -> Loaded:
    """Load one file under its claim. `held`: the ledger's hashes as the run read them at its
    start; under a claim the ledger is read again (another run may have loaded the file since),
    without one this run is the only writer and `held` is still true."""
    try:
        with claim(f.source_file) if claim else nullcontext():
            known = ledger_hash(con, f.source_file) if claim else held.get(f.source_file)
            if not force and known == f.file_hash:
                return FileAccount(f.source_file, f.file_hash, note=LOADED_MEANWHILE)
            return retry_conflicts(lambda: _load_one(con, path, f, known is not None, wait_turn))
    except LandingFileError as exc:
        return exc


class _TurnLost(Exception):
    """A file loaded beside one that failed before it: rolled back at its turn to commit."""


def _load_all(
    con: duckdb.DuckDBPyConnection,
    files: list[LandingInput],
    load: Callable[[LandingInput, duckdb.DuckDBPyConnection, WaitTurn], Loaded],
    at_once: int,
    sizes: list[int],
) -> dict[str, Loaded]:
    """load(file, connection, wait_turn) for every file, `at_once` at a time (one on `con`, the
    others on cursors of it), leaving the warehouse as loading them one at a time would. `sizes`:
    the files' bytes, in their order (threads_shared_out).

    Files commit in their order (wait_turn), whichever finishes first: DuckDB appends a
    transaction's rows at commit, so the raw table's row order, and with it the clean table's
    rowids that the training sample is drawn by, stay the same run after run. After a failure no
    new file starts, a later file loading beside it rolls back at its turn, and FileLoadFailed
    names the files committed before the failing one.
    """
    queue, results, failures, lock = iter(enumerate(files)), {}, [], threading.Lock()
    settled = [threading.Event() for _ in files]

    def turn(i: int) -> WaitTurn:
        def wait() -> None:
            if i:
                settled[i - 1].wait()
            if any(j < i for j, _, _ in failures):  # one at a time, this one never started
                raise _TurnLost

        return wait

    def worker(connection: duckdb.DuckDBPyConnection) -> None:
        while True:
            with lock:
                i, f = (None, None) if failures else next(queue, (None, None))
            if f is None:
                return
            try:
                result = load(f, connection, turn(i))
            except _TurnLost:
                return
            except Exception as exc:
                with lock:
                    failures.append((i, f, exc))
                return
            finally:
                settled[i].set()
            with lock:
                results[f.source_file] = result

    side_by_side = min(at_once, len(files))
    with ExitStack() as cursors, threads_shared_out(con, side_by_side, sizes):
        helpers = [
            threading.Thread(target=worker, args=(cursors.enter_context(_cursor_of(con)),))
            for _ in range(side_by_side - 1)
        ]
        for thread in helpers:
            thread.start()
        worker(con)
        for thread in helpers:
            thread.join()
    if failures:
        _, f, cause = min(failures, key=lambda failure: failure[0])
        committed = [r for g in files if isinstance(r := results.get(g.source_file), FileAccount)]
        raise FileLoadFailed(f.source_file, committed, cause) from cause
    return results


def _cursor_of(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    """A cursor on the same default database and schema as `con`: a cursor starts on DuckDB's
    own default, which on the lake is the in-memory database, not the attached lake."""
    database, schema = first_row(con, "SELECT current_database(), current_schema()")
    cursor = con.cursor()
    cursor.execute(f"USE {quote(database)}.{quote(schema)}")
    return cursor


@contextmanager
def threads_shared_out(
    con: duckdb.DuckDBPyConnection, side_by_side: int, sizes: list[int]
) -> Iterator[None]:
    """While `side_by_side` files load at once, DuckDB's threads are shared out between them
    instead of each load using all of them (the setting is the database's, so every cursor sees
    it): one file on one thread each writes the same rows with ~15% less CPU than two threads
    each contending for both cores (10^7 rows on the DuckDB file, docs: Benchmarks). Restored
    after. Only for files of about even size: a file larger than its share of the bytes would
    load alone on its share of the threads for most of the run (one 1.2M-row file: 3.0 s on one
    thread, 1.9 s on two)."""
    threads = int(scalar(con, "SELECT current_setting('threads')"))
    even = side_by_side > 1 and max(sizes) * side_by_side <= sum(sizes)
    share = max(1, threads // side_by_side) if even else threads
    if share == threads:
        yield
        return
    con.execute(f"SET threads = {share}")
    try:
        yield
    finally:
        # A connection DuckDB has invalidated refuses even this: the load's own error is the one
        # to report.
        with suppress(duckdb.Error):
            con.execute(f"SET threads = {threads}")


def _load_one(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    f: LandingInput,
    seen_before: bool,
    wait_turn: WaitTurn,
) -> FileAccount:
    """One file in one transaction: all of its rows (loaded and rejected) and its ledger line, or
    nothing."""
    with transaction(con):
        account = ingest_file(con, path, f.source_file, f.file_hash, True, seen_before)
        if not account.balanced:
            raise UnbalancedAccount(account)
        wait_turn()
    return account


def ingest_in_batches(
    connect: Connect,
    files: list[LandingInput],
    on_lake: bool,
    force: bool = False,
    local_copy: LocalCopy | None = None,
    claim: Claim | None = None,
    at_once: int = 1,
) -> tuple[RunLoad, int]:
    """ingest_files over a run's files, a fresh connection every FILES_PER_CONNECTION files; returns
    what it did and the raw table's row count after.

    The first connection creates the tables if missing; a failure names every file committed
    before it, also those committed on an earlier connection.
    """
    per_connection = FILES_PER_CONNECTION  # read at call time: tests set it lower
    batches = [files[i : i + per_connection] for i in range(0, len(files), per_connection)] or [[]]
    accounts, unreadable, total = [], [], 0
    for number, batch in enumerate(batches):
        with connect() as con:
            if number == 0:
                # Runs starting together on an empty lake each create the tables: the losers see
                # them.
                retry_conflicts(lambda: tables.ensure_schema(con, on_lake))
            try:
                load = ingest_files(con, batch, force, local_copy, claim, at_once)
            except FileLoadFailed as exc:
                earlier = [a for a in accounts if a.note != UNCHANGED]
                cause = exc.cause
                raise FileLoadFailed(exc.source_file, earlier + exc.committed, cause) from cause
            if number == len(batches) - 1:
                total = row_count(con, tables.RAW)
        accounts += load.accounts
        unreadable += load.unreadable
    return RunLoad(accounts, unreadable), total
