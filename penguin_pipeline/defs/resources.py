"""Dagster resources: the warehouse, the pins board, the landing zone and where reports go."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg
from dagster_duckdb import DuckDBResource

from ..settings import Settings
from ..storage import boards, landing, locations, warehouse


class Warehouse(DuckDBResource):
    """DuckDBResource used through storage/warehouse.session: every limit enforced, the connection
    always closed, and a limit reached turned into one Failure naming the setting to raise (one
    place for every asset).

    dagster-duckdb's get_connection() closes only when the body succeeds; after a failing step the
    connection (and DuckDB's file lock) stayed open until garbage collection.
    """

    @contextmanager
    def get_connection(self):
        try:
            warehouse.check_database_path(self.database)
        except warehouse.WarehouseUnusable as exc:
            raise dg.Failure(description=str(exc)) from None
        try:
            with super().get_connection() as con, warehouse.session(con, self.connection_config):
                yield con
        except warehouse.LimitReached as exc:
            cause = exc.__cause__
            raise dg.Failure(description=f"{exc}\n{_what_failed(cause)}") from cause


def _what_failed(exc: Exception) -> str:
    return (
        exc.description
        if isinstance(exc, dg.Failure) and exc.description
        else f"{type(exc).__name__}: {exc}"
    )


class PinsBoard(dg.ConfigurableResource):
    """A versioned pins board: a folder path or s3://bucket/prefix."""

    url: str
    endpoint_url: str | None = None

    def board(self):
        return boards.board_from_url(self.url, self.endpoint_url)


class LandingZone(dg.ConfigurableResource):
    """Where raw field files arrive (folder or s3://bucket/prefix), and where unreadable ones go."""

    url: str
    quarantine_url: str
    endpoint_url: str | None = None

    def landing(self) -> landing.Landing:
        return landing.landing_from_url(self.url, self.quarantine_url, self.endpoint_url)


class TrainingSample(dg.ConfigurableResource):
    """How penguin_model samples its training rows (PENGUIN_SAMPLE_ROWS, PENGUIN_SAMPLE_SEED)."""

    rows: int
    seed: int


class Monitoring(dg.ConfigurableResource):
    """Held-out share, drift thresholds and promotion tolerance (PENGUIN_HOLDOUT_SHARE,
    PENGUIN_DRIFT_WARN, PENGUIN_DRIFT_BLOCK, PENGUIN_PROMOTION_TOLERANCE)."""

    holdout_share: float
    drift_warn: float
    drift_block: float
    promotion_tolerance: float


class Reports(dg.ConfigurableResource):
    """Where the rendered report goes: a folder or s3://bucket/prefix."""

    url: str
    endpoint_url: str | None = None

    def location(self) -> locations.Location:
        return locations.open_location(self.url, self.endpoint_url)


def build_resources(settings: Settings) -> dict:
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)
    return {
        "warehouse": Warehouse(
            database=str(settings.duckdb_path),
            connection_config=warehouse.connection_config(
                settings.duckdb_memory_limit,
                settings.duckdb_threads,
                settings.duckdb_temp_dir,
                settings.duckdb_max_temp_size,
            ),
        ),
        "board": PinsBoard(url=settings.board_url, endpoint_url=settings.aws_endpoint_url),
        "landing": LandingZone(
            url=settings.landing_url,
            quarantine_url=settings.quarantine_url,
            endpoint_url=settings.aws_endpoint_url,
        ),
        "reports": Reports(url=settings.reports_url, endpoint_url=settings.aws_endpoint_url),
        "training_sample": TrainingSample(rows=settings.sample_rows, seed=settings.sample_seed),
        "monitoring_settings": Monitoring(
            holdout_share=settings.holdout_share,
            drift_warn=settings.drift_warn,
            drift_block=settings.drift_block,
            promotion_tolerance=settings.promotion_tolerance,
        ),
    }
