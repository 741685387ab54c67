"""The penguin asset graph: raw_penguins -> penguins -> penguin_summary / penguin_model ->
penguin_report.

Each asset gets its resources, calls processing functions and records metadata; nothing more.
Every step that opens the DuckDB file runs in the `duckdb` pool (limit 1, dagster.yaml), because
DuckDB allows a single writing process per file. On a DuckLake (PENGUIN_WAREHOUSE) the steps claim
no pool: the lake takes concurrent writers, and ingest and rebuild settle their races themselves.
"""

import getpass
import socket
import warnings
from datetime import UTC, datetime

import dagster as dg

from ..processing import cleaning, modeling, monitoring, summary, tables
from ..processing.ingest import FileLoadFailed, LandingInput, UnbalancedAccount, ingest_in_batches
from ..report.render import fingerprint, load_report_inputs, publish_if_changed
from ..settings import REPORT_FILE_NAME, load_settings
from ..storage import boards
from ..storage.warehouse import current_snapshot, table_at
from .resources import LandingZone, Monitoring, PinsBoard, Reports, TrainingSample, Warehouse

# Read when the definitions are imported: a step's pool is part of its definition.
WAREHOUSE_POOL = None if load_settings().warehouse else "duckdb"
ROW_DROP_TAG = "penguin/row_drop_reason"
# Dagster's code version of every asset: bump it when a change to processing/ changes what an asset
# writes, and the UI marks everything downstream stale. The model and report also report data
# versions (training data snapshot, report fingerprint), so the UI's lineage shows when they
# changed.
CODE_VERSION = "2026.11"
QUARANTINED = (
    "quarantined_files"  # metadata: the run's unreadable landing files, their problem and new place
)

landing_files = dg.DynamicPartitionsDefinition(name="landing_files")

# BackfillPolicy.single_run() is what makes a backfill over hundreds of landing files one run. It is
# a beta parameter in Dagster 1.x, chosen on purpose; don't repeat its warning on every load.
warnings.filterwarnings("ignore", message="Parameter `backfill_policy`", category=dg.BetaWarning)


class RawConfig(dg.Config):
    force: bool = False  # re-ingest files whose content the ledger already holds


class ModelConfig(dg.Config):
    r2_floor: float = 0.8
    sample_rows: int = 0  # 0 = PENGUIN_SAMPLE_ROWS (default 100000)
    retrain_unchanged: bool = False  # fit and pin even when the training data is the same


