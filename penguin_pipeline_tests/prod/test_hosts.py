"""The production profile with its workers on a simulated second host (`make prod-up HOSTS=2`):
a step runs there, over the link, without this host's files; `prod.down` removes the host."""

from __future__ import annotations

import io
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import boto3
import dagster as dg
import pytest

from penguin_pipeline import hosts, prod
from penguin_pipeline.settings import load_settings

from ..conftest import LTER_FILE
from ..processes import scratch_database, services_missing, wait_for
from .conftest import finished_runs
from .host_probe import MARKER, SAYS
from .test_profile import STEPS, run_text, step_workers

pytestmark = [pytest.mark.integration, pytest.mark.prod]


def up_with_stand_in(deployment, processes=None) -> str:
    """`deployment.up`, then the S3 stand-in's endpoint (from `up`'s output) set for this process;
    returns that endpoint."""
    said = deployment.up(processes)
    endpoint = re.search(r"S3 stand-in \(moto, in memory\) at (\S+)", said).group(1)
    os.environ["AWS_ENDPOINT_URL"] = endpoint  # the fixture's monkeypatch restores it
    return endpoint


@contextmanager
def lake_on_s3(deployment) -> Iterator:
    """HOSTS=2 on its defaults, up: a lake (catalog in a scratch Postgres database) with its files
    on moto's S3 stand-in; an S3 client of the stand-in once its bucket exists."""
    with scratch_database("penguin_lake") as catalog:
        deployment.env["PENGUIN_WAREHOUSE"] = f"ducklake:postgres:{catalog}"
        deployment.settings = load_settings(deployment.env)
        client = boto3.client("s3", endpoint_url=up_with_stand_in(deployment))
        wait_for(lambda: _bucket_exists(client), timeout=30, what="the bucket")
        yield client


def launch(port: int, job: str) -> str:
    from dagster_graphql import DagsterGraphQLClient

    return DagsterGraphQLClient("127.0.0.1", port_number=port).submit_job_execution(job)


def probe_processes(settings, workspace: Path) -> dict[str, list[str]]:
    """The profile's programs, with the daemon and the webserver serving the probe's location."""
    processes = prod.commands(settings)
    processes["daemon"] = [*prod.daemon_command()[:-1], str(workspace)]
    processes["webserver"] = [*prod.webserver_command(settings)[:-1], str(workspace)]
    return processes


def test_a_worker_on_the_second_host_runs_a_step_without_this_hosts_files(two_hosts):
    """One worker on each host; this host's stopped: the step runs on the second host, which sees
    neither this host's data folder, nor DAGSTER_HOME, nor PostgreSQL's unix socket, and whose
    step's stdout is read back through the instance (compute logs on S3)."""
    deployment, workspace = two_hosts
    settings = deployment.settings
    (deployment.data / MARKER).parent.mkdir(parents=True, exist_ok=True)
    (deployment.data / MARKER).write_text("only on the first host")
    sockets = hosts.postgres_sockets(settings.pg_url)
    assert any(any(f.glob(".s.PGSQL.*")) for f in sockets), sockets  # seen on this host
    deployment.env["PENGUIN_TEST_PG_SOCKETS"] = os.pathsep.join(map(str, sockets))
    up_with_stand_in(deployment, probe_processes(settings, workspace))
    host = hosts.second_host(settings)
    here = socket.gethostname()
    assert hosts.exists(host) and host.hostname != here
    assert set(deployment.worker_names()) == {
        f"{settings.celery_queue}-1@{here}",
        f"{settings.celery_queue}-h2-1@{host.hostname}",
    }
    out = io.StringIO()
    assert prod.status(settings, out, base_env=deployment.env) == 0, out.getvalue()
    listed = [line.strip() for line in out.getvalue().splitlines() if line.startswith("  host ")]
    assert listed == [
        f"host {here} (this one): workers worker-1",
        f"host {host.hostname} (netns {host.netns}, {host.address(2)}): workers worker-h2-1",
    ], out.getvalue()

    prod.supervisor(settings).supervisor.stopProcess("worker-1")  # the step can go only there
    run_id = launch(settings.dagster_port, "where_job")
    with deployment.instance() as instance:
        [run] = finished_runs(instance, 1, timeout=180)
        assert run.run_id == run_id and run.is_success, run_text(instance, run_id)[-3000:]
        # dagster-celery's event names the worker, and with it the host, in the UI's run view.
        [worker] = step_workers(instance, run_id).values()
        assert worker == f"{settings.celery_queue}-h2-1@{host.hostname}", worker
        [event] = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
        meta = event.dagster_event.event_specific_data.materialization.metadata
        assert type(instance.compute_log_manager).__name__ == "S3ComputeLogManager"
        stdout = _step_stdout(instance, run_id)
    assert meta["host"].value == host.hostname
    assert meta["sees_data"].value is False and meta["sees_dagster_home"].value is False
    assert meta["sees_postgres_socket"].value is False
    assert (deployment.data / MARKER).exists()  # it is there, on this host
    assert f"{SAYS} {host.hostname}" in stdout, stdout

    prod.down(settings, io.StringIO())
    assert not hosts.exists(host) and not host.folder.exists()
    assert not Path(f"/sys/class/net/{host.outer_veth}").exists()
    assert run_dir_gone_or_in_use()
    assert not prod.programs(settings)


