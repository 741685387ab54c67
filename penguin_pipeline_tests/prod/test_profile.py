"""The production profile (PostgreSQL instance, run queue, steps on Celery workers) on the real
services: a run on the workers, the broker down, a worker killed mid-step, five runs at once."""

from __future__ import annotations

import io
import os
import shutil
import signal
import sys
from pathlib import Path

import dagster as dg
import duckdb
import psutil
import pytest

from penguin_pipeline import prod, synth
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..conftest import LTER_FILE, PIPELINE_ASSETS
from ..processes import (
    alive,
    free_port,
    group_alive,
    most_at_once,
    run_step_spans,
    wait_for,
)
from .conftest import ConnectionSampler, finished_runs

pytestmark = [pytest.mark.integration, pytest.mark.prod]

STEPS = set(PIPELINE_ASSETS)


def run_process_pid(instance, run_id: str) -> int:
    [event] = [
        e
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if e.message.startswith("Started process for run")
    ]
    return int(event.dagster_event.engine_event_data.metadata["pid"].value)


def step_workers(instance, run_id: str) -> dict[str, str]:
    """Step key -> the Celery worker that executed it (dagster-celery's engine event)."""
    return {
        e.step_key: e.dagster_event.engine_event_data.metadata["Celery worker"].value
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        if "Celery worker" in e.dagster_event.engine_event_data.metadata
    }


def run_text(instance, run_id: str) -> str:
    """Every message and error of the run's event log, as one text."""
    parts = []
    for entry in instance.all_logs(run_id):
        parts.append(entry.message or "")
        data = entry.dagster_event and entry.dagster_event.event_specific_data
        error = getattr(data, "error", None)
        while error is not None:
            parts.append(error.to_string())
            error = error.cause
    return "\n".join(parts)


def slots_freed(instance) -> None:
    """The daemon frees a finished run's pool slots (free_slots_after_run_end_seconds)."""
    wait_for(
        lambda: not instance.event_log_storage.get_concurrency_run_ids(),
        timeout=60,
        what="every pool slot freed",
    )


def rows_found_by_load(instance, run_id: str) -> tuple[int, int]:
    """(rows raw_penguins held when the run's load began, rows it loaded), from the run's recorded
    materialization: the warehouse as the next writer saw it, read with no lock on the file."""
    [event] = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)[:1]
    materialization = event.dagster_event.event_specific_data.materialization
    assert materialization.asset_key == dg.AssetKey("raw_penguins")
    meta = materialization.metadata
    loaded = meta["rows_loaded"].value
    return meta["dagster/row_count"].value - loaded, loaded


def warehouse(data: Path, sql: str):
    with duckdb.connect(str(data / "penguins.duckdb"), read_only=True) as con:
        return con.execute(sql).fetchall()


def test_the_broker_down_at_launch_fails_the_run_naming_it(deployment):
    """The daemon launches the run with the broker URL at a closed port: the run fails at its first
    step's submission, naming the broker; run retries fail the same way; nothing is written."""
    closed = f"amqp://127.0.0.1:{free_port()}//"
    env = {**deployment.env, "PENGUIN_CELERY_BROKER": closed}
    settings = load_settings(env)
    landed = shutil.copyfile(LTER_FILE, deployment.landing / "penguins-raw.csv")
    prod.link_instance(settings)
    process_env = prod.process_env(settings, env)
    prod.init_instance(settings, process_env)
    prod.start_supervisor(settings, {"daemon": prod.daemon_command()}, process_env)

    with deployment.instance() as instance:
        runs = finished_runs(instance, 3, timeout=240)  # the run and its two retries
        assert len(runs) == 3 and not any(r.is_success for r in runs), deployment.logs()
        for run in runs:
            text = run_text(instance, run.run_id)
            assert f"the Celery broker (RabbitMQ) at {closed} does not answer" in text, text[-3000:]
            assert not instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
        slots_freed(instance)
    assert landed.exists() and not (deployment.data / "quarantine").exists()
    database = deployment.data / "penguins.duckdb"
    if database.exists():  # resources may have created it empty; no table may hold a row
        tables = warehouse(deployment.data, "SELECT table_name FROM information_schema.tables")
        for (table,) in tables:
            assert warehouse(deployment.data, f"SELECT count(*) FROM {table}") == [(0,)]
    assert not (deployment.data / "board").exists() or not boards.board_from_url(
        str(deployment.data / "board")
    ).pin_exists(boards.MODEL_PIN)


