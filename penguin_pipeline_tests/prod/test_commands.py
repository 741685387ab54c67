"""The production profile's commands and configuration, without its services."""

from __future__ import annotations

import io
import os
import socket
import sys

import psutil
import pytest
import yaml

from penguin_pipeline import prod
from penguin_pipeline.defs.workers import masked
from penguin_pipeline.settings import load_settings

from ..processes import free_port, group_alive, instance_yaml_elsewhere, wait_for
from .conftest import require_services


def test_a_service_that_does_not_answer_gets_one_line_and_nothing_starts(tmp_path):
    """No service needed: each URL points at a closed port."""
    ports = [free_port() for _ in range(3)]
    settings = load_settings(
        {
            "PENGUIN_PROD_HOME": str(tmp_path / "home"),
            "PENGUIN_PG_URL": f"postgresql://postgres:s3cret@127.0.0.1:{ports[0]}/penguin_pipeline",
            "PENGUIN_CELERY_BROKER": f"amqp://guest:s3cret@127.0.0.1:{ports[1]}//",
            "PENGUIN_CELERY_BACKEND": f"redis://127.0.0.1:{ports[2]}/0",
        }
    )
    out, err = io.StringIO(), io.StringIO()
    assert prod.up(settings, out, err) == 2
    lines = err.getvalue().splitlines()
    assert len(lines) == 4 and lines[-1] == "prod-up: nothing started", lines
    for line, service, var, port in zip(
        lines,
        ["PostgreSQL", "RabbitMQ", "Redis"],
        ["PENGUIN_PG_URL", "PENGUIN_CELERY_BROKER", "PENGUIN_CELERY_BACKEND"],
        ports,
        strict=False,
    ):
        assert line.startswith(f"prod-up: {service}") and f"127.0.0.1:{port}" in line, line
        assert var in line and "start " in line, line
    assert "s3cret" not in err.getvalue() + out.getvalue()
    assert not (tmp_path / "home" / "services").exists()


def test_the_profile_instance_differs_from_the_embedded_one_only_in_its_storage():
    """Same pools, run limits, queue, retries, launcher and run monitoring (README, "Production
    profile"): a change to dagster.yaml must be made to instance/prod/dagster.yaml too."""
    # Without the storage sections that keep the embedded instance's files in .dagster_home/.
    embedded = yaml.safe_load(instance_yaml_elsewhere())
    profile = yaml.safe_load(prod.INSTANCE_YAML.read_text())
    assert profile.pop("storage") == {"postgres": {"postgres_url": {"env": "PENGUIN_PG_URL"}}}
    assert profile == embedded


def test_no_password_in_a_message():
    assert masked("postgresql://app:s3cret@db:5432/x") == "postgresql://app:***@db:5432/x"
    assert masked("amqp://guest:guest@127.0.0.1:5672//") == "amqp://guest:***@127.0.0.1:5672//"
    assert masked("redis://127.0.0.1:6379/0") == "redis://127.0.0.1:6379/0"
    settings = load_settings({"PENGUIN_PG_URL": "postgresql://app:s3cret@db/x"})
    assert "s3cret" not in repr(settings)


def test_dagster_gets_the_url_with_the_driver_it_has():
    assert prod.dagster_pg_url("postgresql://postgres@127.0.0.1:5432/p") == (
        "postgresql+psycopg2://postgres@127.0.0.1:5432/p"
    )
    assert prod.dagster_pg_url("postgresql+psycopg2://h/p") == "postgresql+psycopg2://h/p"
    assert prod.libpq_url("postgresql+psycopg2://h/p") == "postgresql://h/p"


def test_the_profile_is_chosen_by_configuration_alone(instance, monkeypatch):
    from penguin_pipeline.definitions import defs

    assert defs().resolve_job_def("penguin_job").executor_def.name == "in_process"
    monkeypatch.setenv("PENGUIN_PROFILE", "prod")
    assert defs().resolve_job_def("penguin_job").executor_def.name == "celery_workers"


def test_an_unknown_profile_is_refused_naming_the_variable():
    import pytest

    with pytest.raises(ValueError, match="PENGUIN_PROFILE='production'"):
        load_settings({"PENGUIN_PROFILE": "production"})


def test_a_port_for_a_server_is_free_and_outside_the_range_of_outgoing_connections():
    """A port from that range could be taken by any connection's local end before the server
    binds it (moto's stand-in then never answered: prod-up HOSTS=2 failed now and then)."""
    low = prod._ephemeral_low()
    for port in {free_port() for _ in range(20)}:
        assert prod._PORTS_FROM <= port < low, (port, low)
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))