def run_dir_gone_or_in_use() -> bool:
    """/run/penguin_pipeline is removed with the last host kept there (another deployment on
    this machine, a `make prod-up HOSTS=2` beside the tests, may keep its own)."""
    return not hosts.RUN_DIR.exists() or any(hosts.RUN_DIR.iterdir())


def _step_stdout(instance, run_id: str) -> str:
    """The step's stdout as the UI reads it: through the instance's compute log manager."""
    [event] = instance.all_logs(run_id, of_type=dg.DagsterEventType.LOGS_CAPTURED)
    file_key = event.dagster_event.event_specific_data.file_key
    manager = instance.compute_log_manager
    data = manager.get_log_data(manager.build_log_key_for_run(run_id, file_key))
    return (data.stdout or b"").decode(errors="replace")


def _bucket_exists(client) -> bool:
    try:
        client.head_bucket(Bucket=hosts.BUCKET)
        return True
    except client.exceptions.ClientError:
        return False


def test_a_worker_of_a_second_host_that_is_gone_fails_at_once_without_the_profiles_imports(
    tmp_path,
):
    """supervisord's command for a second-host worker, with no such host: it must exit well inside
    supervisord's startsecs, or a dead host's worker counts as started and is restarted forever
    (seen under load: RUNNING after the host was killed). So it fails before importing the
    profile (~1.5 s on an idle machine here)."""
    env = {**os.environ, "PENGUIN_PROD_HOME": str(tmp_path / "home")}
    check = (
        "import sys; from penguin_pipeline import hosts; "
        "code = hosts.main(['worker', 'h2-1']); "
        "print(code, 'penguin_pipeline.prod' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", check], env=env, capture_output=True, text=True, timeout=60
    )
    host = hosts.second_host(load_settings({"PENGUIN_PROD_HOME": str(tmp_path / "home")}))
    assert done.stdout.split() == ["1", "False"], (done.stdout, done.stderr)
    assert f"the second host {host.hostname} is gone" in done.stderr, done.stderr