@dg.asset(
    group_name="raw",
    code_version=CODE_VERSION,
    kinds={"duckdb", "csv"},
    metadata={"stored_in": "DuckDB table raw_penguins (+ rejected_penguins, landed_files)"},
    partitions_def=landing_files,
    backfill_policy=dg.BackfillPolicy.single_run(),
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "rows_accounted",
            asset="raw_penguins",
            blocking=True,
            description="rows read = rows loaded + rejected + duplicates dropped",
        ),
        dg.AssetCheckSpec(
            "landing_files_readable",
            asset="raw_penguins",
            description="every landing file of the run could be read; an unreadable "
            "one is moved to quarantine with its reason, the others load",
        ),
    ],
)
def raw_penguins(
    context: dg.AssetExecutionContext, config: RawConfig, warehouse: Warehouse, landing: LandingZone
):
    """Each landing file's rows in the raw LTER layout with source file and line; bad rows go to
    the rejects."""
    zone = landing.landing()
    present = {f.name: f for f in zone.files()}
    wanted = [present[key] for key in context.partition_keys if key in present]
    gone = [key for key in context.partition_keys if key not in present]
    files = [LandingInput(None, f.name, f.content_hash) for f in wanted]
    try:
        with warehouse.file_claims() as claim:
            load, total = ingest_in_batches(
                warehouse.get_connection,
                files,
                warehouse.on_lake,
                config.force,
                zone.local_copy,
                claim,
                warehouse.files_at_once,
            )
    except FileLoadFailed as exc:
        if isinstance(exc.cause, UnbalancedAccount):
            yield dg.AssetCheckResult(
                check_name="rows_accounted",
                passed=False,
                metadata={"file": exc.cause.account.as_metadata()},
            )
        raise dg.Failure(description=f"{exc}. A re-run skips them by content hash.") from None
    quarantined = [
        {
            "file": exc.source_file,
            "problem": exc.problem,
            "moved_to": zone.quarantine(exc.source_file, str(exc)),
        }
        for exc in load.unreadable
    ]
    accounts = load.accounts
    # Each file's account goes on its own partition's materialization: metadata for the whole run
    # is copied onto every partition's (1000 files listed on each of 1000 partitions: 41 s).
    for account in accounts:
        file = dg.MetadataValue.json(account.as_metadata())
        context.add_asset_metadata({"file": file}, partition_key=account.source_file)
    yield dg.AssetCheckResult(check_name="rows_accounted", passed=True)
    yield dg.AssetCheckResult(
        check_name="landing_files_readable",
        passed=not quarantined,
        severity=dg.AssetCheckSeverity.WARN,
        metadata={QUARANTINED: dg.MetadataValue.json(quarantined)},
    )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": total,
            "files_in_run": len(accounts),
            "rows_loaded": sum(a.rows_loaded for a in accounts),
            "rows_rejected": sum(a.rows_rejected for a in accounts),
            "duplicates_dropped": sum(a.duplicates_dropped for a in accounts),
            QUARANTINED: dg.MetadataValue.json(quarantined),
            "seconds": dg.MetadataValue.json(
                {
                    step: round(sum(a.seconds.get(step, 0) for a in accounts), 2)
                    for step in ("stage", "publish")
                }
            ),
            "gone_from_landing_rows_kept": gone,
        }
    )


@dg.asset(
    deps=[raw_penguins],
    group_name="clean",
    code_version=CODE_VERSION,
    kinds={"duckdb"},
    metadata={"stored_in": "DuckDB table penguins"},
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(name, asset="penguins", blocking=True) for name in cleaning.CLEAN_CHECKS
    ],
)
def penguins(context: dg.AssetExecutionContext, warehouse: Warehouse):
    """The clean penguins: palmerpenguins' columns and values, built by SQL inside DuckDB."""
    with warehouse.get_connection() as con:
        outcome = cleaning.rebuild_clean_table(con, context.run.tags.get(ROW_DROP_TAG))
    for name, failures in outcome.failures.items():
        yield dg.AssetCheckResult(
            check_name=name, passed=not failures, metadata={"failures": failures}
        )
    if not outcome.published:
        problems = "; ".join(f for fs in outcome.failures.values() for f in fs)
        raise dg.Failure(
            description=f"penguins not published, the last good table is kept: {problems}"
        )
    yield dg.MaterializeResult(
        metadata={
            "dagster/row_count": outcome.row_count,
            "previous_row_count": outcome.previous_row_count,
        }
    )


@dg.asset(
    deps=[penguins],
    group_name="clean",
    kinds={"duckdb"},
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
    metadata={
        "stored_in": f"DuckDB table penguin_summary; pin {boards.SUMMARY_PIN} (species x sex)"
    },
)
def penguin_summary(warehouse: Warehouse, board: PinsBoard) -> dg.MaterializeResult:
    """Pre-calculated lookup: species x island x sex x year, counts and means of each measure;
    its species x sex grain also pinned, for the API (and so the model explorer) to serve."""
    with warehouse.get_connection() as con:
        rows = summary.build_summary_table(con, tables.CLEAN, tables.SUMMARY)
        table = con.execute(f"SELECT * FROM {tables.SUMMARY}").df()
    version = boards.pin_summary(board.board(), summary.by_species_and_sex(table))
    return dg.MaterializeResult(
        metadata={"dagster/row_count": rows, "pinned_version": version or "unchanged"}
    )