def test_s3_that_never_answers_is_named_with_its_endpoint(monkeypatch):
    from penguin_pipeline import hosts

    monkeypatch.setattr(hosts, "BUCKET_WAIT_SECONDS", 0.5)
    endpoint = f"http://127.0.0.1:{free_port()}"
    env = {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "x", "AWS_SECRET_ACCESS_KEY": "x"}
    with pytest.raises(RuntimeError, match=f"S3 at {endpoint} does not answer after 0.5 s"):
        hosts.make_bucket({**env, "AWS_DEFAULT_REGION": "us-east-1"})


def test_supervisord_runs_each_process_and_shutdown_ends_its_whole_group(tmp_path):
    """supervisord (from instance/prod/supervisord.conf) runs a process that starts a child;
    `prod.down` ends both (the whole group) and supervisord itself, keeping the log."""
    settings = load_settings({"PENGUIN_PROD_HOME": str(tmp_path / "home")})
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )
    try:
        prod.start_supervisor(settings, {"sleeper": [sys.executable, "-c", script]}, {})
        [program] = wait_for(
            lambda: [p for p in prod.programs(settings) if p.state == "RUNNING"], timeout=30
        )
        assert program.name == "sleeper" and program.log.parent == prod.services_dir(settings)
        wait_for(lambda: len(_group(program.pid)) == 2, timeout=10, what="the child started")
        supervisord = int((prod.services_dir(settings) / "supervisord.pid").read_text())
        out = io.StringIO()
        assert prod.down(settings, out) == 0
        assert out.getvalue() == f"prod-down: sleeper: stopped (pid {program.pid})\n"
        assert not group_alive(program.pid) and not psutil.pid_exists(supervisord)
        assert not prod.programs(settings) and not prod.socket_path(settings).exists()
        assert program.log.exists()
    finally:
        prod.shutdown(settings)


@pytest.mark.parametrize("socket_lost", [False, True])
def test_down_after_a_crash_half_way_through_up_stops_what_started(tmp_path, socket_lost):
    """`up` dead after supervisord started (its programs run, nobody waits for them), even with
    supervisord's socket gone: `down` still finds supervisord (by its pid file) and stops all."""
    settings = load_settings({"PENGUIN_PROD_HOME": str(tmp_path / "home")})
    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    try:
        prod.start_supervisor(settings, {"a": sleeper, "b": sleeper}, {})
        running = wait_for(lambda: _all_running(settings, 2), timeout=30, what="a and b running")
        if socket_lost:
            prod.socket_path(settings).unlink()
            assert prod.supervisor(settings) is None
        assert prod.down(settings, io.StringIO()) == 0
        assert not [pid for pid in running if psutil.pid_exists(pid)]
        out = io.StringIO()
        assert prod.down(settings, out) == 0  # again: nothing left, and it says so
        assert "nothing runs under supervisord" in out.getvalue()
    finally:
        prod.shutdown(settings)


def _all_running(settings, count: int) -> list[int] | None:
    found = prod.programs(settings)
    if len(found) == count and all(p.state == "RUNNING" for p in found):
        return [p.pid for p in found]
    return None


def _group(pgid: int) -> list[int]:
    return [p.pid for p in psutil.process_iter() if _pgid(p.pid) == pgid]


def _pgid(pid: int) -> int | None:
    try:
        return os.getpgid(pid)
    except ProcessLookupError:
        return None


def test_dagster_celery_still_polls_at_the_interval_we_set():
    """defs/workers.py shortens dagster-celery's TICK_SECONDS; an upgrade that stops reading it
    there would silently bring back ~0.5 s per step."""
    import inspect

    from dagster_celery import core_execution_loop

    source = inspect.getsource(core_execution_loop.core_celery_execution_loop)
    assert "time.sleep(TICK_SECONDS)" in source


@pytest.mark.parametrize("ci, outcome", [("", pytest.skip.Exception), ("1", pytest.fail.Exception)])
def test_without_the_services_the_profile_tests_skip_naming_each_and_fail_on_ci(
    monkeypatch, ci, outcome
):
    closed = f"127.0.0.1:{free_port()}"
    settings = load_settings(
        {
            "PENGUIN_PG_URL": f"postgresql://postgres@{closed}/penguin_pipeline",
            "PENGUIN_CELERY_BROKER": f"amqp://guest:guest@{closed}//",
            "PENGUIN_CELERY_BACKEND": f"redis://{closed}/0",
        }
    )
    monkeypatch.setenv("CI", ci)
    with pytest.raises(outcome, match=r"(?s)PostgreSQL.*RabbitMQ.*Redis"):
        require_services(settings)