def start_with_stalling_workers(deployment, tmp_path) -> int:
    """Land the shipped file and start the daemon with workers that stall inside raw_penguins
    (a file's rows inserted, uncommitted); returns the pid of the process that stalled."""
    mark = tmp_path / "stalled.pid"
    deployment.env["PENGUIN_TEST_STALL_MARK"] = str(mark)
    stalling = {
        name: [sys.executable, "-m", "penguin_pipeline_tests.prod.stalling_worker", *argv[1:]]
        for name, argv in prod.commands(deployment.settings).items()
        if name.startswith("worker-")
    }
    shutil.copyfile(LTER_FILE, deployment.landing / "penguins-raw.csv")
    deployment.up({**stalling, "daemon": prod.daemon_command()})
    return int(wait_for(lambda: mark.exists() and mark.read_text(), timeout=240))


def test_a_worker_killed_mid_step_fails_the_run_and_a_retry_finishes_it(deployment, tmp_path):
    """SIGKILL to the worker (its main and pool process) while raw_penguins has inserted a file's
    rows, uncommitted: the run fails within the heartbeat bound instead of waiting forever,
    supervisord starts the killed worker again, run retries re-run the run on the workers (never
    in a killed process), and every row is there exactly once."""
    stalled_pid = start_with_stalling_workers(deployment, tmp_path)
    killed = os.getpgid(stalled_pid)  # the worker's process group: its main and pool process
    killed_pids = {p.pid for p in psutil.process_iter() if _group_of(p.pid) == killed}
    [killed_name] = [p.name for p in prod.programs(deployment.settings) if p.pid == killed]
    os.killpg(killed, signal.SIGKILL)
    killed_node = prod.worker_name(deployment.settings, killed_name.removeprefix("worker-"))

    with deployment.instance() as instance:
        runs = finished_runs(instance, 2, timeout=300)
        failed = [r for r in runs if r.status == dg.DagsterRunStatus.FAILURE]
        assert len(failed) >= 1, deployment.logs()
        first = failed[0]
        text = run_text(instance, first.run_id)
        assert f"its Celery worker {killed_node}" in text and "stopped reporting" in text, text[
            -3000:
        ]
        retries = [r for r in runs if r.tags.get("dagster/parent_run_id") == first.run_id]
        assert [r.status for r in retries] == [dg.DagsterRunStatus.SUCCESS], deployment.logs()
        assert set(step_workers(instance, retries[0].run_id)) == STEPS
        assert set(step_workers(instance, retries[0].run_id).values()) <= (
            deployment.worker_names()
        )
        starts = instance.all_logs(retries[0].run_id, of_type=dg.DagsterEventType.STEP_START)
        assert not {e.dagster_event.pid for e in starts} & killed_pids
        # In between, the warehouse kept its last good state (empty): the killed step's inserted
        # rows never committed, so the retry found none and loaded the whole file itself.
        assert rows_found_by_load(instance, retries[0].run_id) == (0, 344)
        slots_freed(instance)
    [restarted] = [p for p in prod.programs(deployment.settings) if p.name == killed_name]
    assert restarted.state == "RUNNING" and restarted.pid not in killed_pids, restarted
    per_file = warehouse(
        deployment.data, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1"
    )
    assert per_file == [("penguins-raw.csv", 344)]
    assert warehouse(
        deployment.data,
        "SELECT count(*) - count(DISTINCT (source_file, source_line)) FROM raw_penguins",
    ) == [(0,)]
    assert warehouse(deployment.data, "SELECT count(*) FROM penguins") == [(344,)]
    assert warehouse(
        deployment.data, "SELECT source_file, rows_loaded FROM landed_files ORDER BY 1"
    ) == [("penguins-raw.csv", 344)]


