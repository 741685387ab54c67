"""The production profile's commands and configuration, without its services."""

from __future__ import annotations

import io
import sys

import pytest
import yaml

from penguin_pipeline import prod
from penguin_pipeline.defs.workers import masked
from penguin_pipeline.settings import load_settings

from ..processes import free_port, instance_yaml_elsewhere
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


def test_each_process_is_started_in_its_folder_and_stopped_with_its_group(tmp_path):
    """`stop` ends the whole group (what the process started too) and only processes whose pid
    file was written for them."""
    settings = load_settings({"PENGUIN_PROD_HOME": str(tmp_path / "home")})
    folder = prod.services_dir(settings)
    script = (
        "import subprocess, sys, time\n"
        "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(60)'])\n"
        "time.sleep(60)\n"
    )
    entry = prod.start("sleeper", [sys.executable, "-c", script], {}, folder)
    assert prod.recorded(settings) == [entry] and entry.process() is not None
    group = entry.pid
    [line] = prod.stop(prod.recorded(settings), grace=5)
    assert line == f"sleeper: stopped (pid {group})"
    assert not prod._group_alive(group) and not entry.pid_file.exists()
    assert entry.log.exists()


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
