"""A run killed with SIGKILL anywhere loses nothing and blocks nothing.

Each case kills `penguin-pipeline run` at one point of a three-file load (staging, insert, cleaning,
summary, model pin, champion decision, report; see crashing_run.POINTS), checks that the kill
landed there (the step the dead run's event log shows unfinished, the product functions on the
stack, the files left), then runs the pipeline again as `make run` would. The dead run must not
hold the `duckdb` pool (the next run would wait forever), and the warehouse, the board and the
report must equal those of a run that was never interrupted.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import dagster as dg
import duckdb
import pytest

from penguin_pipeline import cli
from penguin_pipeline.definitions import defs
from penguin_pipeline.defs.runs import (
    HOST_TAG,
    PID_TAG,
    LocalRunLauncher,
    release_dead_runs,
    run_worker,
)
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from .conftest import lter_lines, write_lines
from .crashing_run import POINTS
from .processes import ROOT, instance_home, project_env, running_daemon, wait_for

pytestmark = pytest.mark.integration

# Timer kills, counted from the run's creation, land wherever the run is then: inside a step or
# between two (Dagster's own event writes), depending on the machine's load; each case prints it.
TIMED = ["run+0.3", "run+1.0", "run+1.8"]
STEP_EVENTS = {
    dg.DagsterEventType.STEP_START,
    dg.DagsterEventType.STEP_SUCCESS,
    dg.DagsterEventType.STEP_FAILURE,
}
TABLES = {
    "raw_penguins": "loaded_at",
    "rejected_penguins": "rejected_at",
    "landed_files": "loaded_at",
    "penguins": None,
    "penguin_summary": None,
}


def land_three_files(landing) -> None:
    """The shipped LTER file dealt into three files: each holds all three species."""
    landing.mkdir(parents=True, exist_ok=True)
    header, *rows = lter_lines()
    for i in range(3):
        write_lines(landing / f"part-{i}.csv", [header] + rows[i::3])


def project(tmp_path, monkeypatch=None):
    home, data = instance_home(tmp_path), tmp_path / "data"
    land_three_files(data / "raw")
    env = project_env(home, data)
    if monkeypatch is not None:
        for name in [n for n in os.environ if n.startswith("PENGUIN_")]:
            monkeypatch.delenv(name)
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        monkeypatch.setenv("PENGUIN_DATA_DIR", str(data))
    return home, data, env


def warehouse_state(data) -> dict:
    with duckdb.connect(str(data / "penguins.duckdb"), read_only=True) as con:
        return tables_state(con)


def tables_state(con) -> dict:
    """Per table: row count and an order-free content hash (load times left out); duplicate raw
    rows, ledger disagreements and candidate tables left (each should be none)."""
    state = {}
    for table, stamp in TABLES.items():
        rows = f"SELECT * EXCLUDE ({stamp}) FROM {table}" if stamp else f"SELECT * FROM {table}"
        state[table] = con.execute(f"SELECT count(*), sum(hash(t)) FROM ({rows}) t").fetchall()[0]
    state["duplicate raw rows"] = con.execute(
        "SELECT count(*) - count(DISTINCT (source_file, source_line)) FROM raw_penguins"
    ).fetchall()[0][0]
    state["candidate tables left"] = con.execute(
        "SELECT table_name FROM information_schema.tables "
        "WHERE contains(table_name, '__candidate_')"
    ).fetchall()
    state["files whose ledger disagrees with raw_penguins"] = con.execute(
        """SELECT count(*) FROM landed_files l
           LEFT JOIN (SELECT source_file, count(*) AS n FROM raw_penguins GROUP BY 1) r
           USING (source_file)
           WHERE l.rows_loaded != coalesce(r.n, 0)"""
    ).fetchall()[0][0]
    return state


def board_state(data) -> dict:
    board = boards.board_from_url(str(data / "board"))
    facts = boards.latest_model_facts(board)
    boards.read_model(board)  # the newest version loads: not a half-written one
    snapshots = [
        board.pin_meta(boards.MODEL_PIN, v.version).user["user"]["data_snapshot"]
        for v in board.pin_versions(boards.MODEL_PIN, as_df=False)
    ]
    return {
        "data_snapshot": facts["data_snapshot"],
        "r2": facts["r2"],
        "coefficients": facts["coefficients"],
        "versions per snapshot": len(snapshots) - len(set(snapshots)),
    }


def report_text(data) -> str:
    """The report, with what differs between two identical runs masked (times, versions, the
    Dagster run that trained the model)."""
    text = Path(load_settings({"PENGUIN_DATA_DIR": str(data)}).report_url).read_text(
        encoding="utf-8"
    )
    text = re.sub(r"\d{8}T\d{6}Z(-[0-9a-f]{5})?", "<version or time>", text)
    text = re.sub(r"Dagster run [0-9a-f-]{36}", "Dagster run <id>", text)
    text = re.sub(r"\d{4}-\d{2}-\d{2}[ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?", "<time>", text)
    return re.sub(r'name="penguin-report-inputs" content="\w+"', "<fingerprint>", text)


def outcome(data) -> dict:
    return {
        "warehouse": warehouse_state(data),
        "board": board_state(data),
        "report": report_text(data),
    }


def run_killed_at(point: str, env: dict, record: Path) -> dict:
    """`penguin-pipeline run` that SIGKILLs itself at `point` (crashing_run.POINTS, or a timer);
    what it recorded as it died."""
    killed = subprocess.run(
        [sys.executable, "-m", "penguin_pipeline_tests.crashing_run", point, str(record)],
        env=env,
        cwd=ROOT,
        capture_output=True,
        timeout=180,
    )
    assert killed.returncode == -9 and record.exists(), (
        f"the kill at {point} did not happen (exit code {killed.returncode}):\n"
        + killed.stderr.decode()[-3000:]
    )
    return json.loads(record.read_text())


def killed_where_named(point: str, env: dict, record: Path) -> tuple[dg.DagsterRun, str]:
    """`penguin-pipeline run` killed at `point`: its dead run, and where the kill landed (checked
    against the point's name, see where_it_landed)."""
    killed = run_killed_at(point, env, record)
    with dg.DagsterInstance.from_config(env["DAGSTER_HOME"]) as instance:
        dead = [run for run in instance.get_runs() if not run.is_finished]
        assert len(dead) == 1, (point, killed, dead)
        return dead[0], where_it_landed(
            point, killed, dead[0], instance, Path(env["PENGUIN_DATA_DIR"])
        )


def steps_of(instance, run_id: str) -> tuple[list[str], list[str]]:
    """The run's steps that started, and those of them that never finished, in order (its event
    log)."""
    started, finished = [], set()
    for entry in instance.all_logs(run_id, of_type=STEP_EVENTS):
        if entry.dagster_event.event_type == dg.DagsterEventType.STEP_START:
            started.append(entry.step_key)
        else:
            finished.add(entry.step_key)
    return started, [step for step in started if step not in finished]


def steps_on_stack(stack: list[str]) -> list[str]:
    """The job's steps on a stack (its assets' functions bear their names)."""
    steps = {node.name for node in defs().resolve_job_def("penguin_job").nodes_in_topological_order}
    return [name for name in stack if name in steps]


def where_it_landed(point: str, record: dict, run: dg.DagsterRun, instance, data: Path) -> str:
    """What the kill hit, as a line for the test's output; fails unless that is where `point` is
    named to land."""
    started, unfinished = steps_of(instance, run.run_id)
    landed = (
        f"{point}: {record['fired']}, in step(s) {unfinished or 'none'} (started: {started}); "
        f"stack on {record['thread']}: {' > '.join(record['stack'])}"
    )
    if point in TIMED:
        assert record["run_id"] == run.run_id, landed
        # The stack was taken just before the kill: a step it names had started by then.
        assert set(steps_on_stack(record["stack"])) <= set(started), landed
        return landed
    named = POINTS[point]
    wrong = []
    if unfinished != [named.step]:
        wrong.append(f"step {named.step} expected unfinished, the event log has {unfinished}")
    wrong += [f"{name} not on the stack" for name in named.on_stack if name not in record["stack"]]
    wrong += [f"no {pattern} left" for pattern in named.present if not any(data.glob(pattern))]
    wrong += [f"{pattern} left" for pattern in named.absent if any(data.glob(pattern))]
    assert not wrong, f"the kill did not land where named ({'; '.join(wrong)}):\n{landed}"
    return landed


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    with pytest.MonkeyPatch.context() as monkeypatch:
        _, data, _ = project(tmp_path_factory.mktemp("uninterrupted"), monkeypatch)
        assert cli.main(["run"]) == 0
        return outcome(data)


@pytest.mark.parametrize("point", list(POINTS) + TIMED)
def test_a_run_killed_where_named_loses_nothing_and_blocks_nothing(
    point, uninterrupted, tmp_path, monkeypatch, capsys
):
    home, data, env = project(tmp_path, monkeypatch)
    dead, landed = killed_where_named(point, env, tmp_path / "kill.json")

    # `make run` again: before the fix this waited forever on the pool
    assert cli.main(["run"]) == 0, landed

    assert "had died without finishing: marked it failed" in capsys.readouterr().err
    print(f"killed at {landed}")  # shown with -rP, and when the test fails
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert instance.get_run_by_id(dead.run_id).status == dg.DagsterRunStatus.FAILURE
        assert not instance.event_log_storage.get_concurrency_run_ids()
    assert outcome(data) == uninterrupted


def test_the_daemon_fails_a_run_whose_worker_was_killed_and_retries_it(tmp_path):
    """The code server reports its dead worker; run retries finish the job; its slot is freed."""
    home, data, env = project(tmp_path)
    env["PENGUIN_SENSOR_INTERVAL_SECONDS"] = "1"
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        running_daemon(home, env, tmp_path / "daemon.log"),
    ):
        worker = wait_for(
            lambda: started_worker(instance), timeout=120, what="a run worker executing steps"
        )
        os.kill(worker.pid, signal.SIGKILL)
        dead = wait_for(lambda: failed_run(instance), timeout=90, what="the dead run marked failed")
        # Whichever notices first explains it: the code server that started the worker (its exit
        # code), or the daemon's run monitoring (our launcher's health check).
        explanation = crash_explanation(instance, dead)
        assert (
            "terminated by signal 9" in explanation
            or f"run worker process {worker.pid} is gone" in explanation
        ), explanation
        wait_for(
            lambda: (
                all(r.is_finished for r in instance.get_runs())
                and any(
                    r.tags.get("dagster/parent_run_id") == dead.run_id and r.is_success
                    for r in instance.get_runs()
                )
            ),
            timeout=180,
            what="the retry of the dead run succeeded",
        )
        wait_for(
            lambda: not instance.event_log_storage.get_concurrency_run_ids(),
            timeout=30,
            what="the dead run's pool slot freed",
        )
    state = warehouse_state(data)
    assert state["raw_penguins"][0] == 344 and state["duplicate raw rows"] == 0
    assert state["files whose ledger disagrees with raw_penguins"] == 0


