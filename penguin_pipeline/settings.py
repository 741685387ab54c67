"""Every path, URL and knob of the project, read from the environment with embedded defaults.

Nothing else in the package reads os.environ: change a default here and README/.env.example.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parents[1]


def _env(env, name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


REPORT_FILE_NAME = "penguin_report.html"
PROFILES = ("embedded", "prod")
# The production profile's services on this machine (README, "Production profile"). No password in
# a default: RabbitMQ's guest account is kombu's default user for an amqp:// URL without one.
DEFAULT_PG_URL = "postgresql://postgres@127.0.0.1:5432/penguin_pipeline"
DEFAULT_CELERY_BROKER = "amqp://127.0.0.1:5672//"
DEFAULT_CELERY_BACKEND = "redis://127.0.0.1:6379/0"


@dataclass(frozen=True)
class Settings:
    data_dir: Path
    duckdb_path: Path
    board_url: str
    landing_url: str
    reports_url: str  # a folder or s3://bucket/prefix, kept as text like the next three
    # a folder or s3://bucket/prefix, kept as text (pathlib would turn s3:// into s3:/)
    quarantine_url: str
    duckdb_memory_limit: str
    duckdb_threads: int
    duckdb_temp_dir: Path
    aws_endpoint_url: str | None
    sensor_interval_seconds: int
    # --- prediction API ---
    # never in logs. "scope[,scope]:key" entries separated by ";" (README, Prediction API)
    api_keys: str | None = field(repr=False)
    api_keys_file: Path | None  # one "scope[,scope]:key" entry per line, "#" starts a comment
    model_version: str | None  # pin the API to this penguin_model version; None = follow the newest
    model_poll_seconds: float  # how often the API looks for a newer version on the board; 0 = never
    api_max_batch: int  # most records in one /predict request; more gets 413
    # --- scale ---
    # penguin_model trains on a stratified sample of at most this many rows
    sample_rows: int = 100_000
    sample_seed: int = 42  # the sample (and the held-out rows) are a pure function of data and seed
    # --- monitoring, champion and challenger (README, Monitoring) ---
    holdout_share: float = 0.2  # share of the newest season's complete rows no version trains on
    drift_warn: float = 0.1  # PSI above this: the input_drift check warns
    drift_block: float = 0.25  # PSI above this: the check fails and no challenger is promoted
    # a challenger's held-out RMSE may exceed the champion's by this share and still be promoted
    promotion_tolerance: float = 0.02
    # --- faults and limits ---
    # cap on DuckDB's spill folder; None = DuckDB's (90% of the free disk)
    duckdb_max_temp_size: str | None = None
    # per S3 request; a slower answer is retried (README, Storage on S3)
    s3_read_timeout_seconds: float = 30.0
    # --- warehouse backend (README, "Warehouse backends") ---
    # None: the DuckDB file duckdb_path; "ducklake:postgres:<libpq string>": a DuckLake whose
    # catalog is that Postgres database (PENGUIN_WAREHOUSE; never printed: it may hold a password)
    warehouse: str | None = field(default=None, repr=False)
    # the lake's Parquet files: a folder or s3://bucket/prefix (PENGUIN_LAKE_DATA)
    lake_data: str = str(PROJECT_ROOT / "data" / "lake")
    # lake maintenance expires snapshots older than this and merges small files (PENGUIN_LAKE_KEEP)
    lake_keep: str = "7 days"
    # --- production profile (README, "Production profile"); the embedded default reads none ---
    # "embedded": steps in the run's own process; "prod": steps on Celery workers (PENGUIN_PROFILE)
    profile: str = "embedded"
    # The next three may hold a password: never printed unmasked (prod.masked).
    pg_url: str = field(default=DEFAULT_PG_URL, repr=False)
    celery_broker: str = field(default=DEFAULT_CELERY_BROKER, repr=False)
    celery_backend: str = field(default=DEFAULT_CELERY_BACKEND, repr=False)
    celery_queue: str = "penguin_pipeline"  # each deployment's own queue: its workers, its steps
    workers: int = 2  # worker processes `make prod-up` starts on each host
    hosts: int = 1  # 2: workers also on a simulated second host (penguin_pipeline/hosts.py)
    prod_home: Path = PROJECT_ROOT / ".dagster_home_prod"  # the profile's DAGSTER_HOME
    dagster_port: int = 3000  # the webserver of `make dev` and `make prod-up`
    # --- alerts (docs/how-to/operate.md) ---
    # A Slack-style incoming webhook (PENGUIN_ALERT_WEBHOOK); None = no alerts. A secret: never
    # printed, handed to Dagster as dg.EnvVar (defs/alerts.py)
    alert_webhook: str | None = field(default=None, repr=False)
    webserver_url: str | None = None  # DAGSTER_WEBSERVER_URL: alerts link to the failed run
    # --- the model explorer (make app; docs/how-to/explorer.md) ---
    app_port: int = 8000
    api_url: str = "http://127.0.0.1:8080"  # the prediction API the explorer asks
    # the explorer's own key (scope predict; admin adds reload): never in logs
    api_key: str | None = field(default=None, repr=False)

    @property
    def report_url(self) -> str:
        return f"{self.reports_url.rstrip('/')}/{REPORT_FILE_NAME}"

    @property
    def logs_dir(self) -> Path:
        """`penguin-pipeline run` writes each run's log here (Dagster's event log, warnings)."""
        return self.data_dir / "logs"


def load_settings(env=None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(_env(env, "PENGUIN_DATA_DIR", str(PROJECT_ROOT / "data")))
    return Settings(
        data_dir=data_dir,
        duckdb_path=Path(_env(env, "PENGUIN_DUCKDB", str(data_dir / "penguins.duckdb"))),
        board_url=_env(env, "PENGUIN_BOARD", str(data_dir / "board")),
        landing_url=_env(env, "PENGUIN_LANDING", str(data_dir / "raw")),
        reports_url=_env(env, "PENGUIN_REPORTS", str(data_dir / "reports")),
        quarantine_url=_env(env, "PENGUIN_QUARANTINE", str(data_dir / "quarantine")),
        # 2 cores / 24 GiB here: leave room for Dagster, the API and the OS.
        duckdb_memory_limit=_env(env, "PENGUIN_DUCKDB_MEMORY_LIMIT", "2GB"),
        duckdb_threads=int(_env(env, "PENGUIN_DUCKDB_THREADS", "2")),
        duckdb_temp_dir=Path(_env(env, "PENGUIN_DUCKDB_TEMP_DIR", str(data_dir / "duckdb_tmp"))),
        aws_endpoint_url=env.get("AWS_ENDPOINT_URL") or None,
        sensor_interval_seconds=int(_env(env, "PENGUIN_SENSOR_INTERVAL_SECONDS", "5")),
        # --- prediction API ---
        api_keys=_env(env, "PENGUIN_API_KEYS", "") or None,
        api_keys_file=(
            Path(_env(env, "PENGUIN_API_KEYS_FILE", ""))
            if _env(env, "PENGUIN_API_KEYS_FILE", "")
            else None
        ),
        model_version=_env(env, "PENGUIN_MODEL_VERSION", "") or None,
        model_poll_seconds=float(_env(env, "PENGUIN_MODEL_POLL_SECONDS", "30")),
        api_max_batch=int(_env(env, "PENGUIN_API_MAX_BATCH", "10000")),
        # --- scale ---
        sample_rows=int(float(_env(env, "PENGUIN_SAMPLE_ROWS", "100000"))),
        sample_seed=int(_env(env, "PENGUIN_SAMPLE_SEED", "42")),
        **_monitoring(env),
        # --- faults and limits ---
        duckdb_max_temp_size=_env(env, "PENGUIN_DUCKDB_MAX_TEMP_SIZE", "") or None,
        s3_read_timeout_seconds=float(_env(env, "PENGUIN_S3_READ_TIMEOUT_SECONDS", "30")),
        # --- warehouse backend ---
        warehouse=_env(env, "PENGUIN_WAREHOUSE", "") or None,
        lake_data=_env(env, "PENGUIN_LAKE_DATA", str(data_dir / "lake")),
        lake_keep=_env(env, "PENGUIN_LAKE_KEEP", "7 days"),
        # --- production profile ---
        profile=_profile(_env(env, "PENGUIN_PROFILE", "embedded")),
        pg_url=_env(env, "PENGUIN_PG_URL", DEFAULT_PG_URL),
        celery_broker=_env(env, "PENGUIN_CELERY_BROKER", DEFAULT_CELERY_BROKER),
        celery_backend=_env(env, "PENGUIN_CELERY_BACKEND", DEFAULT_CELERY_BACKEND),
        celery_queue=_env(env, "PENGUIN_CELERY_QUEUE", "penguin_pipeline"),
        workers=int(_env(env, "PENGUIN_WORKERS", "2")),
        hosts=int(_number(env, "PENGUIN_HOSTS", "1", 1, 2)),
        prod_home=Path(_env(env, "PENGUIN_PROD_HOME", str(PROJECT_ROOT / ".dagster_home_prod"))),
        dagster_port=int(_env(env, "DAGSTER_PORT", "3000")),
        # --- alerts ---
        alert_webhook=_env(env, "PENGUIN_ALERT_WEBHOOK", "") or None,
        webserver_url=_env(env, "DAGSTER_WEBSERVER_URL", "") or None,
        # --- the model explorer ---
        app_port=int(_env(env, "APP_PORT", "8000")),
        api_url=_env(env, "PENGUIN_API_URL", "http://127.0.0.1:8080").rstrip("/"),
        api_key=_env(env, "PENGUIN_API_KEY", "") or None,
    )


def _number(env, name: str, default: str, low: float, high: float) -> float:
    """A float setting within [low, high]; a clear error naming the variable otherwise."""
    text = _env(env, name, default)
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{name}={text!r}: expected a number") from None
    if not low <= value <= high:
        raise ValueError(f"{name}={text!r}: expected a number from {low:g} to {high:g}")
    return value


def _monitoring(env) -> dict:
    warn = _number(env, "PENGUIN_DRIFT_WARN", "0.1", 0.0, 100.0)
    block = _number(env, "PENGUIN_DRIFT_BLOCK", "0.25", 0.0, 100.0)
    if block < warn:
        raise ValueError(
            f"PENGUIN_DRIFT_BLOCK={block:g} is below PENGUIN_DRIFT_WARN={warn:g}: "
            "blocking must not start before warning"
        )
    return {
        "holdout_share": _number(env, "PENGUIN_HOLDOUT_SHARE", "0.2", 0.01, 0.9),
        "drift_warn": warn,
        "drift_block": block,
        "promotion_tolerance": _number(env, "PENGUIN_PROMOTION_TOLERANCE", "0.02", 0.0, 10.0),
    }


def _profile(name: str) -> str:
    if name not in PROFILES:
        raise ValueError(f"PENGUIN_PROFILE={name!r}: use one of {', '.join(PROFILES)}")
    return name