def test_down_removes_a_second_host_left_by_a_crash_half_way_through_up(tmp_path):
    """`up` dead after the namespaces and the link were made, before supervisord started: plain
    `prod.down` (no HOSTS) removes them, and a second `down` finds nothing."""
    if os.geteuid() != 0 or not all(shutil.which(t) for t in ("ip", "nsenter", "unshare")):
        services_missing("the second host needs root with ip, nsenter and unshare")
    settings = load_settings({"PENGUIN_PROD_HOME": str(tmp_path / "home")})
    host = hosts.second_host(settings)
    settings.prod_home.mkdir(parents=True)
    (settings.prod_home / "dagster.yaml").write_text("only on the first host")
    try:
        hosts.create(host, [tmp_path / "data", settings.prod_home])
        assert hosts.exists(host) and Path(f"/sys/class/net/{host.outer_veth}").exists()
        hidden = subprocess.run(
            hosts.enter_command(host, ["sh", "-c", f"hostname; ls -A {tmp_path / 'home'}"]),
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split()
        assert hidden == [host.hostname], hidden  # its own name, an empty DAGSTER_HOME
        out = io.StringIO()
        assert prod.down(settings, out) == 0
        assert f"removed network namespace {host.netns}" in out.getvalue(), out.getvalue()
        assert not hosts.exists(host) and not host.folder.exists()
        assert not Path(f"/sys/class/net/{host.outer_veth}").exists()
        assert run_dir_gone_or_in_use()
        again = io.StringIO()
        prod.down(settings, again)
        assert "removed" not in again.getvalue(), again.getvalue()
    finally:
        hosts.destroy(host)


@pytest.mark.lake
@pytest.mark.timeout(600)
def test_the_link_cut_for_20_s_mid_step_loses_nothing_and_the_graph_ends_on_s3(two_hosts):
    """HOSTS=2 on its defaults: moto's S3 stand-in and a lake (catalog in Postgres, files on S3);
    this host's worker stopped, so every step runs on the second host. A landing file put on S3;
    the link down for 20 s as raw_penguins starts: the run fails or goes on, retries finish the
    work, no run hangs; the tables' newest materializations hold the file's rows once
    (raw_penguins and penguins: 344 each); every step ran over there; the model, the report and
    the lake's files are on S3 and nothing is on this host's disk."""
    deployment, _ = two_hosts
    with lake_on_s3(deployment) as client:
        settings = deployment.settings
        host = hosts.second_host(settings)
        prod.supervisor(settings).supervisor.stopProcess("worker-1")  # steps go there
        client.upload_file(str(LTER_FILE), hosts.BUCKET, "raw/penguins-raw.csv")
        with deployment.instance() as instance:
            wait_for(lambda: step_started(instance, "raw_penguins"), timeout=180, interval=0.2)
            subprocess.run(["ip", "link", "set", host.outer_veth, "down"], check=True)
            try:
                time.sleep(20)
            finally:
                subprocess.run(["ip", "link", "set", host.outer_veth, "up"], check=True)
            runs = wait_for(
                lambda: settled_with_success(instance), timeout=400, what="a successful run"
            )
            # The newest of any run: a retry re-executes only the steps that had not succeeded
            # (raw_penguins may have finished through the cut, a later step failed).
            counts = latest_row_counts(instance)
            texts = [f"{r.run_id[:8]} {r.status.value}" for r in runs]
            workers = {}
            for run in reversed(runs):  # a retry re-executes only what had not succeeded
                workers.update(step_workers(instance, run.run_id))
        assert counts == {"raw_penguins": 344, "penguins": 344}, (counts, texts)
        assert set(workers) == STEPS, (sorted(workers), texts)
        assert set(workers.values()) == {f"{settings.celery_queue}-h2-1@{host.hostname}"}, workers
        keys = {o["Key"] for o in client.list_objects_v2(Bucket=hosts.BUCKET)["Contents"]}
        assert "reports/penguin_report.html" in keys, sorted(keys)
        assert any(k.startswith("board/penguin_model/") for k in keys), sorted(keys)
        assert any(k.startswith("lake/") and k.endswith(".parquet") for k in keys), sorted(keys)
        on_disk = [p.name for p in deployment.data.iterdir()] if deployment.data.exists() else []
        assert not set(on_disk) & {"penguins.duckdb", "board", "reports", "lake"}, on_disk
        print("runs:", texts)
        prod.shutdown(settings)  # before the catalog database is dropped


def step_started(instance, key: str) -> bool:
    return any(
        e.step_key == key
        for run in instance.get_runs()
        for e in instance.all_logs(run.run_id, of_type=dg.DagsterEventType.STEP_START)
    )


def settled_with_success(instance):
    runs = instance.get_runs()
    return runs if all(r.is_finished for r in runs) and any(r.is_success for r in runs) else None


def latest_row_counts(instance) -> dict[str, int]:
    """The tables' row counts as their newest materializations (of any run) recorded them."""
    counts = {}
    for name in ("raw_penguins", "penguins"):
        event = instance.get_latest_materialization_event(dg.AssetKey(name))
        counts[name] = event.asset_materialization.metadata["dagster/row_count"].value
    return counts
