"""The second host of `make prod-up HOSTS=2` dies as a machine does, mid-step, on the lake: the run
fails naming its worker, its retry waits for a worker and finishes on this host.

Its own file (not test_hosts.py): `make test` hands whole files to its workers, and the two long
tests on the lake in one file ran one after the other on one worker (~2 x 117 s)."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time

import dagster as dg
import psutil
import pytest

from penguin_pipeline import hosts, prod

from ..conftest import LTER_FILE
from ..processes import wait_for
from .test_hosts import (
    lake_on_s3,
    latest_row_counts,
    settled_with_success,
    step_started,
)
from .test_profile import run_text, step_workers

pytestmark = [pytest.mark.integration, pytest.mark.prod]


@pytest.mark.lake
@pytest.mark.timeout(600)
def test_the_second_host_killed_its_run_waits_for_a_worker_and_retries_on_the_first(two_hosts):
    """The second host dies as a machine does while raw_penguins executes there (this host's worker
    stopped): its link deleted, every process in its namespaces SIGKILLed, the namespaces gone, so
    supervisord cannot start its worker again. The run fails (its worker stopped reporting); its
    retry's step waits in the queue while no worker is left; this host's worker, started again,
    runs it to success; the lake holds the file's rows once; no run hangs."""
    deployment, _ = two_hosts
    with lake_on_s3(deployment) as client:
        settings = deployment.settings
        supervisor = prod.supervisor(settings).supervisor
        supervisor.stopProcess("worker-1")
        client.upload_file(str(LTER_FILE), hosts.BUCKET, "raw/penguins-raw.csv")
        with deployment.instance() as instance:
            wait_for(lambda: step_started(instance, "raw_penguins"), timeout=180, interval=0.2)
            killed = kill_host(hosts.second_host(settings))
            [first] = instance.get_runs()
            retry = wait_for(
                lambda: _retry_submitted(instance, first.run_id), timeout=120, what="a retry"
            )
            # No worker anywhere: the retry's step stays queued, the run neither fails nor ends.
            time.sleep(5)
            assert not instance.get_run_by_id(retry).is_finished
            assert not step_workers(instance, retry), step_workers(instance, retry)
            assert supervisor.startProcess("worker-1")
            runs = wait_for(
                lambda: settled_with_success(instance), timeout=300, what="a successful run"
            )
            texts = [f"{r.run_id[:8]} {r.status.value}" for r in runs]
            assert instance.get_run_by_id(first.run_id).status == dg.DagsterRunStatus.FAILURE
            text = run_text(instance, first.run_id)
            h2 = f"{settings.celery_queue}-h2-1@{hosts.second_host(settings).hostname}"
            assert f"its Celery worker {h2}" in text and "stopped reporting" in text, text[-3000:]
            [last] = [r for r in runs if r.is_success]
            here = f"{settings.celery_queue}-1@{socket.gethostname()}"
            assert set(step_workers(instance, last.run_id).values()) == {here}, texts
            starts = instance.all_logs(last.run_id, of_type=dg.DagsterEventType.STEP_START)
            assert not {e.dagster_event.pid for e in starts} & killed
            counts = latest_row_counts(instance)
        assert counts == {"raw_penguins": 344, "penguins": 344}, (counts, texts)
        states = {p.name: p.state for p in prod.programs(settings)}
        # A dead host stays dead: supervisord's attempts to start its worker fail (STARTING, seen
        # under load, between BACKOFFs) until it gives up (FATAL); never RUNNING again.
        assert states["worker-h2-1"] in ("STARTING", "BACKOFF", "FATAL"), states
        print("runs:", texts)
        prod.shutdown(settings)


def kill_host(host: hosts.Host) -> set[int]:
    """The second host dies as a machine does: its link deleted, then every process in its network
    namespace SIGKILLed (the namespaces' files removed first, so supervisord's restart of its
    worker finds no host to enter). Returns the pids killed."""
    netns = os.stat(f"/run/netns/{host.netns}")
    subprocess.run(["ip", "link", "del", host.outer_veth], check=True)
    hosts.destroy(host)
    killed: set[int] = set()

    def inside() -> list[int]:
        return [p for p in psutil.pids() if _netns(p) == (netns.st_dev, netns.st_ino)]

    def kill_all() -> bool:
        for pid in inside():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
                killed.add(pid)
        return not inside()

    wait_for(kill_all, timeout=30, interval=0.1, what="every process of the second host killed")
    assert killed, "no process ran on the second host"
    return killed


def _netns(pid: int) -> tuple[int, int] | None:
    try:
        found = os.stat(f"/proc/{pid}/ns/net")
    except OSError:
        return None
    return found.st_dev, found.st_ino


def _retry_submitted(instance, parent_id: str) -> str | None:
    """The retry of `parent_id` once it has sent a step to the queue."""
    for run in instance.get_runs():
        if run.tags.get("dagster/parent_run_id") == parent_id and any(
            "Submitting celery task" in (e.message or "")
            for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.ENGINE_EVENT)
        ):
            return run.run_id
    return None
