"""Start real processes (Dagster daemon, CLI runs) against a tmp project instance, and always stop
them.
"""

from __future__ import annotations

import itertools
import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import psutil
import yaml

from penguin_pipeline import prod

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
# The DuckLake's environment (DuckDB 1.5.5, `make setup-lake`): the lake's runs start here.
LAKE_BIN = ROOT / ".venv-lake" / "bin"
PG_SERVER = "host=127.0.0.1 port=5432 user=postgres"  # this machine's PostgreSQL (trust auth)
# `python -c RUN_PARTITION <file>`: one run of penguin_job for one landing file's partition, as a
# process of its own (several at once: concurrent writers).
RUN_PARTITION = """
import sys, dagster as dg

import yaml
from penguin_pipeline.definitions import defs
from penguin_pipeline.defs.automation import register_new_partitions
instance = dg.DagsterInstance.get()
register_new_partitions(instance, [sys.argv[1]])
result = defs().resolve_job_def("penguin_job").execute_in_process(
    instance=instance, partition_key=sys.argv[1], raise_on_error=False)
sys.exit(0 if result.success else 1)
"""


# The project's dagster.yaml keeps Dagster's storage under the project's own .dagster_home/ (paths
# relative to the project root); another DAGSTER_HOME takes every other setting and Dagster's
# default storage, inside that home.
PROJECT_ONLY = ("storage", "local_artifact_storage", "compute_logs")


def instance_yaml_elsewhere(text: str | None = None) -> str:
    """The project's instance settings for a DAGSTER_HOME of a test or a benchmark."""
    config = yaml.safe_load(text if text is not None else (ROOT / "dagster.yaml").read_text())
    kept = {key: value for key, value in config.items() if key not in PROJECT_ONLY}
    return yaml.safe_dump(kept, sort_keys=False)


def instance_home(tmp: Path) -> Path:
    """A DAGSTER_HOME with the project's dagster.yaml, and a workspace.yaml loading our module."""
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
    (home / "workspace.yaml").write_text(
        "load_from:\n  - python_module:\n      module_name: penguin_pipeline.definitions\n"
        f"      location_name: penguin_pipeline\n      working_directory: {ROOT}\n"
    )
    return home


def project_env(home: Path, data_dir: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIN_")}
    env.update(
        DAGSTER_HOME=str(home), PENGUIN_DATA_DIR=str(data_dir), PYTHONUNBUFFERED="1", **extra
    )
    return env


@contextmanager
def running_daemon(home: Path, env: dict, log: Path):
    """`dagster-daemon run` (sensors, schedules, run queue) until the block ends; killed with its
    children."""
    process = start_logged(
        [str(BIN / "dagster-daemon"), "run", "-w", str(home / "workspace.yaml")], env, log
    )
    try:
        yield process
    finally:
        _stop(process)


def start_logged(command: list[str], env: dict, log: Path) -> subprocess.Popen:
    """`command` from the project root in a session of its own (stopped as a group, children
    too), its output and errors to `log`."""
    with open(log, "wb") as out:
        return subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )


def run_at_once(commands: list[list[str]], env: dict, timeout: float = 280) -> list[str]:
    """Start every command at once (concurrent writers) and wait for all to succeed; their outputs.

    Each runs in a session of its own and is killed with its children when the wait does not end
    well (a timeout, pytest-timeout's signal, Ctrl-C): a hung run never outlives its test and
    writes beside the next one.
    """
    processes: list[subprocess.Popen] = []
    try:
        for command in commands:
            processes.append(
                subprocess.Popen(
                    command,
                    env=env,
                    cwd=ROOT,
                    stdout=subprocess.PIPE,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        outputs = [p.communicate(timeout=timeout)[0].decode() for p in processes]
    finally:
        for process in processes:
            _stop(process)
    codes = [p.returncode for p in processes]
    assert codes == [0] * len(processes), "\n".join(o[-3000:] for o in outputs)
    return outputs


def alive(pid: int) -> bool:
    """The process exists and is not a zombie waiting to be reaped."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def _stop(process: subprocess.Popen) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait(timeout=10)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing holds right now (outside the range the kernel gives
    outgoing connections, so none can take it before a server binds it)."""
    return prod.free_port()


def wait_for(predicate, timeout: float = 20.0, interval: float = 0.1, what: str = "condition"):
    """Poll until predicate() is truthy; fail after timeout seconds (bounded, never hangs)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise TimeoutError(f"{what} not reached within {timeout:.0f} s")


def most_at_once(intervals: list[tuple[float, float]]) -> int:
    """The largest number of (start, end) intervals that hold at one instant (an end and a start
    at the same instant do not overlap)."""
    edges = sorted([(start, 1) for start, _ in intervals] + [(end, -1) for _, end in intervals])
    return max(itertools.accumulate(step for _, step in edges), default=0)


def run_step_spans(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """Each step of the run: (start, end) from the event log (STEP_START to its success/failure)."""
    spans: dict[str, list[float]] = {}
    kinds = {
        dg.DagsterEventType.STEP_START,
        dg.DagsterEventType.STEP_SUCCESS,
        dg.DagsterEventType.STEP_FAILURE,
    }
    for entry in instance.all_logs(run_id, of_type=kinds):
        span = spans.setdefault(entry.step_key, [None, None])
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            span[0] = entry.timestamp
        else:
            span[1] = entry.timestamp
    return {key: (start, end) for key, (start, end) in spans.items()}


def services_missing(message: str) -> None:
    """Skip the test, naming the service that does not answer; fail it on CI (CI set), where a
    skip would hide that the production profile and the lake went untested."""
    import pytest

    if os.environ.get("CI"):
        pytest.fail(message)
    pytest.skip(message)


@contextmanager
def scratch_database(prefix: str, server: str = PG_SERVER) -> Iterator[str]:
    """A new, uniquely named Postgres database on `server` (a libpq string): its connection string;
    dropped after, with whatever still connects to it, also when the body failed."""
    import psycopg2

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    admin = psycopg2.connect(f"{server} dbname=postgres", connect_timeout=10)
    admin.autocommit = True
    try:
        with admin.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        try:
            yield f"dbname={name} {server}"
        finally:
            with admin.cursor() as cur:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.close()


def group_alive(pgid: int) -> bool:
    """Any process left in the process group (zombies, dead and only unreaped, do not count)."""
    for process in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(process.pid) == pgid and process.info["status"] != psutil.STATUS_ZOMBIE:
                return True
        except (ProcessLookupError, psutil.NoSuchProcess):
            continue
    return False
