"""Landing file -> staged rows: the processing functions called as plain functions."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import threading
import time
from contextlib import contextmanager

import duckdb
import pytest

from penguin_pipeline.processing import ingest as ingest_module
from penguin_pipeline.processing import tables
from penguin_pipeline.processing.db import transaction
from penguin_pipeline.processing.ingest import (
    FileLoadFailed,
    LandingFileError,
    LandingInput,
    check_utf8,
    ingest_file,
    ingest_files,
    ingest_in_batches,
    preflight_file,
    stage_file,
)
from penguin_pipeline.processing.lter import (
    LTER_COLUMNS,
    LTER_SPECIES,
    missing,
    quote,
    raw_number,
    raw_species,
    row_is_valid,
    row_problems,
)
from penguin_pipeline.storage.locations import file_hash

from .conftest import LTER_FILE, fail_staging, lter_lines, write_lines


def ingest(con, path, name=None):
    with transaction(con):
        return ingest_file(con, path, name or path.name, file_hash(path))


def rejects(con):
    return con.execute(
        f"SELECT source_line, reason, raw_record FROM {tables.REJECTS} ORDER BY source_line"
    ).fetchall()


def test_shipped_file_loads_every_row_with_its_line(con):
    account = ingest(con, LTER_FILE)
    assert (
        account.rows_read,
        account.rows_loaded,
        account.rows_rejected,
        account.duplicates_dropped,
    ) == (344, 344, 0, 0)
    lines = con.execute(
        f'SELECT source_line, "Individual ID" FROM {tables.RAW} ORDER BY source_line'
    ).fetchall()
    assert lines[0] == (2, "N1A1") and lines[-1] == (345, lter_lines()[-1].split(",")[7])


def test_unchanged_file_is_skipped_and_changed_file_replaces_only_its_rows(con, tmp_path):
    lines = lter_lines()
    a = write_lines(tmp_path / "a.csv", lines[:11])
    b = write_lines(tmp_path / "b.csv", [lines[0]] + lines[11:21])
    ingest(con, a), ingest(con, b)
    assert "skipped" in ingest(con, a).note
    write_lines(a, lines[:6])  # a shrinks to 5 rows
    ingest(con, a)
    counts = dict(
        con.execute(f"SELECT source_file, count(*) FROM {tables.RAW} GROUP BY 1").fetchall()
    )
    assert counts == {"a.csv": 5, "b.csv": 10}


def test_bad_rows_are_quarantined_with_line_and_reason(con, tmp_path):
    lines = lter_lines()[:6]
    lines[2] = lines[2].replace("Adelie Penguin (Pygoscelis adeliae)", "Emperor Penguin")
    lines[3] = lines[3].replace(",40.3,", ",abc,")
    lines[5] = lines[5].replace(",3450,", ",-3450,")
    path = write_lines(tmp_path / "bad.csv", lines)
    account = ingest(con, path)
    assert (account.rows_read, account.rows_loaded, account.rows_rejected) == (5, 2, 3)
    found = rejects(con)
    assert [line for line, _, _ in found] == [3, 4, 6]
    assert "unknown Species 'Emperor Penguin' (allowed: Adelie, Chinstrap, Gentoo)" in found[0][1]
    assert "Culmen Length (mm) 'abc' is not a number" in found[1][1]
    assert "Body Mass (g) -3450 outside 2000..7500" in found[2][1]
    assert json.loads(found[0][2])["Species"] == "Emperor Penguin"


TRICKY_VALUES = [
    None,
    "",
    "  ",
    "NA",
    "na",
    " N/A ",
    "null",
    ".",
    "nan",
    "inf",
    "-inf",
    "1e2",
    "1_000",
    "0x10",
    " 45.1 ",
    "45,1",
    "abc",
    "19.9",
    "20",
    "80",
    "80.01",
    "3450",
    "-3450",
    "7500",
]


@pytest.mark.parametrize(
    "column", ["Culmen Length (mm)", "Body Mass (g)", "Sex", "studyName", "Date Egg", "Species"]
)
def test_the_validity_flag_and_the_reasons_agree_on_any_value(con, column):
    # Ingestion evaluates the cheap flag on every row and the reasons only where it is false: the
    # two must agree, or a row would be rejected without a reason (or loaded despite one).
    values = TRICKY_VALUES + ["male", "FEMALE", "Unknown", "2007-11-11", "11/11/07", "2007-13-45"]
    values += [*LTER_SPECIES.values(), "adelie", " gentoo Penguin", "Emperor penguin"]
    shipped = dict(zip(lter_lines()[0].split(","), lter_lines()[1].split(","), strict=False))
    con.execute(
        "CREATE TEMP TABLE rows_under_test AS SELECT "
        + ", ".join(f"CAST(? AS VARCHAR) AS {quote(c)}" for c in LTER_COLUMNS)
        + " FROM range(0)",
        [None] * len(LTER_COLUMNS),
    )
    for value in values:
        row = [value if c == column else shipped.get(c) for c in LTER_COLUMNS]
        con.execute("INSERT INTO rows_under_test VALUES (" + ", ".join("?" * len(row)) + ")", row)
    disagreements = con.execute(
        f"SELECT {quote(column)}, {row_is_valid()}, {row_problems()} FROM rows_under_test "
        f"WHERE ({row_is_valid()}) = (len({row_problems()}) > 0)"
    ).fetchall()
    assert disagreements == []


def test_the_species_lookup_gives_what_the_general_rule_gives(con):
    # raw_species() looks the LTER's spellings up instead of splitting and re-casing them.
    spellings = [*LTER_SPECIES.values(), "adelie", " chinstrap penguin ", "Emperor penguin", None]
    got = con.execute(
        f'SELECT {raw_species()} FROM unnest(?) AS t("Species")', [spellings]
    ).fetchall()
    # the rule: the first word of the trimmed text, capitalized
    expected = [s.strip().split(" ")[0].capitalize() if s else None for s in spellings]
    assert [species for (species,) in got] == expected
    assert expected[:3] == list(LTER_SPECIES)


def test_missing_markers_and_numbers_read_as_before(con):
    got = con.execute(
        "SELECT x, "
        + missing(quote("x"))
        + ", "
        + raw_number("x")
        + " FROM unnest(?::VARCHAR[]) t(x)",
        [[None, "", " NA ", "n/a", "NULL", ".", " 45.1", "abc", "nan"]],
    ).fetchall()
    assert [m for _, m, _ in got] == [True] * 6 + [False] * 3
    assert [n for _, _, n in got][:7] == [None] * 6 + [45.1] and got[7][2] is None


def test_exact_duplicates_are_counted_and_dropped(con, tmp_path):
    lines = lter_lines()[:4]
    path = write_lines(tmp_path / "dups.csv", lines + [lines[1], lines[1], lines[2]])
    account = ingest(con, path)
    assert (account.rows_read, account.rows_loaded, account.duplicates_dropped) == (6, 3, 3)
    assert account.balanced


def test_lines_the_parser_cannot_split_are_rejected_not_fatal(con, tmp_path):
    lines = lter_lines()[:5]
    lines.insert(2, "PAL0708,99,too,few")
    path = write_lines(tmp_path / "ragged.csv", lines)
    account = ingest(con, path)
    assert (account.rows_read, account.rows_loaded, account.rows_rejected) == (5, 4, 1)
    assert rejects(con)[0][:1] == (3,)
    loaded = con.execute(f"SELECT source_line FROM {tables.RAW} ORDER BY 1").fetchall()
    assert [line for (line,) in loaded] == [2, 4, 5, 6]


def test_real_world_encodings_load(con, tmp_path):
    lines = lter_lines()[:8]
    header = lines[0].split(",")
    reordered = [",".join(reversed(header))] + [
        ",".join(reversed(split_csv(line))) for line in lines[1:]
    ]
    path = write_lines(tmp_path / "windows.csv", reordered, newline="\r\n", bom=True)
    account = ingest(con, path)
    assert account.rows_loaded == 7
    assert (
        con.execute(f'SELECT "Species" FROM {tables.RAW} LIMIT 1')
        .fetchall()[0][0]
        .startswith("Adelie")
    )


def split_csv(line: str) -> list[str]:
    import csv

    return ['"' + v + '"' if "," in v else v for v in next(csv.reader([line]))]


@pytest.mark.parametrize(
    "content, problem",
    [
        (b"\x7fELF\x02\x01\x01\x00" + bytes(range(256)) * 20, "cannot be read"),
        (b"name,value\nx,1\n", "missing column(s) studyName"),
        (
            "\n".join(lter_lines()[:3]).encode("utf-8").replace(b"Torgersen", b"Torg\xe9rsen"),
            "not valid UTF-8",
        ),
    ],
    ids=["binary", "wrong-columns", "latin-1"],
)
@pytest.mark.parametrize("step", ["preflight", "load"])
def test_whole_file_problems_name_the_file(con, tmp_path, content, problem, step):
    path = tmp_path / "broken.csv"
    path.write_bytes(content)
    with pytest.raises(LandingFileError, match=f"broken.csv: .*{re.escape(problem)}"):
        if step == "preflight":
            preflight_file(con, path, "broken.csv")
        else:
            stage_file(con, path, "broken.csv", "h")


def test_utf8_check_names_the_line_across_chunk_boundaries(tmp_path):
    lines = lter_lines()[:40]
    lines[30] = lines[30].replace("Anvers", "Anv\u00e9rs")  # valid UTF-8: two bytes
    good = write_lines(tmp_path / "good.csv", lines, bom=True)
    for chunk in (7, 64, 1 << 22):
        check_utf8(good, "good.csv", chunk_bytes=chunk)
    bad = tmp_path / "bad.csv"
    bad.write_bytes(good.read_bytes().replace("Anv\u00e9rs".encode(), b"Anv\xe9rs"))
    for chunk in (7, 64, 1 << 22):
        with pytest.raises(LandingFileError, match="bad.csv: line 31 is not valid UTF-8"):
            check_utf8(bad, "bad.csv", chunk_bytes=chunk)


def run_files(con, tmp_path, count=3):
    lines = lter_lines()
    paths = [
        write_lines(tmp_path / f"f{i}.csv", [lines[0]] + lines[1 + 10 * i : 11 + 10 * i])
        for i in range(count)
    ]
    return [LandingInput(p, p.name, file_hash(p)) for p in paths]


def test_an_unreadable_file_is_set_aside_and_every_other_file_loads(con, tmp_path):
    files = run_files(con, tmp_path, count=4)
    files[1].path.write_bytes(files[1].path.read_bytes().replace(b"Anvers", b"Anv\xe9rs"))
    files[3].path.write_bytes(b"name,value\nx,1\n")
    load = ingest_files(con, files)
    assert [(e.source_file, e.problem[:40]) for e in load.unreadable] == [
        ("f1.csv", "line 2 is not valid UTF-8 (byte 0xe9: in"),
        ("f3.csv", "not the Palmer LTER layout: missing colu"),
    ]
    assert [a.source_file for a in load.accounts] == ["f0.csv", "f2.csv"]
    assert con.execute(
        f"SELECT source_file, count(*) FROM {tables.RAW} GROUP BY 1 ORDER BY 1"
    ).fetchall() == [("f0.csv", 10), ("f2.csv", 10)]
    assert [
        r[0] for r in con.execute(f"SELECT source_file FROM {tables.LEDGER} ORDER BY 1").fetchall()
    ] == ["f0.csv", "f2.csv"]


def test_each_file_commits_on_its_own_and_a_late_failure_names_its_file(con, tmp_path, monkeypatch):
    files = run_files(con, tmp_path)
    real_stage = fail_staging(monkeypatch, "f1.csv")
    with pytest.raises(
        FileLoadFailed,
        match="f1.csv: load failed \\(disk full while staging\\).*stay loaded: f0.csv",
    ) as failed:
        ingest_files(con, files)
    assert [a.source_file for a in failed.value.committed] == ["f0.csv"]
    counts = con.execute(f"SELECT source_file, count(*) FROM {tables.RAW} GROUP BY 1").fetchall()
    assert counts == [("f0.csv", 10)]
    assert [r[0] for r in con.execute(f"SELECT source_file FROM {tables.LEDGER}").fetchall()] == [
        "f0.csv"
    ]
    monkeypatch.setattr(ingest_module, "stage_file", real_stage)
    accounts = ingest_files(con, files).accounts  # the retry skips f0 by content hash
    assert [a.note for a in accounts][0].startswith("unchanged") and [
        a.rows_loaded for a in accounts
    ] == [0, 10, 10]
    assert con.execute(f"SELECT count(*) FROM {tables.RAW}").fetchall() == [(30,)]


def test_a_run_takes_a_fresh_connection_every_batch_of_files(con, tmp_path, monkeypatch):
    """ingest_in_batches: FILES_PER_CONNECTION files per connection, every file accounted for, the
    raw table's count after; a failure in a later batch names the files committed before it."""
    files = run_files(con, tmp_path, count=5)
    opened = []

    @contextmanager
    def connect():
        opened.append(len(opened))
        yield con

    monkeypatch.setattr(ingest_module, "FILES_PER_CONNECTION", 2)
    load, total = ingest_in_batches(connect, files, on_lake=False)
    assert len(opened) == 3
    assert [a.rows_loaded for a in load.accounts] == [10] * 5 and total == 50

    (tmp_path / "more").mkdir()
    more = run_files(con, tmp_path / "more", count=3)
    for f in more:
        f.source_file = f"more-{f.source_file}"
    fail_staging(monkeypatch, "more-f2.csv")
    with pytest.raises(FileLoadFailed, match="stay loaded: more-f0.csv, more-f1.csv") as failed:
        ingest_in_batches(connect, files + more, on_lake=False)
    assert [a.source_file for a in failed.value.committed] == ["more-f0.csv", "more-f1.csv"]


