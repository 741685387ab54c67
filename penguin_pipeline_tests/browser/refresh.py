"""Landing several files and telling when the whole graph was refreshed after a click (shared by
the "Materialize all" browser test and `make bench-ui`)."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from penguin_pipeline.cli import new_season
from penguin_pipeline.settings import load_settings

from ..conftest import PIPELINE_ASSETS, lter_lines, write_lines

ASSETS = PIPELINE_ASSETS
SPLIT = 3  # the shipped file's rows are dealt into this many files first


def land_files(data: Path, count: int, first: int = 0) -> None:
    """Land files number `first` to `count - 1`: the shipped LTER file's rows dealt into three
    files (each holds all three species), then synthetic field seasons; every file holds its own
    individuals, so the clean table's checks pass on any number of them."""
    raw = data / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    header, *rows = lter_lines()
    settings = load_settings({"PENGUIN_DATA_DIR": str(data)})
    for number in range(first, count):
        if number < SPLIT:
            write_lines(raw / f"part-{number}.csv", [header] + rows[number::SPLIT])
        else:
            new_season(rows=150, seed=number, settings=settings)


def refreshed_at(instance: dg.DagsterInstance, since: float) -> float | None:
    """When the last asset of the graph got a materialization at or after `since` (epoch seconds),
    or None while one has not."""
    stamps = []
    for key in ASSETS:
        event = instance.get_latest_materialization_event(dg.AssetKey(key))
        if event is None or event.timestamp < since:
            return None
        stamps.append(event.timestamp)
    return max(stamps)


def runs_since(instance: dg.DagsterInstance, since: float) -> list[dg.DagsterRun]:
    """The runs created at or after `since` (epoch seconds), oldest first."""
    records = instance.get_run_records()
    return [r.dagster_run for r in reversed(records) if r.create_timestamp.timestamp() >= since]
