"""`make bench`: `make run` as a user runs it, on fresh data, beside the book's plain lab script.

Ours is `make run` itself (make, its set-up checks, uv run, the command) with a fresh data folder
and a fresh Dagster instance each time (as after `make clean-data`), the environment already
installed; then `make run` again with nothing new. The peer is `python bench/plain_lab.py`. Both are
timed as whole processes, alternating, in one run on the same machine; the figure is the ratio of
medians. Never part of the test run.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline_tests.processes import instance_yaml_elsewhere  # noqa: E402

BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
TARGET_RATIO = 2.5


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(
        cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    return time.perf_counter() - start


def user_env() -> dict:
    """The caller's environment without what `make bench` itself put there (make's flags,
    DAGSTER_HOME)."""
    ours = (
        "MAKEFLAGS",
        "MFLAGS",
        "MAKELEVEL",
        "MAKEOVERRIDES",
        "DAGSTER_HOME",
        "UV_PROJECT_ENVIRONMENT",
        "UV_COMPILE_BYTECODE",
        "VIRTUAL_ENV",
    )
    return {k: v for k, v in os.environ.items() if k not in ours and not k.startswith("PENGUIN_")}


def make_run(tmp: Path) -> tuple[list[str], dict]:
    """`make run` with its data folder (made by the command) and a fresh Dagster instance in tmp:
    the project's dagster.yaml without its project-only storage paths."""
    home = tmp / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
    return (
        [
            shutil.which("make") or "make",
            "-C",
            str(ROOT),
            "run",
            f"DAGSTER_HOME={tmp / 'dagster_home'}",
        ],
        {**user_env(), "PENGUIN_DATA_DIR": str(tmp / "data")},
    )


def main() -> None:
    results = {"first run": ([], []), "re-run (nothing new)": ([], [])}
    subprocess.run(
        [str(BIN / "python"), "-c", "import matplotlib.pyplot"], check=True
    )  # font cache, once
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as plain:
            run, env = make_run(Path(ours))
            lab = [str(BIN / "python"), str(ROOT / "bench" / "plain_lab.py"), plain]
            results["first run"][0].append(timed(run, env))
            results["first run"][1].append(timed(lab, user_env()))
            results["re-run (nothing new)"][0].append(timed(run, env))
            results["re-run (nothing new)"][1].append(timed(lab, user_env()))
    rows = []
    for case, (pipeline, lab) in results.items():
        ours, peer = statistics.median(pipeline), statistics.median(lab)
        rows.append(
            {
                "case": case,
                "pipeline_s": round(ours, 2),
                "plain_lab_s": round(peer, 2),
                "ratio": round(ours / peer, 2),
            }
        )
    report = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "the book's lab as a plain script (bench/plain_lab.py)",
        "repeats": REPEATS,
        "target_ratio": TARGET_RATIO,
        "rows": rows,
        "plot": {"x": "case", "y": ["pipeline_s", "plain_lab_s"], "ylabel": "seconds"},
    }
    print(
        f"{'case':24} {'make run (s)':>13} {'plain lab (s)':>14} {'ratio':>6}  "
        f"(median of {REPEATS}, target <= {TARGET_RATIO}x)"
    )
    for row in rows:
        print(
            f"{row['case']:24} {row['pipeline_s']:>13} {row['plain_lab_s']:>14} {row['ratio']:>6}"
        )
    print(f"results: {append_results('pipeline', report)}")


if __name__ == "__main__":
    main()