def staging_side_by_side(
    monkeypatch, files: int = 2, after_failure: threading.Event | None = None, slower: str = ""
):
    """The first `files` stage_file calls wait for each other (a run loading one file at a time
    breaks the barrier instead of passing); with `after_failure`, they then wait until a failing
    stage has raised, so the failure is seen before a later file could start. The file named
    `slower` is staged 0.3 s late, so the file beside it finishes first."""
    barrier, calls, staged = (
        threading.Barrier(files, timeout=20),
        itertools.count(),
        ingest_module.stage_file,
    )

    def stage(con, path, source_file, file_hash):
        if next(calls) < files:
            barrier.wait()
            if source_file == slower:
                time.sleep(0.3)
            try:
                return staged(con, path, source_file, file_hash)
            except Exception:
                if after_failure:
                    after_failure.set()
                raise
            finally:
                if after_failure:
                    after_failure.wait(20)
        return staged(con, path, source_file, file_hash)

    monkeypatch.setattr(ingest_module, "stage_file", stage)


def warehouse_contents(con):
    """The tables' rows, the raw table's in storage order (the clean table's rowids follow it)."""
    return [
        con.execute(f"SELECT source_file, source_line FROM {tables.RAW} ORDER BY rowid").fetchall()
    ] + [
        con.execute(f"SELECT * EXCLUDE ({stamp}) FROM {table} ORDER BY ALL").fetchall()
        for table, stamp in (
            (tables.RAW, "loaded_at"),
            (tables.REJECTS, "rejected_at"),
            (tables.LEDGER, "loaded_at"),
        )
    ]


