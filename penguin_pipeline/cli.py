"""Command line: `penguin-pipeline run` materializes the whole graph once and says what it made."""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from .definitions import defs
from .defs.assets import QUARANTINED, landing_files
from .defs.automation import register_new_partitions, whole_landing_tags
from .defs.instance import write_history_without_flushes
from .defs.resources import warehouse_resource
from .defs.runs import release_dead_runs, this_process_tags
from .settings import load_settings
from .storage import boards, landing, locations, s3, warehouse


def landing_zone(settings) -> landing.Landing:
    return landing.landing_from_url(
        settings.landing_url, settings.quarantine_url, settings.aws_endpoint_url
    )


def check_storage(settings) -> None:
    """Fail at once, naming bucket and endpoint, when a configured s3:// location cannot be used;
    and naming what is wrong with the lake (catalog, data path, extension package) when one is
    configured."""
    locations.check_storage(
        settings.board_url,
        settings.landing_url,
        settings.quarantine_url,
        settings.reports_url,
        endpoint_url=settings.aws_endpoint_url,
    )
    warehouse_resource(settings).check()


def describe_warehouse(settings) -> str:
    lake = warehouse_resource(settings).lake()
    if lake is None:
        return str(settings.duckdb_path)
    return f"DuckLake, catalog {warehouse.masked(lake.catalog)}, data {lake.data_path}"


def maintain_lake(settings) -> dict:
    """`penguin-pipeline lake-maintain`: the lake's retention (PENGUIN_LAKE_KEEP)."""
    resource = warehouse_resource(settings)
    if not resource.on_lake:
        raise warehouse.WarehouseUnavailable(
            "lake-maintain needs a lake: set PENGUIN_WAREHOUSE=ducklake:postgres:<libpq string>"
        )
    with resource.get_connection() as con:
        return warehouse.maintain(con, settings.lake_keep)


RUN_LOGS_KEPT = 20  # the newest run logs kept in Settings.logs_dir; older ones are deleted


