"""The production profile against the real services: PostgreSQL, RabbitMQ and Redis on 127.0.0.1.

Each test gets its own Postgres database (dropped after), its own Celery queue (deleted after), its
own DAGSTER_HOME, data folder and webserver port, so tests and a `make prod-up` beside them never
share runs or steps. Every process a test starts is stopped when it ends, also when it fails.

Without the services the tests are skipped, naming what does not answer (`make test` on a machine
with nothing else running); on CI (CI set) they fail instead: CI has the services.
"""

from __future__ import annotations

import io
import os
import shutil
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
from kombu import Connection

from penguin_pipeline import hosts, prod
from penguin_pipeline.settings import DEFAULT_PG_URL, Settings, load_settings

from ..processes import ROOT, free_port, group_alive, services_missing, wait_for

# The services' default URLs on this machine; the server's own `postgres` database (the tests
# create their own databases).
SERVICES = load_settings({"PENGUIN_PG_URL": DEFAULT_PG_URL.rsplit("/", 1)[0] + "/postgres"})


def require_services(settings: Settings) -> None:
    """Skip (fail on CI) naming each service of the profile that does not answer."""
    problems = [s.line() for s in prod.services(settings, create_database=False) if s.problem]
    if problems:
        services_missing("the production profile's services do not answer:\n" + "\n".join(problems))


@pytest.fixture(scope="session")
def services_answer():
    require_services(SERVICES)


def _admin():
    con = psycopg2.connect(prod.libpq_url(SERVICES.pg_url), dbname="postgres", connect_timeout=5)
    con.autocommit = True
    return con


@pytest.fixture
def database(services_answer) -> str:
    """A fresh database's URL; dropped (with whatever still connects to it) after the test."""
    name = f"penguin_test_{uuid.uuid4().hex[:12]}"
    url = SERVICES.pg_url.rsplit("/", 1)[0] + f"/{name}"
    prod.create_database(url)
    yield url
    con = _admin()
    try:
        with con.cursor() as cur:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        con.close()


@pytest.fixture
def queue(services_answer) -> str:
    name = f"penguin_test_{uuid.uuid4().hex[:12]}"
    yield name
    with Connection(SERVICES.celery_broker, connect_timeout=5) as con:
        con.default_channel.queue_delete(name)


@dataclass
class Deployment:
    settings: Settings
    env: dict  # the environment the test's processes start from
    data: Path

    @property
    def landing(self) -> Path:
        path = self.data / "raw"
        path.mkdir(parents=True, exist_ok=True)
        return path

    def up(self, processes=None) -> str:
        out, err = io.StringIO(), io.StringIO()
        status = prod.up(self.settings, out, err, base_env=self.env, processes=processes)
        assert status == 0, err.getvalue() + out.getvalue() + self.logs()
        return out.getvalue()

    def logs(self, lines: int = 40) -> str:
        folder = prod.services_dir(self.settings)
        return "".join(
            f"\n--- {log.name}\n" + "\n".join(log.read_text(errors="replace").splitlines()[-lines:])
            for log in sorted(folder.glob("*.log"))
        )

    @contextmanager
    def instance(self):
        with dg.DagsterInstance.from_config(str(self.settings.prod_home)) as instance:
            yield instance

    def worker_names(self) -> set[str]:
        names = [p.name for p in prod.programs(self.settings)]
        return set(prod.worker_nodes(self.settings, names))


@pytest.fixture
def deployment(tmp_path, database, queue, monkeypatch) -> Deployment:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PENGUIN_", "DAGSTER_"))}
    env.update(
        PENGUIN_PROD_HOME=str(tmp_path / "dagster_home_prod"),
        PENGUIN_DATA_DIR=str(tmp_path / "data"),
        PENGUIN_PG_URL=database,
        PENGUIN_CELERY_BROKER=SERVICES.celery_broker,
        PENGUIN_CELERY_BACKEND=SERVICES.celery_backend,
        PENGUIN_CELERY_QUEUE=queue,
        PENGUIN_WORKERS="2",
        DAGSTER_PORT=str(free_port()),
        PENGUIN_SENSOR_INTERVAL_SECONDS="1",
    )
    settings = load_settings(env)
    # This process reads the instance too (instance/prod/dagster.yaml takes the URL from the env).
    monkeypatch.setenv("PENGUIN_PG_URL", prod.dagster_pg_url(database))
    deployment = Deployment(settings, env, tmp_path / "data")
    try:
        yield deployment
    finally:
        # supervisord starts each program as the leader of its own process group.
        groups = [p.pid for p in prod.programs(settings) if p.pid]
        prod.shutdown(settings)
        assert not [g for g in groups if group_alive(g)], "a process group outlived shutdown()"
        assert not prod.programs(settings) and not prod.socket_path(settings).exists()


class ConnectionSampler:
    """Counts the connections to one database in pg_stat_activity, several times a second."""

    def __init__(self, database_url: str, interval: float = 0.2):
        self._name = database_url.rsplit("/", 1)[1]
        self._interval = interval
        self._stop = threading.Event()
        self.samples: list[int] = []
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        con = _admin()
        try:
            with con.cursor() as cur:
                while not self._stop.is_set():
                    cur.execute(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = %s", (self._name,)
                    )
                    self.samples.append(cur.fetchone()[0])
                    time.sleep(self._interval)
        finally:
            con.close()

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=10)


def finished_runs(instance, count: int, timeout: float) -> list[dg.DagsterRun]:
    """Wait until at least `count` runs exist and none is unfinished; return them."""

    def done():
        runs = instance.get_runs()
        return runs if len(runs) >= count and all(r.is_finished for r in runs) else None

    return wait_for(done, timeout=timeout, interval=1.0, what=f"{count} finished runs")


@pytest.fixture
def two_hosts(deployment, tmp_path, monkeypatch):
    """The deployment with HOSTS=2, one worker on each host, and the probe's code location;
    skipped (failed on CI) where namespaces cannot be made (not root, no `ip`/`nsenter`)."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "unshare")):
        services_missing("the second host needs root with ip, nsenter and unshare")
    deployment.env.update(PENGUIN_HOSTS="2", PENGUIN_WORKERS="1")
    deployment.settings = load_settings(deployment.env)
    # This process reads the steps' compute logs from moto's stand-in through the instance;
    # up_with_stand_in sets the endpoint, which the monkeypatch then restores too.
    for name, value in hosts._STAND_IN_CREDENTIALS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
    return deployment, probe_workspace(tmp_path)


def probe_workspace(folder: Path) -> Path:
    """A workspace.yaml in `folder` that loads the probe's code location (host_probe.py)."""
    workspace = folder / "workspace.yaml"
    workspace.write_text(
        "load_from:\n  - python_module:\n"
        "      module_name: penguin_pipeline_tests.prod.host_probe\n"
        f"      location_name: host_probe\n      working_directory: {ROOT}\n"
    )
    return workspace