def test_two_files_loaded_side_by_side_give_what_one_at_a_time_gives_in_its_order(
    tmp_path, monkeypatch
):
    files = run_files(None, tmp_path, count=5)
    files[2].path.write_text(files[2].path.read_text().replace("Adelie", "Emperor", 1))
    one, two = duckdb.connect(), duckdb.connect()
    for con in (one, two):
        tables.ensure_schema(con)
    alone = ingest_files(one, files)
    staging_side_by_side(monkeypatch, slower="f0.csv")
    beside = ingest_files(two, files, at_once=2)
    loaded = [(a.source_file, a.rows_loaded, a.rows_rejected) for a in beside.accounts]
    assert loaded == [(a.source_file, a.rows_loaded, a.rows_rejected) for a in alone.accounts]
    assert sum(a.rows_rejected for a in beside.accounts) == 1
    assert warehouse_contents(two) == warehouse_contents(one)


def threads_seen_while_staging(monkeypatch) -> list[int]:
    """DuckDB's thread count as each stage_file call sees it on its own connection."""
    seen, staged = [], ingest_module.stage_file

    def stage(con, path, source_file, file_hash):
        seen.append(int(con.execute("SELECT current_setting('threads')").fetchall()[0][0]))
        return staged(con, path, source_file, file_hash)

    monkeypatch.setattr(ingest_module, "stage_file", stage)
    return seen


