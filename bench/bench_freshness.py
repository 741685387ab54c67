"""`make bench-freshness`: median time from a file landing to its new model version being pinned.

The real Dagster daemon runs against a throw-away instance and data folder with the landing
sensor's default interval (settings.py; PENGUIN_SENSOR_INTERVAL_SECONDS to try another); each drop
is a new synthetic field season. Never part of the test run.
"""

from __future__ import annotations

import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from penguin_pipeline.cli import new_season
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards, landing
from penguin_pipeline_tests.processes import instance_home, project_env, running_daemon, wait_for

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_file import append_results, machine  # noqa: E402

DROPS = int(os.environ.get("BENCH_DROPS", "5"))
TARGET_S = 15


def model_version(settings) -> str | None:
    try:
        facts = boards.latest_model_facts(boards.board_from_url(settings.board_url))
    except Exception:  # mid-write while the daemon's run pins
        return None
    return facts and facts["version"]


def main() -> None:
    interval = str(load_settings().sensor_interval_seconds)  # the default, or the environment's
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = instance_home(tmp)
        env = project_env(home, tmp / "data", PENGUIN_SENSOR_INTERVAL_SECONDS=interval)
        settings = load_settings(env)
        (tmp / "data" / "raw").mkdir(parents=True)
        shutil.copyfile(landing.packaged_lter_file(), tmp / "data" / "raw" / "penguins-raw.csv")
        latencies = []
        with running_daemon(home, env, tmp / "daemon.log"):
            version = wait_for(
                lambda: model_version(settings), timeout=300, what="first model version"
            )
            phases = random.Random(7)
            for drop in range(DROPS):
                # Land at a random point of the sensor's cycle, as real files do.
                time.sleep(phases.uniform(0, int(interval)))
                landed_at = time.monotonic()
                new_season(rows=150, seed=drop, settings=settings)
                version = wait_for(
                    lambda last=version: (v := model_version(settings)) and v > last and v,
                    timeout=300,
                    interval=0.2,
                    what=f"model version after drop {drop + 1}",
                )
                latencies.append(time.monotonic() - landed_at)
                print(
                    f"drop {drop + 1}: new version {version} after {latencies[-1]:.1f} s",
                    flush=True,
                )
    median = statistics.median(latencies)
    print(
        f"median landing -> pinned: {median:.1f} s over {DROPS} drops "
        f"(min {min(latencies):.1f}, max {max(latencies):.1f}; "
        f"sensor interval {interval} s; target <= {TARGET_S} s)"
    )
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": f"the target, {TARGET_S} s",
        "sensor_interval_s": int(interval),
        "drops": DROPS,
        "latencies_s": [round(x, 1) for x in latencies],
        "median_s": round(median, 1),
        "target_s": TARGET_S,
    }
    print(f"results: {append_results('freshness', entry)}")


if __name__ == "__main__":
    main()