def started_worker(instance):
    for run in instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.STARTED])):
        worker = run_worker(instance, run)
        if worker is not None:
            return worker
    return None


def failed_run(instance):
    failed = instance.get_runs(dg.RunsFilter(statuses=[dg.DagsterRunStatus.FAILURE]))
    return failed[0] if failed else None


def crash_explanation(instance, run) -> str:
    kinds = {dg.DagsterEventType.ENGINE_EVENT, dg.DagsterEventType.RUN_FAILURE}
    return "\n".join(e.message for e in instance.all_logs(run.run_id, of_type=kinds))


def dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_only_runs_whose_process_is_gone_are_released(instance):
    """The command line's check, and the launcher's health check that run monitoring uses when the
    code server that started a run is gone too (`make dev` killed as a whole)."""
    from dagster._core.launcher.base import WorkerStatus

    def cli_run(pid: int, host: str = socket.gethostname()) -> dg.DagsterRun:
        run = dg.DagsterRun(
            job_name="penguin_job",
            status=dg.DagsterRunStatus.STARTED,
            tags={HOST_TAG: host, PID_TAG: str(pid)},
        )
        return instance.run_storage.add_run(run)

    alive, dead, elsewhere = (
        cli_run(os.getpid()),
        cli_run(dead_pid()),
        cli_run(dead_pid(), "another-host"),
    )
    instance.event_log_storage.set_concurrency_slots("duckdb", 1)
    assert instance.event_log_storage.claim_concurrency_slot(
        "duckdb", dead.run_id, "raw_penguins"
    ).is_claimed
    launcher = LocalRunLauncher()
    launcher.register_instance(instance)
    assert (
        launcher.check_run_worker_health(instance.get_run_by_id(dead.run_id)).status
        == WorkerStatus.FAILED
    )
    assert launcher.check_run_worker_health(alive).status == WorkerStatus.RUNNING

    [line] = release_dead_runs(instance)
    assert dead.run_id[:8] in line and "freed its slot in pool duckdb" in line
    assert not instance.event_log_storage.get_concurrency_run_ids()
    statuses = {r.run_id: r.status for r in instance.get_runs()}
    assert statuses[dead.run_id] == dg.DagsterRunStatus.FAILURE
    assert statuses[alive.run_id] == statuses[elsewhere.run_id] == dg.DagsterRunStatus.STARTED