@dg.asset(
    deps=[penguins],
    group_name="model",
    code_version=CODE_VERSION,
    kinds={"duckdb", "pins"},
    metadata={
        "stored_in": f"DuckDB tables {tables.METRICS}, {tables.DRIFT}; pin {boards.METRICS_PIN}"
    },
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "input_drift",
            asset="model_monitoring",
            description="each feature's PSI against the champion's training data, per later "
            "season: warns above PENGUIN_DRIFT_WARN; fails (error) above PENGUIN_DRIFT_BLOCK, "
            "which keeps any challenger from being promoted",
        )
    ],
)
def model_monitoring(warehouse: Warehouse, board: PinsBoard, monitoring_settings: Monitoring):
    """The champion scored on every field season after its training data (metrics overall and
    per species), and those seasons' input drift, before a new season trains anything."""
    pins_board = board.board()
    _, facts = boards.champion(pins_board)
    warn, block = monitoring_settings.drift_warn, monitoring_settings.drift_block
    with warehouse.get_connection() as con:
        monitored = monitoring.monitor_champion(con, tables.CLEAN, facts, warn, block)
        pinned = monitoring.metrics_for_pin(con, monitored.seasons)
    boards.pin_season_metrics(pins_board, pinned)
    yield _drift_check(monitored.drift, warn, block)
    yield dg.MaterializeResult(
        metadata={
            "champion": monitored.model_version or "none",
            "seasons_scored": monitored.seasons,
            "note": monitored.note,
            "metrics": dg.MetadataValue.json(_overall(monitored.metrics)),
        }
    )


def _drift_check(drift, warn: float, block: float) -> dg.AssetCheckResult:
    blocking = monitoring.drift_findings(drift, "block")
    warning = monitoring.drift_findings(drift, "warn")
    severity = dg.AssetCheckSeverity.ERROR if blocking else dg.AssetCheckSeverity.WARN
    return dg.AssetCheckResult(
        check_name="input_drift",
        passed=not (blocking or warning),
        severity=severity,
        metadata={
            "statistic": "population stability index (PSI)",
            "warn_above": warn,
            "block_above": block,
            "blocking": blocking,
            "warning": warning,
            "psi": dg.MetadataValue.json(drift[["season", "feature", "value"]].to_dict("records")),
        },
    )


def _overall(metrics) -> list[dict]:
    overall = metrics[metrics["species"] == monitoring.ALL_SPECIES]
    return overall[["season", "metric", "estimate", "n_rows"]].to_dict("records")


