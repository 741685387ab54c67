"""Landing files loaded two at a time on the lake (the raw step's default there too): the lake
ends up as the DuckDB file does loading them one at a time, in the files' order."""

from __future__ import annotations

import duckdb

from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.processing import tables
from penguin_pipeline.processing.ingest import LandingInput, ingest_files
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage.locations import file_hash

from ..test_ingest import run_files, staging_side_by_side, warehouse_contents


def landing(paths) -> list[LandingInput]:
    return [LandingInput(p, p.name, file_hash(p)) for p in paths]


def test_two_files_side_by_side_on_the_lake_give_what_one_at_a_time_gives_on_the_file(
    lake_env, tmp_path, monkeypatch
):
    paths = [f.path for f in run_files(None, tmp_path, count=5)]
    paths[2].write_text(paths[2].read_text().replace("Adelie", "Emperor", 1))  # one reject
    files = landing(paths)
    reference = duckdb.connect()
    tables.ensure_schema(reference)
    ingest_files(reference, files)
    with warehouse_resource(load_settings()).get_connection() as lake:
        tables.ensure_schema(lake, on_lake=True)
        staging_side_by_side(monkeypatch, slower="f0.csv")  # f1 is done first, commits second
        beside = ingest_files(lake, files, at_once=2)
        assert [a.rows_loaded for a in beside.accounts] == [10, 10, 9, 10, 10]
        assert warehouse_contents(lake) == warehouse_contents(reference)

        # Two changed files side by side: each one's old rows deleted in its own transaction.
        for path in paths[:2]:
            path.write_text("\n".join(path.read_text().splitlines()[:-1]) + "\n")
        ingest_files(reference, landing(paths))
        again = ingest_files(lake, landing(paths), at_once=2)
        assert [a.rows_loaded for a in again.accounts] == [9, 9, 0, 0, 0]
        assert warehouse_contents(lake) == warehouse_contents(reference)