def test_files_loaded_side_by_side_share_duckdbs_threads_and_get_them_back_after(
    tmp_path, monkeypatch
):
    con = duckdb.connect(config={"threads": 4})
    tables.ensure_schema(con)
    seen = threads_seen_while_staging(monkeypatch)
    ingest_files(con, run_files(None, tmp_path, count=3), at_once=2)
    assert seen == [2, 2, 2]
    assert con.execute("SELECT current_setting('threads')").fetchall() == [(4,)]
    (tmp_path / "alone").mkdir()
    ingest_files(con, run_files(None, tmp_path / "alone", count=1), force=True, at_once=2)
    assert seen[3:] == [4]  # a file loading alone keeps every thread


def test_a_file_larger_than_its_share_of_the_bytes_loads_with_every_thread(tmp_path, monkeypatch):
    con = duckdb.connect(config={"threads": 4})
    tables.ensure_schema(con)
    seen = threads_seen_while_staging(monkeypatch)
    lines = lter_lines()
    big, small = (
        write_lines(tmp_path / "big.csv", lines),
        write_lines(tmp_path / "small.csv", lines[:11]),
    )
    ingest_files(con, [LandingInput(p, p.name, file_hash(p)) for p in (big, small)], at_once=2)
    assert seen == [4, 4]


