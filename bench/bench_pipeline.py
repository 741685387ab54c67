"""`make bench`: the main job, run as `make run` runs it (after set-up), beside the book's plain lab script.

Both are timed as whole processes (interpreter start, imports, work), alternating, in one run on
the same machine; the figure is the ratio of medians. Never part of the test run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
REPEATS = int(os.environ.get("BENCH_REPEATS", "5"))
TARGET_RATIO = 2.5


def timed(cmd: list[str], env: dict) -> float:
    start = time.perf_counter()
    subprocess.run(cmd, env=env, cwd=ROOT, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def pipeline_env(tmp: Path) -> dict:
    home = tmp / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    (home / "dagster.yaml").write_text((ROOT / "instance" / "dagster.yaml").read_text())
    env = {k: v for k, v in os.environ.items() if not k.startswith("PENGUIN_")}
    env.update(DAGSTER_HOME=str(home), PENGUIN_DATA_DIR=str(tmp / "data"))
    # As `make setup` does: the instance's SQLite storage exists before the first `make run`.
    subprocess.run([str(BIN / "python"), "-c", "import dagster; dagster.DagsterInstance.get().dispose()"],
                   env=env, check=True, stderr=subprocess.DEVNULL)
    return env


def main() -> None:
    results = {"first run": ([], []), "re-run (nothing new)": ([], [])}
    subprocess.run([str(BIN / "python"), "-c", "import matplotlib.pyplot"], check=True)  # font cache, once
    for _ in range(REPEATS):
        with tempfile.TemporaryDirectory() as ours, tempfile.TemporaryDirectory() as plain:
            env = pipeline_env(Path(ours))
            run = [str(BIN / "penguin-pipeline"), "run"]
            lab = [str(BIN / "python"), str(ROOT / "bench" / "plain_lab.py"), plain]
            results["first run"][0].append(timed(run, env))
            results["first run"][1].append(timed(lab, dict(os.environ)))
            results["re-run (nothing new)"][0].append(timed(run, env))
            results["re-run (nothing new)"][1].append(timed(lab, dict(os.environ)))
    rows = []
    for case, (pipeline, lab) in results.items():
        ours, peer = statistics.median(pipeline), statistics.median(lab)
        rows.append({"case": case, "pipeline_s": round(ours, 2), "plain_lab_s": round(peer, 2),
                     "ratio": round(ours / peer, 2)})
    report = {"date": datetime.now(timezone.utc).strftime("%Y-%m-%d"), "machine": f"{os.cpu_count()} cores, "
              f"{platform.machine()}, Python {platform.python_version()}", "repeats": REPEATS,
              "target_ratio": TARGET_RATIO, "rows": rows}
    print(f"{'case':24} {'pipeline (s)':>13} {'plain lab (s)':>14} {'ratio':>6}  (median of {REPEATS}, target <= {TARGET_RATIO}x)")
    for row in rows:
        print(f"{row['case']:24} {row['pipeline_s']:>13} {row['plain_lab_s']:>14} {row['ratio']:>6}")
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    (out / "pipeline.json").write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
