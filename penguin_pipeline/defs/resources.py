"""Dagster resources: the warehouse, the pins board, the landing zone and where reports go."""

from __future__ import annotations

from contextlib import contextmanager, nullcontext

import dagster as dg
from dagster_duckdb import DuckDBResource

from ..settings import Settings
from ..storage import boards, landing, locations, warehouse

WAREHOUSE_VARIABLE = "PENGUIN_WAREHOUSE"


class Warehouse(DuckDBResource):
    """DuckDBResource used through storage/warehouse.session: every limit enforced, the connection
    always closed, and a limit reached turned into one Failure naming the setting to raise (one
    place for every asset).

    dagster-duckdb's get_connection() closes only when the body succeeds; after a failing step the
    connection (and DuckDB's file lock) stayed open until garbage collection.

    With `lake_setting` set (PENGUIN_WAREHOUSE=ducklake:postgres:...) the connection is to the
    DuckLake instead of the file `database` (storage/warehouse.connect_lake).
    """

    # PENGUIN_WAREHOUSE, as dg.EnvVar: its libpq string may hold a password, so the UI and the
    # run's stored config show the variable's name, and the value is read where the step runs.
    lake_setting: str | None = None
    lake_data: str = ""  # the lake's data path: a folder or s3://bucket/prefix
    endpoint_url: str | None = None

    def lake(self) -> warehouse.Lake | None:
        return warehouse.lake_from_settings(
            _value(self.lake_setting), self.lake_data, self.endpoint_url
        )

    @property
    def on_lake(self) -> bool:
        """The warehouse is a DuckLake, not the DuckDB file."""
        return self.lake() is not None

    @property
    def files_at_once(self) -> int:
        """Landing files the raw step loads side by side: one per DuckDB thread
        (PENGUIN_DUCKDB_THREADS), at most two. One file's rows are written on about one core: on
        the DuckDB file 14.6 -> 11.2 s for 10^7 rows; on the lake 12.0-12.9 -> 11.5-12.0 s for
        files of ~10^6 rows, 25.7-26.2 -> 18.7-19.8 s for 10^7 rows in files of 10^5 (each file
        one Parquet row group, written by one thread; docs: scale.md)."""
        return max(1, min(2, int(self.connection_config["threads"])))

    @contextmanager
    def get_connection(self):
        try:
            with self._connect() as con, warehouse.session(con, self.connection_config):
                yield con
        except warehouse.LimitReached as exc:
            cause = exc.__cause__
            raise dg.Failure(description=f"{exc}\n{_what_failed(cause)}") from cause
        except warehouse.WarehouseUnavailable as exc:
            raise dg.Failure(description=str(exc)) from None
        except Exception as exc:
            lost = self._catalog_lost(exc)
            if lost is None:
                raise
            raise dg.Failure(description=lost) from None

    def _catalog_lost(self, exc: Exception) -> str | None:
        lake = self.lake()
        return None if lake is None else warehouse.catalog_lost(exc, lake)

    def _connect(self):
        lake = self.lake()
        if lake is None:
            warehouse.check_database_path(self.database)
            return super().get_connection()
        return nullcontext(warehouse.connect_lake(lake, self.connection_config))

    @contextmanager
    def file_claims(self):
        """Per-landing-file claims for runs loading at once (the lake); None for the file, whose
        steps run one at a time."""
        lake = self.lake()
        if lake is None:
            yield None
            return
        with warehouse.file_claims(lake) as claim:
            yield claim

    @contextmanager
    def one_at_a_time(self, name: str):
        """`name` held by one step at a time across every run and machine writing to the lake (see
        warehouse.catalog_lock); nothing to hold on the file, whose steps run one at a time."""
        lake = self.lake()
        if lake is None:
            yield
            return
        with warehouse.catalog_lock(lake, name):
            yield

    def check(self) -> None:
        """Before any run: the lake's catalog answers, its data path takes files, its extension
        packages are installed (WarehouseUnavailable, one line). Nothing to check for the file."""
        lake = self.lake()
        if lake is not None:
            warehouse.check_lake(lake, self.connection_config)


def _value(setting: str | None) -> str | None:
    """A config value that may still be a dg.EnvVar: resolved by Dagster inside a run, read from
    the environment when the resource is used outside one (the CLI's checks, lake-maintain)."""
    return setting.get_value() if isinstance(setting, dg.EnvVar) else setting


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


def warehouse_resource(settings: Settings) -> Warehouse:
    """The DuckDB file, or the lake that PENGUIN_WAREHOUSE names (a malformed value: one line)."""
    lake = warehouse.lake_from_settings(
        settings.warehouse, settings.lake_data, settings.aws_endpoint_url
    )
    return Warehouse(
        database=str(settings.duckdb_path),
        connection_config=warehouse.connection_config(
            settings.duckdb_memory_limit,
            settings.duckdb_threads,
            settings.duckdb_temp_dir,
            settings.duckdb_max_temp_size,
        ),
        lake_setting=dg.EnvVar(WAREHOUSE_VARIABLE) if lake else None,
        lake_data=lake.data_path if lake else "",
        endpoint_url=settings.aws_endpoint_url,
    )


def build_resources(settings: Settings) -> dict:
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    settings.duckdb_temp_dir.mkdir(parents=True, exist_ok=True)
    return {
        "warehouse": warehouse_resource(settings),
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
