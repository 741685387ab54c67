"""Two runs at once (schedule + sensor, several files landing together) never corrupt or lose
data.
"""

from __future__ import annotations

import os
import subprocess
import sys

import dagster as dg
import duckdb
import pytest

from .conftest import lter_lines, write_lines
from .processes import (
    RUN_PARTITION,
    alive,
    instance_home,
    project_env,
    run_at_once,
    run_step_spans,
    wait_for,
)

pytestmark = pytest.mark.integration


def season(path, study: str, lines: list[str]):
    body = [line.replace("PAL0708", study) for line in lines]
    return write_lines(path, [lter_lines()[0]] + body)


def test_two_runs_at_once_each_load_their_file_exactly_once(tmp_path):
    home = instance_home(tmp_path)
    data = tmp_path / "data"
    landing = data / "raw"
    landing.mkdir(parents=True)
    # Alternate rows: each file holds all three species, so whichever run fits the model first
    # (one file loaded, or both) clears the R^2 floor. Split by position, a file held only Adelie
    # penguins and the run that fitted on it alone failed its r2_floor check, as it should.
    season(landing / "a.csv", "PAL1011", lter_lines()[1::2])
    season(landing / "b.csv", "PAL1112", lter_lines()[2::2])
    env = project_env(home, data)
    dg.DagsterInstance.from_config(
        str(home)
    ).dispose()  # create the SQLite storage once, not in a race
    run_at_once([[sys.executable, "-c", RUN_PARTITION, name] for name in ("a.csv", "b.csv")], env)

    # "At once" is checked, not assumed: each run's steps, from its first step's start to its last
    # step's end, overlapped the other's (sequential runs would pass every count below too).
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = [record.dagster_run.run_id for record in instance.get_run_records()]
        assert len(runs) == 2
        spans = []
        for run_id in runs:
            steps = run_step_spans(instance, run_id).values()
            spans.append((min(b for b, _ in steps), max(e for _, e in steps)))
    (first_start, first_end), (second_start, second_end) = sorted(spans)
    print(
        f"runs: 0..{first_end - first_start:.2f} s and {second_start - first_start:.2f}..", end=""
    )
    print(f"{second_end - first_start:.2f} s")
    assert second_start < first_end, "the second run's steps began after the first run's ended"

    with duckdb.connect(str(data / "penguins.duckdb"), read_only=True) as con:
        per_file = dict(
            con.execute("SELECT source_file, count(*) FROM raw_penguins GROUP BY 1").fetchall()
        )
        assert per_file == {"a.csv": 172, "b.csv": 172}
        assert con.execute("SELECT count(*) FROM penguins").fetchall() == [(344,)]
        assert con.execute("SELECT sum(n_penguins) FROM penguin_summary").fetchall() == [(344,)]
        ledger = con.execute(
            "SELECT source_file, rows_loaded FROM landed_files ORDER BY 1"
        ).fetchall()
        assert ledger == [("a.csv", 172), ("b.csv", 172)]


def test_runs_started_at_once_never_outlive_a_wait_that_gives_up(tmp_path):
    """A run still going when the wait ends badly (here its timeout) is killed with its children,
    so it cannot write beside the next test."""
    child = tmp_path / "child.pid"
    script = (
        "import subprocess, sys, time\n"
        "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(120)'])\n"
        f"open({str(child)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(120)\n"
    )
    with pytest.raises(subprocess.TimeoutExpired):
        run_at_once([[sys.executable, "-c", script]], dict(os.environ), timeout=5)
    pid = int(wait_for(lambda: child.exists() and child.read_text(), what="the child's pid"))
    wait_for(lambda: not alive(pid), timeout=30, what="the run's child killed")