def test_a_failure_beside_another_file_names_it_and_no_file_starts_after(
    con, tmp_path, monkeypatch
):
    files = run_files(con, tmp_path, count=5)
    fail_staging(monkeypatch, "f1.csv")
    staging_side_by_side(monkeypatch, after_failure=threading.Event())
    with pytest.raises(FileLoadFailed, match="f1.csv: load failed .*stay loaded: f0.csv$"):
        ingest_files(con, files, at_once=2)
    assert con.execute(f"SELECT DISTINCT source_file FROM {tables.RAW}").fetchall() == [("f0.csv",)]
    assert con.execute(f"SELECT source_file FROM {tables.LEDGER}").fetchall() == [("f0.csv",)]


def test_a_file_loaded_beside_an_earlier_failing_one_rolls_back_as_if_never_started(
    con, tmp_path, monkeypatch
):
    """One at a time, a failure stops the run before the next file: side by side, the next file
    (already loaded) rolls back at its turn to commit, so the warehouse is the same."""
    files = run_files(con, tmp_path, count=4)
    fail_staging(monkeypatch, "f0.csv")
    staging_side_by_side(monkeypatch, after_failure=threading.Event())
    with pytest.raises(FileLoadFailed, match="f0.csv: load failed .*stay loaded: none$") as failed:
        ingest_files(con, files, at_once=2)
    assert failed.value.committed == []
    for table in (tables.RAW, tables.REJECTS, tables.LEDGER):
        assert con.execute(f"SELECT count(*) FROM {table}").fetchall() == [(0,)], table