@dg.asset(
    deps=[penguins, model_monitoring],
    group_name="model",
    code_version=CODE_VERSION,
    kinds={"scikitlearn", "pins"},
    metadata={"stored_in": "pins board, pin penguin_model (vetiver)"},
    pool=WAREHOUSE_POOL,
    check_specs=[
        dg.AssetCheckSpec(
            "r2_floor",
            asset="penguin_model",
            blocking=True,
            description="R^2 on the training rows is at least the floor (run config r2_floor, "
            "default 0.8); below it the version is not pinned",
        ),
        dg.AssetCheckSpec(
            "sample_matches_all_rows",
            asset="penguin_model",
            description="the sample-trained model's held-out RMSE is within 1% of the "
            "all-rows model's",
        ),
    ],
)
def penguin_model(
    context: dg.AssetExecutionContext,
    config: ModelConfig,
    warehouse: Warehouse,
    board: PinsBoard,
    training_sample: TrainingSample,
    monitoring_settings: Monitoring,
):
    """The book's body-mass regression on a stratified sample of every season but the newest
    season's held-out rows, versioned with vetiver and pinned as penguin_model (a challenger)."""
    with warehouse.get_connection() as con:
        # On the lake every read of the training rows names one snapshot, kept in the pin's
        # metadata: the rows a version was trained on can be read back after later loads.
        snapshot = current_snapshot(con)
        clean = table_at(tables.CLEAN, snapshot)
        share, seed = monitoring_settings.holdout_share, training_sample.seed
        census = monitoring.season_census(con, clean)
        holdout = monitoring.newest_season_holdout(census, share, seed)
        if holdout is None:
            raise dg.Failure(description=modeling.NO_COMPLETE_ROWS)
        held = monitoring.mark_held_out(con, clean, holdout)
        sample = modeling.draw_training_sample(
            con,
            clean,
            config.sample_rows or training_sample.rows,
            training_sample.seed,
            exclude=held,
        )
        frame = sample.frame
        pins_board = board.board()
        latest = boards.latest_model_facts(pins_board)
        if _same_data(latest, frame, config):
            yield _r2_check(latest["r2"], config.r2_floor)
            yield _sample_check(latest.get("sample_vs_all_rows", {}))
            yield _reused(latest)
            return
        fitted = modeling.fit_model(frame)
        fitted.warehouse_snapshot = snapshot
        fitted.sample_vs_all_rows = modeling.compare_sample_with_all_rows(sample, fitted)
        fitted.monitoring = monitoring.training_facts(
            con, clean, holdout, held, census, fitted.predictor, frame, _trained_by(context)
        )
    yield _sample_check(fitted.sample_vs_all_rows)
    failures = modeling.r2_below_floor(fitted.r2, config.r2_floor)
    yield _r2_check(fitted.r2, config.r2_floor)
    if failures:
        kept = latest["version"] if latest else "none"
        raise dg.Failure(
            description=f"penguin_model not pinned ({failures[0]}); latest version stays {kept}"
        )
    # Another run fitting the same data (the lake: no pool serialises them) may have pinned it
    # while this one fitted: its version is this one's. Re-read and pin under one lock, so that
    # two runs never both find nothing and both pin.
    with warehouse.one_at_a_time(f"pin/{boards.MODEL_PIN}"):
        pinned_meanwhile = boards.latest_model_facts(pins_board)
        version = None
        if not _same_data(pinned_meanwhile, frame, config):
            model = modeling.to_vetiver(fitted, boards.MODEL_PIN)
            version = boards.write_vetiver_pin(pins_board, model)
    if version is None:
        context.log.info(
            f"{boards.MODEL_PIN} version {pinned_meanwhile['version']} was pinned by another run "
            "for the same data while this one fitted: taking it, pinning no other"
        )
        yield _reused(pinned_meanwhile)
        return
    context.log.info(f"pinned {boards.MODEL_PIN} version {version}")
    yield dg.MaterializeResult(
        metadata=_model_metadata({"version": version, **fitted.summary()}, pinned=True),
        data_version=dg.DataVersion(fitted.data_snapshot),
    )


def _same_data(pinned: dict | None, frame, config: ModelConfig) -> bool:
    """A pinned version trained on exactly this data is this run's model, unless retraining on
    unchanged data was asked for."""
    return not config.retrain_unchanged and modeling.trained_on_same_data(pinned, frame)


def _reused(latest: dict) -> dg.MaterializeResult:
    """The model version already pinned for this training data, materialized again."""
    return dg.MaterializeResult(
        metadata=_model_metadata(latest, pinned=False),
        data_version=dg.DataVersion(latest["data_snapshot"]),
    )


def _r2_check(r2: float, floor: float) -> dg.AssetCheckResult:
    """The same check whether the version was fitted now or reused: R^2 rounded as the pin
    records it (6 decimals), and the floor it was held to."""
    return dg.AssetCheckResult(
        check_name="r2_floor",
        passed=not modeling.r2_below_floor(r2, floor),
        metadata={"r2": round(r2, 6), "floor": floor},
    )


def _trained_by(context: dg.AssetExecutionContext) -> str:
    return (
        f"penguin_pipeline, Dagster run {context.run.run_id} "
        f"({getpass.getuser()}@{socket.gethostname()})"
    )