def _group_of(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_a_step_whose_run_died_stops_and_the_retry_writes_alone(deployment, tmp_path):
    """SIGKILL to the run's own process while its raw_penguins step, on a worker, has inserted a
    file's rows, uncommitted: run monitoring fails the run, the worker stops that step (else it
    would write beside the retry, outside the pool), the retry loads every row once."""
    stalled_pid = start_with_stalling_workers(deployment, tmp_path)
    with deployment.instance() as instance:
        [run] = instance.get_runs()
        os.kill(run_process_pid(instance, run.run_id), signal.SIGKILL)
        wait_for(lambda: not alive(stalled_pid), timeout=120, what="the orphaned step stopped")
        runs = finished_runs(instance, 2, timeout=300)
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        retries = [r for r in runs if r.tags.get("dagster/parent_run_id") == run.run_id]
        assert [r.status for r in retries] == [dg.DagsterRunStatus.SUCCESS], deployment.logs()
        slots_freed(instance)
    assert f"run {run.run_id} ended (FAILURE) while its step executed" in deployment.logs(400)
    assert warehouse(deployment.data, "SELECT count(*) FROM raw_penguins") == [(344,)]
    assert warehouse(
        deployment.data,
        "SELECT count(*) - count(DISTINCT (source_file, source_line)) FROM raw_penguins",
    ) == [(0,)]
    assert warehouse(deployment.data, "SELECT source_file, rows_loaded FROM landed_files") == [
        ("penguins-raw.csv", 344)
    ]


@pytest.mark.timeout(600)
def test_five_runs_at_once_run_every_step_on_the_workers_within_the_limits(deployment):
    """`prod.up` (webserver, daemon, two workers), then five landing files at once: five runs, all
    succeed, never more than the instance's four at once; every step executed by a worker, never
    in the run's own process; no two warehouse steps ever overlap (each step's start and end from
    the event log); the instance stays within 40 Postgres connections (pg_stat_activity, sampled
    throughout); `prod.status` says every service answers; `prod.down` leaves no process."""
    profile = synth.shipped_profile()
    seasons = range(2010, 2015)  # `make bench-prod` lands eight
    for year in seasons:
        csv = synth.season_csv(profile, rows=150, year=year, seed=year)
        (deployment.landing / f"season-{year}.csv").write_bytes(csv)

    with ConnectionSampler(deployment.settings.pg_url) as sampler:
        deployment.up()
        with deployment.instance() as instance:
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            runs = finished_runs(instance, len(seasons), timeout=540)
            spans = []
            for run in runs:
                assert run.is_success, run_text(instance, run.run_id)[-3000:]
                steps = run_step_spans(instance, run.run_id)
                assert set(steps) == STEPS
                spans += [(start, end, run.run_id[:8], key) for key, (start, end) in steps.items()]
                workers = step_workers(instance, run.run_id)
                assert set(workers) == STEPS
                assert set(workers.values()) <= deployment.worker_names()
                starts = instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
                assert run_process_pid(instance, run.run_id) not in {
                    e.dagster_event.pid for e in starts
                }
            records = instance.get_run_records()
            assert most_at_once([(r.start_time, r.end_time) for r in records]) <= 4
    assert len(runs) == len(seasons)
    spans.sort()
    for (_, end, run_a, step_a), (start, _, run_b, step_b) in zip(spans, spans[1:], strict=False):
        assert end <= start, f"{run_a} {step_a} overlaps {run_b} {step_b} in pool duckdb"
    assert sampler.samples and max(sampler.samples) <= 40, max(sampler.samples)
    print(f"peak Postgres connections: {max(sampler.samples)} ({len(sampler.samples)} samples)")

    loaded = warehouse(
        deployment.data, "SELECT source_file, count(*) FROM raw_penguins GROUP BY 1 ORDER BY 1"
    )
    assert loaded == [(f"season-{year}.csv", 150) for year in seasons]
    assert warehouse(
        deployment.data,
        "SELECT count(*) - count(DISTINCT (source_file, source_line)) FROM raw_penguins",
    ) == [(0,)]
    assert boards.latest_model_facts(boards.board_from_url(str(deployment.data / "board")))
    assert (deployment.data / "reports" / "penguin_report.html").exists()

    out = io.StringIO()
    assert prod.status(deployment.settings, out, base_env=deployment.env) == 0, out.getvalue()
    report = out.getvalue()
    [host] = [line for line in report.splitlines() if line.startswith("  host ")]
    assert host.endswith("(this one): workers worker-1, worker-2"), report
    processes = [line for line in report.splitlines() if not line.startswith("  host ")]
    for name in ("PostgreSQL", "RabbitMQ", "Redis", "worker-1", "worker-2", "daemon", "webserver"):
        [line] = [line for line in processes if name in line]
        assert line.rstrip().endswith("answers"), report
    assert deployment.settings.celery_queue in report

    groups = [p.pid for p in prod.programs(deployment.settings)]
    assert len(groups) == 4 and all(groups)
    prod.down(deployment.settings, io.StringIO())
    assert not [g for g in groups if group_alive(g)]
    assert not prod.programs(deployment.settings)
