"""What `penguin-pipeline run` (`make run`) shows a person: a short summary on the terminal, the
run's event log in a file it names, and failures on the terminal with their exit codes."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from penguin_pipeline.storage import landing
from penguin_pipeline_tests.conftest import lake_extensions_missing
from penguin_pipeline_tests.processes import BIN, ROOT, instance_home, project_env

pytestmark = pytest.mark.integration  # each test starts the command as its own process

MAX_LINES = 30


def run_command(tmp_path: Path, **env: str) -> subprocess.CompletedProcess:
    home = instance_home(tmp_path)
    return subprocess.run(
        [str(BIN / "penguin-pipeline"), "run"],
        env=project_env(home, tmp_path / "data", **env),
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )


def named_log(text: str) -> Path:
    [path] = set(re.findall(r"(\S+/logs/run-\S+\.log)", text))
    return Path(path)


def test_first_run_prints_a_short_summary_and_logs_the_events_to_a_named_file(tmp_path):
    done = run_command(tmp_path)
    assert done.returncode == 0, done.stderr
    shown = (done.stdout + done.stderr).splitlines()
    assert len(shown) <= MAX_LINES, shown
    assert not [line for line in shown if " - DEBUG - " in line or "STEP_" in line]
    for where in (
        "warehouse",
        "model pin",
        "report",
        "run log",
        "make dev",
        "http://127.0.0.1:3000",
    ):
        assert where in done.stdout
    log = named_log(done.stdout)
    assert log.parent == tmp_path / "data" / "logs" and log.is_file()
    events = log.read_text()
    for event in (
        "RUN_START",
        "STEP_START",
        "STEP_SUCCESS",
        "ASSET_MATERIALIZATION",
        "RUN_SUCCESS",
    ):
        assert event in events
    assert " - DEBUG - " in events


def test_a_failed_run_says_why_on_the_terminal_and_exits_1(tmp_path):
    not_a_file = tmp_path / "warehouse-is-a-folder"
    not_a_file.mkdir()
    done = run_command(tmp_path, PENGUIN_DUCKDB=str(not_a_file))
    assert done.returncode == 1
    assert "the run failed" in done.stderr and "raw_penguins" in done.stderr
    assert f"PENGUIN_DUCKDB={not_a_file} is a folder" in done.stderr
    assert len((done.stdout + done.stderr).splitlines()) <= MAX_LINES
    assert "STEP_FAILURE" in named_log(done.stderr).read_text()


@pytest.mark.skipif(
    lake_extensions_missing() is None, reason="this environment has the lake's extensions"
)
def test_the_lake_asked_for_in_the_file_environment_names_the_lake_environment(tmp_path):
    """.venv has the newest DuckDB and no lake extensions: PENGUIN_WAREHOUSE set there is refused
    in one line before any run, saying where the lake runs."""
    done = run_command(tmp_path, PENGUIN_WAREHOUSE="ducklake:postgres:dbname=nowhere")
    assert done.returncode == 1
    assert "make setup-lake" in done.stderr and "DuckDB 1.5.5" in done.stderr, done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert not (tmp_path / "data" / "logs").exists()


def test_quarantined_files_are_listed_on_the_terminal_with_exit_2(tmp_path):
    raw = tmp_path / "data" / "raw"
    raw.mkdir(parents=True)
    shutil.copyfile(landing.packaged_lter_file(), raw / "penguins-raw.csv")
    (raw / "scan.csv").write_bytes(b"%PDF-1.7\n" + bytes(range(256)) * 4)
    done = run_command(tmp_path)
    assert done.returncode == 2
    assert (
        "could not be read and were moved to quarantine" in done.stderr
        and "scan.csv" in done.stderr
    )
    assert "penguin_pipeline: done." in done.stdout


def test_late_imports_happen_on_a_side_thread(monkeypatch):
    """import_in_background imports each named module on its own thread, once."""
    import sys

    from penguin_pipeline import cli

    monkeypatch.delitem(sys.modules, "tabnanny", raising=False)
    thread = cli.import_in_background(("tabnanny",))
    thread.join(timeout=30)
    assert thread.name == "late-imports" and thread.daemon and not thread.is_alive()
    assert "tabnanny" in sys.modules


def test_the_run_log_starts_its_callback_once_after_the_run_and_its_planned_events_are_recorded():
    """The late imports start then: started earlier, they slowed Dagster's recording of the
    planned events (Python, holding the GIL) by ~1 s at 10^7 rows."""
    import logging

    import dagster as dg

    from penguin_pipeline import cli

    @dg.asset
    def one() -> int:
        return 1

    instance, seen = dg.DagsterInstance.ephemeral(), []

    def on_run_start():
        planned = instance.get_event_records(
            dg.EventRecordsFilter(dg.DagsterEventType.ASSET_MATERIALIZATION_PLANNED)
        )
        seen.append((len(instance.get_runs()), len(planned)))

    job = dg.Definitions(assets=[one]).resolve_implicit_global_asset_job_def()
    logger = cli._event_log_to(logging.NullHandler(), on_run_start=on_run_start)
    result = job.with_logger_defs({"run_log_file": logger}).execute_in_process(
        run_config={"loggers": {"run_log_file": {}}}, instance=instance
    )
    assert result.success
    assert seen == [(1, 1)]