def test_empty_and_header_only_files_load_nothing_and_say_so(con, tmp_path):
    empty = tmp_path / "empty.csv"
    empty.write_bytes(b"")
    header = write_lines(tmp_path / "header.csv", lter_lines()[:1])
    assert "empty" in ingest(con, empty).note
    assert "header only" in ingest(con, header).note
    assert con.execute(f"SELECT count(*) FROM {tables.RAW}").fetchall()[0][0] == 0


def parquet_rows(con, name):
    return con.execute(
        f"SELECT * EXCLUDE (loaded_at) FROM {tables.RAW} WHERE source_file = ? "
        "ORDER BY source_line",
        [name],
    ).fetchall()


def test_parquet_landing_file_loads(con, tmp_path):
    import pandas as pd

    frame = pd.read_csv(LTER_FILE, dtype=str, keep_default_na=False).head(20)
    path = tmp_path / "season.parquet"
    frame.to_parquet(path)
    account = ingest(con, path)
    assert (account.rows_read, account.rows_loaded, account.rows_rejected) == (20, 20, 0)
    loaded = parquet_rows(con, "season.parquet")
    assert [row[-1] for row in loaded] == list(range(1, 21))  # source_line: the row number
    assert [row[6] for row in loaded] == list(frame["Individual ID"])


def test_parquet_with_a_duplicate_or_a_bad_row_takes_the_checked_path(con, tmp_path):
    # A clean Parquet file is inserted straight from the file; a duplicate or an invalid row sends
    # it through the staged path. Both must load the same rows the same way.
    import pandas as pd

    frame = pd.read_csv(LTER_FILE, dtype=str, keep_default_na=False).head(20)
    frame.to_parquet(tmp_path / "clean.parquet")
    dirty = pd.concat([frame, frame.iloc[[3]]], ignore_index=True)  # row 21 duplicates row 4
    dirty.loc[21] = frame.iloc[5].copy()
    dirty.loc[21, "Individual ID"], dirty.loc[21, "Body Mass (g)"] = (
        "N99A1",
        "-1",
    )  # row 22: invalid
    dirty.to_parquet(tmp_path / "dirty.parquet")
    clean, checked = (
        ingest(con, tmp_path / "clean.parquet"),
        ingest(con, tmp_path / "dirty.parquet"),
    )
    assert (clean.rows_read, clean.rows_loaded) == (20, 20)
    assert (
        checked.rows_read,
        checked.rows_loaded,
        checked.duplicates_dropped,
        checked.rows_rejected,
    ) == (22, 20, 1, 1)
    assert [r[:-2] for r in parquet_rows(con, "clean.parquet")] == [
        r[:-2] for r in parquet_rows(con, "dirty.parquet")
    ]
    assert rejects(con)[0][0] == 22 and "Body Mass (g) -1 outside" in rejects(con)[0][1]