@contextmanager
def run_log(settings) -> Iterator[logging.FileHandler]:
    """A new log file for one run: while open, it receives Python warnings and library logging."""
    settings.logs_dir.mkdir(parents=True, exist_ok=True)
    for old in sorted(settings.logs_dir.glob("run-*.log"))[: -(RUN_LOGS_KEPT - 1) or None]:
        old.unlink(missing_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    handler = logging.FileHandler(
        settings.logs_dir / f"run-{stamp}-{uuid.uuid4().hex[:6]}.log", encoding="utf-8"
    )
    handler.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    logging.captureWarnings(True)
    try:
        yield handler
    finally:
        logging.captureWarnings(False)
        root.removeHandler(handler)
        handler.close()


def _event_log_to(
    handler: logging.Handler, on_run_start: Callable[[], object] | None = None
) -> dg.LoggerDefinition:
    """Dagster's event log of a run (DEBUG and up) to `handler`, in place of its console logger.

    `on_run_start` is called when Dagster first sets the logger up (it does so twice per run):
    after it has recorded the run and its planned events, just before the first step."""
    started = threading.Event()

    @dg.logger(description="the run's event log, written to the run's log file")
    def run_log_file(_init_context) -> logging.Logger:
        if on_run_start is not None and not started.is_set():
            started.set()
            on_run_start()
        # Not registered with logging: it writes to this handler only.
        log = logging.Logger("dagster", logging.DEBUG)
        log.addHandler(handler)
        return log

    return run_log_file


# What the later steps import on first use (scikit-learn, vetiver, matplotlib: ~2 s). Imported on a
# side thread while raw_penguins runs, whose time is spent inside DuckDB with the GIL released,
# they are off the run's critical path (10^7 rows: penguin_model 5.1 -> 3.8 s). The thread starts
# once Dagster has recorded the run's planned events, ~0.3 s of Python that it slowed to ~1.3 s
# when it started before them. With little to load it only competes with Dagster for the GIL
# (the shipped file: +3.6%), so it starts only when the landing zone holds PREWARM_BYTES.
PREWARM_BYTES = 16 * 2**20
LATE_IMPORTS = (
    "sklearn.compose",
    "sklearn.linear_model",
    "sklearn.metrics",
    "sklearn.pipeline",
    "sklearn.preprocessing",
    "vetiver",
    "penguin_pipeline.report.figures",  # matplotlib, with its Agg backend chosen first
)


def import_in_background(modules: tuple[str, ...] = LATE_IMPORTS) -> threading.Thread:
    """Import `modules` on a daemon thread; a step importing one meanwhile waits for it (Python's
    per-module import lock), so nothing is imported twice or half."""
    import importlib

    def work() -> None:
        for name in modules:
            importlib.import_module(name)

    thread = threading.Thread(target=work, name="late-imports", daemon=True)
    thread.start()
    return thread


def run_pipeline(
    instance: dg.DagsterInstance, tags: dict | None = None, log: logging.Handler | None = None
) -> dg.ExecuteInProcessResult:
    """Seed landing if empty, then one run of penguin_job over every landing file.

    Dagster's event log goes to `log` when given, else to the console as Dagster does by default.
    """
    settings = load_settings()
    zone = landing_zone(settings)
    landing.seed_if_empty(zone)
    landed = zone.files()
    names = [f.name for f in landed]
    register_new_partitions(instance, names)
    for line in release_dead_runs(instance):
        print(f"penguin_pipeline: {line}", file=sys.stderr)
    # No daemon retries a run the command line executed: its failure is reported right here.
    run_tags = {
        **whole_landing_tags(instance),
        **this_process_tags(),
        "dagster/max_retries": "0",
        **(tags or {}),
    }
    job = defs().resolve_job_def("penguin_job")
    prewarm = import_in_background if sum(f.size for f in landed) >= PREWARM_BYTES else None
    run_config = None
    if log is not None:
        # Dagster uses only the loggers the run config names; its console logger is then not used.
        job = job.with_logger_defs({"run_log_file": _event_log_to(log, on_run_start=prewarm)})
        run_config = {"loggers": {"run_log_file": {}}}
    elif prewarm is not None:
        prewarm()
    return job.execute_in_process(
        run_config=run_config, instance=instance, tags=run_tags, raise_on_error=False
    )


def failure_messages(result: dg.ExecuteInProcessResult) -> list[str]:
    """Each failed step with the reason the asset gave (not only "step failed")."""
    messages = []
    for event in result.all_events:
        if event.is_step_failure:
            messages.append(
                f"{event.step_key}: {_reason(event.event_specific_data) or event.message}"
            )
    return messages


def _reason(failure) -> str | None:
    if failure.user_failure_data and failure.user_failure_data.description:  # a dg.Failure's words
        return failure.user_failure_data.description.strip()
    error = failure.error
    if error is None:
        return None
    # An exception other than dg.Failure arrives wrapped ("Error occurred while executing op"): the
    # cause is what says what went wrong (an S3StorageError naming bucket and endpoint, say).
    while error.cause is not None and error.cls_name == "DagsterExecutionStepExecutionError":
        error = error.cause
    return error.message.strip()


def quarantined_files(result: dg.ExecuteInProcessResult) -> list[dict]:
    """The run's landing files that could not be read, each with its problem and where it went."""
    return [
        file
        for evaluation in result.get_asset_check_evaluations()
        if evaluation.check_name == "landing_files_readable" and not evaluation.passed
        for file in evaluation.metadata[QUARANTINED].value
    ]


def describe_quarantined(quarantined: list[dict]) -> str:
    lines = [
        f"penguin_pipeline: {len(quarantined)} landing file(s) could not be read and were moved to "
        "quarantine (every other file loaded):"
    ]
    lines += [
        f"  {q['file']}: {q['problem']}\n    now at {q['moved_to']} (reason beside it)"
        for q in quarantined
    ]
    return "\n".join(lines)


def describe_outputs(log_path: Path | None = None) -> str:
    settings = load_settings()
    board = boards.board_from_url(settings.board_url, settings.aws_endpoint_url)
    decision, facts = boards.champion(board)
    decision, facts = decision or {}, facts or {}
    lines = [
        "penguin_pipeline: done.",
        f"  warehouse   {describe_warehouse(settings)}  (tables raw_penguins, penguins, "
        "penguin_summary, rejected_penguins, model_metrics, feature_drift)",
        f"  model pin   penguin_model champion {facts.get('version')} "
        f"on board {settings.board_url}",
        f"              R^2 {facts.get('r2')}, RMSE {facts.get('rmse')} g, "
        f"rows used {facts.get('rows_used')}, "
        f"data snapshot {facts.get('data_snapshot')}",
        f"  decision    {decision.get('reason', 'none yet')}",
        f"  report      {settings.report_url}",
        f"  landing     {settings.landing_url}  (drop new LTER files here)",
    ]
    if log_path is not None:
        lines.append(f"  run log     {log_path}  (Dagster's event log of this run)")
    lines += [
        "  UI          make dev, then http://127.0.0.1:3000  (assets, runs, the landing sensor)",
        "  API         make serve, then http://127.0.0.1:8080/docs  "
        "(predictions from the champion; GET /model-card)",
    ]
    return "\n".join(lines)


def new_season(rows: int, seed: int | None, settings=None) -> str:
    """Land the next field season: the year after the newest season-YYYY file (2010 after the
    shipped data)."""
    import re

    from . import synth

    settings = settings or load_settings()
    zone = landing_zone(settings)
    years = [int(m.group(1)) for f in zone.files() if (m := re.search(r"season-(\d{4})", f.name))]
    year = max(years, default=2009) + 1
    name = f"season-{year}.csv"
    zone.land(
        name,
        synth.season_csv(synth.shipped_profile(), rows, year, seed if seed is not None else year),
    )
    return f"{zone.url}/{name}"


def synth_landing(
    rows: int, fmt: str, seasons: int | None, seed: int, directory: str | None = None, settings=None
) -> list:
    """Write `rows` synthetic birds as season x island landing files into a landing folder."""
    from pathlib import Path

    from . import synth

    settings = settings or load_settings()
    target = Path(directory or settings.landing_url)
    if "://" in str(directory or settings.landing_url):
        raise SystemExit(
            "synth writes to a folder; pass --to DIR and upload the files for an S3 landing zone"
        )
    return synth.write_landing_files(
        synth.shipped_profile(),
        rows,
        target,
        fmt=fmt,
        seasons=seasons,
        seed=seed,
        memory_limit=settings.duckdb_memory_limit,
        threads=settings.duckdb_threads,
        progress=lambda path, n: print(f"  {path.name}: {n} rows", flush=True),
    )


def main(argv: list[str] | None = None) -> int:
    try:
        return _command(argv)
    # wrong bucket, endpoint or credentials; lake catalog, data path or extension: one line
    except (s3.S3StorageError, warehouse.WarehouseUnavailable) as exc:
        print(f"penguin_pipeline: {exc}", file=sys.stderr)
        return 1  # like a failed run; 2 means "ran, but some landing files were quarantined"


def _command(argv: list[str] | None) -> int:
    parser = argparse.ArgumentParser(prog="penguin-pipeline")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="materialize the whole asset graph once on the configured storage")
    sub.add_parser(
        "seed",
        help="land the packaged LTER file if the landing zone is empty (first use), and "
        "register every landing file as a raw_penguins partition",
    )
    new_data = sub.add_parser(
        "new-data", help="land a synthetic next field season in the landing zone"
    )
    new_data.add_argument("--rows", type=int, default=150)
    new_data.add_argument("--seed", type=int, default=None)
    synth_cmd = sub.add_parser(
        "synth", help="write N synthetic penguin rows as season x island landing files"
    )
    synth_cmd.add_argument(
        "--rows", "-n", type=float, default=1e6, help="number of rows, e.g. 1e8 (default 1e6)"
    )
    synth_cmd.add_argument("--format", choices=["parquet", "csv"], default="parquet")
    synth_cmd.add_argument(
        "--seasons", type=int, default=None, help="default: one per 3 million rows, at least 3"
    )
    synth_cmd.add_argument("--seed", type=int, default=42)
    synth_cmd.add_argument(
        "--to", default=None, help="folder to write (default: the landing folder)"
    )
    sub.add_parser(
        "lake-maintain",
        help="the lake's retention: expire snapshots older than PENGUIN_LAKE_KEEP, merge small "
        "files, delete unreferenced ones",
    )
    args = parser.parse_args(argv)
    if args.command == "synth":
        written = synth_landing(int(args.rows), args.format, args.seasons, args.seed, args.to)
        print(f"wrote {int(args.rows)} rows in {len(written)} landing files")
    if args.command == "lake-maintain":
        done = maintain_lake(load_settings())
        print("lake-maintain: " + ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in done.items()))
    if args.command == "new-data":
        print(
            f"landed {new_season(args.rows, args.seed)}: "
            "the landing sensor picks it up within its interval"
        )
    if args.command == "seed":
        settings = load_settings()
        check_storage(settings)
        zone = landing_zone(settings)
        seeded = landing.seed_if_empty(zone)
        print(
            f"landing {settings.landing_url}: "
            + ("seeded with the packaged LTER file" if seeded else "not empty")
        )
        # Before the UI starts (make dev): "Materialize all" then offers every file at once, with no
        # wait for a sensor's first tick. The sensors register files that land later.
        with dg.DagsterInstance.get() as instance:
            new = register_new_partitions(instance, [f.name for f in zone.files()])
            known = len(instance.get_dynamic_partitions(landing_files.name))
        print(f"raw_penguins partitions: {len(new)} new, {known} in all")
    if args.command == "run":
        settings = load_settings()
        check_storage(
            settings
        )  # a wrong bucket, endpoint or credential: one line, before anything runs
        with run_log(settings) as log:
            log_path = Path(log.baseFilename)
            print(f"penguin_pipeline: running penguin_job (log: {log_path})", flush=True)
            write_history_without_flushes()
            with dg.DagsterInstance.get() as instance:
                result = run_pipeline(instance, log=log)
        if not result.success:
            print(
                "penguin_pipeline: the run failed:\n  "
                + "\n  ".join(failure_messages(result))
                + f"\n  whole log: {log_path}",
                file=sys.stderr,
            )
            return 1
        print(describe_outputs(log_path))
        quarantined = quarantined_files(result)
        if quarantined:
            # The good files loaded and everything downstream refreshed; a script must still notice.
            print(describe_quarantined(quarantined), file=sys.stderr)
            return 2
    return 0


def console() -> None:
    """The `penguin-pipeline` command: main(), then end the process without interpreter teardown.

    The teardown would only free, one by one, what the imports built (Dagster, pandas, sklearn):
    a fifth of a first run's time (README, "Where a first run's time goes"). Every file, connection
    and instance is closed by then, so flush logging and the streams, and exit.
    """
    code = main()
    logging.shutdown()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)


if __name__ == "__main__":
    console()
