"""The production profile's PostgreSQL restarted while runs are queued: the daemon, the webserver,
the run processes and the workers come through it, and every queued run runs once.

The restarted server is a PostgreSQL of the test's own (this machine's binaries, `initdb` into a
temp folder, its own port), not the machine's: `make test` runs test files side by side
(pytest-xdist), and the lake's and the other profile tests' databases, and any other checkout's
tests on this machine, live on the machine's server, which a restart would fail at random.
"""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from penguin_pipeline import prod
from penguin_pipeline.settings import load_settings

from ..processes import free_port, services_missing, wait_for
from .conftest import probe_workspace
from .test_hosts import launch, probe_processes
from .test_profile import run_text, step_workers

pytestmark = [pytest.mark.integration, pytest.mark.prod]

RUNS = 6  # two over the instance's four at once: they wait in the queue
# Longer than dagster-postgres' retries of a refused connection (5, ~6 s with their backoff): the
# daemon's loops see errors, a run process may fail.
OUTAGE_SECONDS = 15
START_TIMEOUT_SECONDS = 60


@dataclass
class OwnPostgres:
    """A PostgreSQL server of this test: its data folder, port, and how to stop and start it."""

    folder: Path
    port: int
    bin_dir: Path

    @property
    def url(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/penguin_pipeline"

    def pg_ctl(self, *args: str) -> None:
        options = f"-p {self.port} -k {self.folder} -c listen_addresses=127.0.0.1 -c fsync=off"
        command = [str(self.bin_dir / "pg_ctl"), "-D", str(self.folder / "data"), "-w", "-t", "60"]
        command += ["-l", str(self.folder / "server.log"), "-o", options, *args]
        subprocess.run(_as_postgres(command), check=True, capture_output=True, timeout=90)

    def log(self) -> str:
        return (self.folder / "server.log").read_text(errors="replace")


def _as_postgres(command: list[str]) -> list[str]:
    """initdb and pg_ctl refuse to run as root: as the postgres user then."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@pytest.fixture
def own_postgres() -> Iterator[OwnPostgres]:
    """A fresh PostgreSQL server on a free port, stopped and removed after the test."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    initdb = Path(found[-1]) if found else Path(shutil.which("initdb") or "initdb")
    if not initdb.exists() or (os.geteuid() == 0 and not shutil.which("runuser")):
        services_missing("a PostgreSQL server of the test's own needs initdb (and runuser as root)")
    folder = Path(tempfile.mkdtemp(prefix="penguin-pg-"))
    server = OwnPostgres(folder, free_port(), initdb.parent)
    try:
        if os.geteuid() == 0:
            shutil.chown(folder, "postgres", "postgres")
        data = str(folder / "data")
        initdb_command = [str(initdb), "-D", data, "-U", "postgres", "--auth=trust", "--no-sync"]
        subprocess.run(_as_postgres(initdb_command), check=True, capture_output=True, timeout=120)
        server.pg_ctl("start")
        yield server
    finally:
        subprocess.run(
            _as_postgres([str(initdb.parent / "pg_ctl"), "-D", str(folder / "data"), "-m"])
            + ["immediate", "stop"],
            capture_output=True,
            timeout=60,
        )
        shutil.rmtree(folder, ignore_errors=True)


@pytest.mark.timeout(600)
def test_postgres_restarted_with_runs_queued_runs_each_once(
    own_postgres, deployment, tmp_path, monkeypatch
):
    """Six runs of the probe's one-step job submitted at once, then, while runs wait in the
    queue, the instance's PostgreSQL stopped for 15 s and started again: every submitted run ends
    in success (itself, or a run retry of one that failed while PostgreSQL was away), none is
    lost or stays queued (the daemon dequeued them after the restart), the step materialized once
    per submitted run, on the worker, every program runs and the webserver answers."""
    # A run launched as PostgreSQL goes away can die before it reports: run monitoring fails it
    # after start_timeout_seconds and its retry runs. The profile's 180 s made this test take
    # ~195 s when that happened (35 s when not); 60 s keeps the same path, a minute shorter.
    instance_yaml = tmp_path / "dagster.yaml"
    instance_yaml.write_text(
        prod.INSTANCE_YAML.read_text().replace(
            "start_timeout_seconds: 180", f"start_timeout_seconds: {START_TIMEOUT_SECONDS}"
        )
    )
    assert f"start_timeout_seconds: {START_TIMEOUT_SECONDS}" in instance_yaml.read_text()
    monkeypatch.setattr(prod, "INSTANCE_YAML", instance_yaml)
    deployment.env.update(PENGUIN_PG_URL=own_postgres.url, PENGUIN_WORKERS="1")
    deployment.settings = settings = load_settings(deployment.env)
    monkeypatch.setenv("PENGUIN_PG_URL", prod.dagster_pg_url(own_postgres.url))
    deployment.up(probe_processes(settings, probe_workspace(tmp_path)))

    submitted = [launch(settings.dagster_port, "where_job") for _ in range(RUNS)]
    with deployment.instance() as instance:
        wait_for(
            lambda: instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])),
            timeout=60,
            what="a run waiting in the queue",
        )
        at_stop = sorted(r.status.value for r in instance.get_runs())
        own_postgres.pg_ctl("-m", "fast", "stop")
        try:
            time.sleep(OUTAGE_SECONDS)  # the fault's length, as the link cut's 20 s
        finally:
            own_postgres.pg_ctl("start")
        runs = wait_for(
            lambda: _every_run_settled(instance, submitted),
            timeout=400,
            interval=1.0,
            what="every submitted run finished with success",
        )
        texts = [f"{r.run_id[:8]} {r.status.value} parent={r.parent_run_id}" for r in runs]
        for root in submitted:
            lineage = [r for r in runs if root in (r.run_id, r.root_run_id)]
            assert any(r.is_success for r in lineage), (texts, run_text(instance, root)[-3000:])
        materialized = instance.fetch_materializations(dg.AssetKey("where_it_ran"), limit=100)
        assert len(materialized.records) == RUNS, texts
        assert all(step_workers(instance, r.run_id) for r in runs if r.is_success), texts
        states = {p.name: p.state for p in prod.programs(settings)}
    assert set(states.values()) == {"RUNNING"}, states
    assert prod.webserver_answers(settings) is None
    print("at the stop:", at_stop, "after:", texts)


def _every_run_settled(instance, submitted: list[str]):
    """Every run finished, and each submitted one with a success in its lineage; else None."""
    runs = instance.get_runs()
    if not all(r.is_finished for r in runs):
        return None
    succeeded = {r.root_run_id or r.run_id for r in runs if r.is_success}
    return runs if succeeded >= set(submitted) else None