def test_a_parquet_file_with_only_a_bad_row_loads_in_one_read_and_keeps_the_reject(con, tmp_path):
    # No duplicate: the valid rows are inserted straight from the file, checked while inserting;
    # the shortfall (one row) is read again with its reason.
    import pandas as pd

    frame = pd.read_csv(LTER_FILE, dtype=str, keep_default_na=False).head(20)
    frame.loc[6, "Body Mass (g)"] = "-1"
    frame.to_parquet(tmp_path / "one-bad.parquet")
    account = ingest(con, tmp_path / "one-bad.parquet")
    assert (account.rows_read, account.rows_loaded, account.rows_rejected) == (20, 19, 1)
    assert [r[-1] for r in parquet_rows(con, "one-bad.parquet")] == [*range(1, 7), *range(8, 21)]
    [(line, reason, record)] = rejects(con)
    assert (line, reason) == (7, "Body Mass (g) -1 outside 2000..7500")
    assert '"Individual ID":"N4A1"' in record and '"Body Mass (g)":"-1"' in record


def test_a_parquet_file_with_a_corrupt_page_fails_by_name_and_changes_nothing(con, tmp_path):
    # The footer is intact (pre-flight passes); the data pages are not: the load names the file.
    import pandas as pd

    path = tmp_path / "broken.parquet"
    pd.read_csv(LTER_FILE, dtype=str, keep_default_na=False).to_parquet(path, compression=None)
    data = bytearray(path.read_bytes())
    data[200:4000] = b"\xff" * 3800
    path.write_bytes(bytes(data))
    preflight_file(con, path, "broken.parquet")
    [unreadable] = ingest_files(
        con, [LandingInput(path, "broken.parquet", file_hash(path))]
    ).unreadable
    assert unreadable.source_file == "broken.parquet" and "cannot be read" in unreadable.problem
    assert con.execute(f"SELECT count(*) FROM {tables.RAW}").fetchall() == [(0,)]


def test_files_the_ledger_holds_are_not_fetched(con, tmp_path):
    # On S3 a local copy is a download: a re-run must not fetch files it will skip.
    files = run_files(con, tmp_path)
    fetched = []

    @contextmanager
    def local_copy(name):
        fetched.append(name)
        yield tmp_path / name

    ingest_files(
        con, [LandingInput(None, f.source_file, f.file_hash) for f in files], local_copy=local_copy
    )
    write_lines(tmp_path / "f3.csv", [lter_lines()[0]] + lter_lines()[31:41])
    files.append(LandingInput(None, "f3.csv", file_hash(tmp_path / "f3.csv")))
    accounts = ingest_files(
        con, [LandingInput(None, f.source_file, f.file_hash) for f in files], local_copy=local_copy
    ).accounts
    assert fetched == ["f0.csv", "f1.csv", "f2.csv", "f3.csv"]
    assert [a.rows_loaded for a in accounts] == [0, 0, 0, 10]


@pytest.mark.parametrize("with_claim", [False, True], ids=["one writer", "claimed"])
@pytest.mark.parametrize("force", [False, True], ids=["run", "forced"])
def test_a_run_replaces_only_a_changed_files_rows(con, tmp_path, with_claim, force):
    # Whether a file was loaded before comes from the ledger read at the run's start (one writer)
    # or read again under the claim: either way its old rows must go, the other files' stay.
    lines = lter_lines()
    a = write_lines(tmp_path / "a.csv", lines[:11])
    b = write_lines(tmp_path / "b.csv", [lines[0]] + lines[11:21])

    def run():
        claim = (lambda name: contextlib.nullcontext()) if with_claim else None
        files = [LandingInput(p, p.name, file_hash(p)) for p in (a, b)]
        return ingest_files(con, files, force=force, claim=claim).accounts

    run()
    write_lines(a, lines[:6])  # a shrinks to 5 rows
    loaded = [account.rows_loaded for account in run()]
    counts = dict(
        con.execute(f"SELECT source_file, count(*) FROM {tables.RAW} GROUP BY 1").fetchall()
    )
    ledger = con.execute(f"SELECT source_file, rows_loaded FROM {tables.LEDGER} ORDER BY 1")
    assert loaded == ([5, 10] if force else [5, 0])
    assert counts == {"a.csv": 5, "b.csv": 10}
    assert ledger.fetchall() == [("a.csv", 5), ("b.csv", 10)]
