"""`make bench-raw-layouts`: what writing the raw layer costs per row in other layouts, on both
backends. A measurement for the design question in README (Big data, "What the raw layer costs"),
never part of the tests.

One Parquet landing file (BENCH_RAW_FILE, or the largest of one synthetic season of 3M rows: Biscoe,
~1.44M rows, as in the 10^8 set), one DuckDB thread, CPU time per row of each `CREATE TABLE AS`
from the file: the 17 columns as landed text with the valid rows only (what `raw_penguins` is),
the measurements typed, every row without the validity flag, the flag alone, and on the lake
registering a copy of the file without rewriting it (`ducklake_add_data_files`). The lake is
DuckLake on a local DuckDB catalog (the catalog's database does not change the cost of writing its
Parquet).
"""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import duckdb

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline import synth  # noqa: E402
from penguin_pipeline.processing.lter import (  # noqa: E402
    LTER_COLUMNS,
    MEASUREMENTS,
    quote,
    raw_date,
    raw_number,
    row_is_valid,
)
from penguin_pipeline.storage.warehouse import (  # noqa: E402
    apply_limits,
    connection_config,
    extension_file,
)

LINEAGE = "'f' AS source_file, file_row_number + 1 AS source_line, now()::TIMESTAMP AS loaded_at"


def typed(column: str) -> str:
    if column in MEASUREMENTS:
        return f"{raw_number(column)} AS {quote(column)}"
    if column == "Sample Number":
        return f"TRY_CAST({quote(column)} AS INTEGER) AS {quote(column)}"
    if column == "Date Egg":
        return f"{raw_date()} AS {quote(column)}"
    return quote(column)


def layouts(source: str) -> dict[str, str]:
    text = ", ".join(f"CAST({quote(c)} AS VARCHAR) AS {quote(c)}" for c in LTER_COLUMNS)
    types = ", ".join(typed(c) for c in LTER_COLUMNS)
    valid = f"(SELECT * FROM {source} WHERE {row_is_valid()})"
    return {
        "as now: landed text, valid rows": f"SELECT {text}, {LINEAGE} FROM {valid}",
        "typed measurements, valid rows": f"SELECT {types}, {LINEAGE} FROM {valid}",
        "landed text, every row (no flag)": f"SELECT {text}, {LINEAGE} FROM {source}",
    }


def per_row(con, sql: str, rows: int) -> float:
    started = time.process_time()
    con.execute(sql)
    return (time.process_time() - started) / rows * 1e6


def landing_file(work: Path) -> Path:
    if os.environ.get("BENCH_RAW_FILE"):
        return Path(os.environ["BENCH_RAW_FILE"])
    profile = synth.shipped_profile()
    files = synth.write_landing_files(profile, 3_000_000, work / "landing", seasons=1)
    return max(files, key=lambda f: f.stat().st_size)


def connections(work: Path) -> tuple:
    """A DuckLake and a DuckDB file with the pipeline's connection settings, on one thread."""
    config = connection_config("1200MB", 1, work / "duckdb_tmp")
    lake = duckdb.connect(config=config)
    apply_limits(lake, config)
    lake.execute(f"LOAD '{extension_file('ducklake')}'")
    lake.execute(f"ATTACH 'ducklake:{work}/lake.ducklake' AS lake (DATA_PATH '{work}/lake/')")
    lake.execute("USE lake")
    disk = duckdb.connect(str(work / "file.duckdb"), config=config)
    apply_limits(disk, config)
    return lake, disk


def registered(lake, path: Path, work: Path, rows: int) -> float:
    """CPU per row of copying the file into the lake's folder and registering it as data."""
    lake.execute(
        f"CREATE TABLE registered ({', '.join(f'{quote(c)} VARCHAR' for c in LTER_COLUMNS)})"
    )
    copy = work / "registered.parquet"
    started = time.process_time()
    shutil.copy(path, copy)
    lake.execute(f"CALL ducklake_add_data_files('lake', 'registered', '{copy}')")
    seconds = time.process_time() - started
    assert lake.execute("SELECT count(*) FROM registered").fetchone()[0] == rows
    return seconds / rows * 1e6


def main() -> None:
    work = Path(tempfile.mkdtemp(prefix="raw-layouts-"))
    try:
        path = landing_file(work)
        source = f"read_parquet('{path}', file_row_number = true)"
        lake, disk = connections(work)
        rows = lake.execute(f"SELECT count(*) FROM {source}").fetchone()[0]
        print(f"{path.name}: {rows} rows; CPU microseconds per row, one thread")
        print(f"{'layout':44} {'lake':>6} {'file':>6}")
        table = []
        for k, (name, sql) in enumerate(layouts(source).items()):
            on_lake = per_row(lake, f"CREATE TABLE t{k} AS {sql}", rows)
            on_file = per_row(disk, f"CREATE TABLE t{k} AS {sql}", rows)
            print(f"{name:44} {on_lake:6.2f} {on_file:6.2f}")
            table.append({"layout": name, "lake (µs/row)": on_lake, "file (µs/row)": on_file})
        flag = per_row(lake, f"SELECT count(*) FROM {source} WHERE {row_is_valid()}", rows)
        print(f"{'the validity flag alone (a count)':44} {flag:6.2f}")
        copied = registered(lake, path, work, rows)
        print(f"{'no rewrite: copy + ducklake_add_data_files':44} {copied:6.2f}")
        table += [
            {"layout": "the validity flag alone (a count)", "lake (µs/row)": flag},
            {"layout": "no rewrite: copy + ducklake_add_data_files", "lake (µs/row)": copied},
        ]
        entry = {
            "date": datetime.now(UTC).isoformat(timespec="minutes"),
            "machine": machine(),
            "peer": "the raw layer as specified (every column as text)",
            "note": f"{path.name}: {rows} rows; CPU microseconds per row, one thread",
            "rows": [
                {k: round(v, 2) if isinstance(v, float) else v for k, v in r.items()} for r in table
            ],
            "plot": {
                "x": "layout",
                "y": ["lake (µs/row)", "file (µs/row)"],
                "ylabel": "µs per row",
            },
        }
        print(f"results: {append_results('raw_layouts', entry)}")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
