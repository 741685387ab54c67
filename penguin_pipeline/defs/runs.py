"""Runs whose process died: noticed, marked failed, and their pool slots freed.

A run killed from outside (SIGKILL, the out-of-memory killer, a reboot) never reports its end:
Dagster keeps it STARTED with its slot of the `duckdb` pool claimed, and every later run waits for
that slot forever. Each run records the host and process that execute it (`penguin/host` and the
pid from Dagster's own "Executing steps in process" event, or `penguin/pid` from the command line),
so a run whose process is gone can be told from one that is still working:

- `penguin-pipeline run` executes its run in its own process, where no daemon watches it: it calls
  `release_dead_runs` before it starts its own run, and says what it released;
- a run the daemon launched is watched by the code server that started its worker (it reports a
  worker that died); when that server is gone too (`make dev` killed as a whole), the daemon's run
  monitoring asks `LocalRunLauncher.check_run_worker_health` (dagster.yaml). Either way the
  run is marked failed, run retries re-run it, and the daemon frees its slots
  (`free_slots_after_run_end_seconds`).

Runs on another host are never judged: their process cannot be seen from here.
"""

from __future__ import annotations

import os
import socket
from dataclasses import dataclass

import dagster as dg
import psutil
from dagster._core.launcher import DefaultRunLauncher
from dagster._core.launcher.base import CheckRunHealthResult, WorkerStatus

HOST_TAG = "penguin/host"
PID_TAG = "penguin/pid"
# NOT_STARTED: the command line creates its run before reporting it started (a queued run has no
# process yet, so it is never judged).
UNFINISHED = [
    dg.DagsterRunStatus.NOT_STARTED,
    dg.DagsterRunStatus.STARTING,
    dg.DagsterRunStatus.STARTED,
    dg.DagsterRunStatus.CANCELING,
]
# A process that started after the run was created cannot be its worker (the pid was reused).
_CLOCK_SLACK_SECONDS = 1.0


def this_process_tags() -> dict[str, str]:
    """Tags for a run executed by this process (the command line's in-process runs)."""
    return {HOST_TAG: socket.gethostname(), PID_TAG: str(os.getpid())}


@dataclass(frozen=True)
class Worker:
    host: str
    pid: int
    since: float  # the run's process existed by then (epoch seconds)

    def is_alive(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            return (
                process.status() != psutil.STATUS_ZOMBIE
                and process.create_time() <= self.since + _CLOCK_SLACK_SECONDS
            )
        except psutil.NoSuchProcess:
            return False

    def is_local(self) -> bool:
        return self.host == socket.gethostname()


def run_worker(instance: dg.DagsterInstance, run: dg.DagsterRun) -> Worker | None:
    """The process executing `run`, or None where it is not known (yet)."""
    host = run.tags.get(HOST_TAG)
    if host is None:
        return None
    if PID_TAG in run.tags:
        record = instance.get_run_record_by_id(run.run_id)
        return Worker(host, int(run.tags[PID_TAG]), record.create_timestamp.timestamp())
    for entry in reversed(instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)):
        pid = entry.dagster_event.engine_event_data.metadata.get("pid")
        if pid is not None:
            return Worker(host, int(pid.value), entry.timestamp)
    return None


def release_dead_runs(instance: dg.DagsterInstance) -> list[str]:
    """Mark this host's unfinished runs whose process is gone as failed and free their pool slots.

    Returns one line per released run, for the person who started the new run.
    """
    released = []
    for record in instance.get_run_records(dg.RunsFilter(statuses=UNFINISHED)):
        run = record.dagster_run
        worker = run_worker(instance, run)
        if worker is None or not worker.is_local() or worker.is_alive():
            continue
        instance.report_run_failed(
            run,
            f"The process running this run (pid {worker.pid} on {worker.host}) "
            "ended without reporting; marked failed by penguin_pipeline.",
        )
        released.append(
            f"run {run.run_id[:8]} ({run.job_name}, pid {worker.pid}) had died without finishing: "
            f"marked it failed{_free_slots(instance, run.run_id)}"
        )
    for run_id in instance.event_log_storage.get_concurrency_run_ids():
        run = instance.get_run_by_id(run_id)
        if run is None or run.is_finished:
            _free_slots(instance, run_id)
    return released


def _free_slots(instance: dg.DagsterInstance, run_id: str) -> str:
    storage = instance.event_log_storage
    held = sorted(
        pool
        for pool in storage.get_concurrency_keys()
        if any(slot.run_id == run_id for slot in storage.get_concurrency_info(pool).claimed_slots)
    )
    storage.free_concurrency_slots_for_run(run_id)
    return f" and freed its slot in pool {', '.join(held)}" if held else ""


class LocalRunLauncher(DefaultRunLauncher):
    """Dagster's default launcher, plus the health check that lets run monitoring fail dead runs."""

    def launch_run(self, context) -> None:
        self._instance.add_run_tags(context.dagster_run.run_id, {HOST_TAG: socket.gethostname()})
        super().launch_run(context)

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        worker = run_worker(self._instance, run)
        if worker is None or not worker.is_local():
            return CheckRunHealthResult(
                WorkerStatus.UNKNOWN, "no local worker process recorded yet"
            )
        if worker.is_alive():
            return CheckRunHealthResult(WorkerStatus.RUNNING)
        return CheckRunHealthResult(WorkerStatus.FAILED, f"run worker process {worker.pid} is gone")