def _sample_check(comparison: dict) -> dg.AssetCheckResult:
    failures = modeling.sample_worse_than_all_rows(comparison)
    return dg.AssetCheckResult(
        check_name="sample_matches_all_rows",
        passed=not failures,
        metadata={"comparison": dg.MetadataValue.json(comparison), "failures": failures},
    )


def _model_metadata(facts: dict, pinned: bool) -> dict:
    return {
        "version": facts["version"],
        "newly_pinned": pinned,
        "r2": facts["r2"],
        "rmse": facts["rmse"],
        "rows_used": facts["rows_used"],
        "data_snapshot": facts["data_snapshot"],
        "warehouse_snapshot": facts.get("warehouse_snapshot"),
        "coefficients": dg.MetadataValue.json(facts["coefficients"]),
        "sample_vs_all_rows": dg.MetadataValue.json(facts.get("sample_vs_all_rows", {})),
    }


@dg.asset(
    deps=[penguin_model, model_monitoring],
    group_name="model",
    code_version=CODE_VERSION,
    kinds={"pins"},
    metadata={"stored_in": f"pins board, pin {boards.CHAMPION_PIN} (one version per decision)"},
    pool=WAREHOUSE_POOL,
)
def penguin_champion(warehouse: Warehouse, board: PinsBoard, monitoring_settings: Monitoring):
    """The newest model version (the challenger) against the champion on the newest season's
    held-out rows: promoted when not worse beyond the tolerance and no feature drifted above the
    blocking threshold; otherwise the champion stays. The API serves the champion."""
    pins_board = board.board()
    challenger = boards.latest_model_facts(pins_board)
    if challenger is None:
        raise dg.Failure(description=f"no {boards.MODEL_PIN} version on the board to decide on")
    previous = boards.latest_decision(pins_board)
    if previous and previous.get("challenger") == challenger["version"]:
        return dg.MaterializeResult(metadata=_decision_metadata(previous, decided=False))
    champion = previous["champion"] if previous else None
    champion_facts = boards.model_facts(pins_board, champion) if champion else None
    with warehouse.get_connection() as con:
        decision = monitoring.challenge(
            con, tables.CLEAN, challenger, champion_facts, monitoring_settings.promotion_tolerance
        )
    record = {**decision.to_metadata(), "decided_at": datetime.now(UTC).isoformat()}
    boards.write_decision(pins_board, record)
    return dg.MaterializeResult(metadata=_decision_metadata(record, decided=True))


def _decision_metadata(decision: dict, decided: bool) -> dict:
    return {
        "champion": decision["champion"],
        "challenger": decision["challenger"],
        "promoted": decision["promoted"],
        "reason": decision["reason"],
        "figures": dg.MetadataValue.json(decision.get("figures") or {}),
        "newly_decided": decided,
    }


@dg.asset(
    deps=[penguin_summary, penguin_champion],
    group_name="report",
    kinds={"html"},
    pool=WAREHOUSE_POOL,
    code_version=CODE_VERSION,
    metadata={"stored_in": "reports/penguin_report.html"},
)
def penguin_report(
    warehouse: Warehouse, board: PinsBoard, reports: Reports
) -> dg.MaterializeResult:
    """A self-contained HTML report: EDA from the lookup table, the model's metrics, and data
    freshness."""
    pins_board = board.board()
    with warehouse.get_connection() as con:
        inputs = load_report_inputs(con, pins_board)
    where = reports.location()
    rerendered = publish_if_changed(inputs, where, pins_board)
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(where.url_of(where.path(REPORT_FILE_NAME))),
            "model_version": inputs.model["version"],
            "rerendered": rerendered,
            "board_pin": boards.REPORT_PIN,
        },
        data_version=dg.DataVersion(fingerprint(inputs)),  # what the published report shows
    )


ALL_ASSETS = [
    raw_penguins,
    penguins,
    penguin_summary,
    model_monitoring,
    penguin_model,
    penguin_champion,
    penguin_report,
]
