"""`make bench-freshness`: new data to a new pinned model, as a user sees it.

`make dev`'s own processes (penguin_pipeline.dev: `dg dev`, its webserver, daemon and code
servers) run against a throw-away DAGSTER_HOME and data folder, started just before, as a user
starts them. Each drop is `penguin-pipeline new-data` (what `make new-data` runs) in a process of
its own, at a random point of the landing sensor's cycle. A third process,
bench/freshness_watch.py, polls the landing folder and the board every 0.2 s and prints when it
first sees the new file and the new penguin_model version: the figure is the time between the two,
and the time from the command's start too. Where each run's time went (sensor and queue, the run's
process starting, each step) comes from the instance's run records. Never part of the test run.
"""

from __future__ import annotations

import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg
import requests

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline.settings import load_settings  # noqa: E402
from penguin_pipeline_tests.processes import (  # noqa: E402
    BIN,
    _stop,
    free_port,
    instance_home,
    project_env,
    start_logged,
    wait_for,
)

DROPS = int(os.environ.get("BENCH_DROPS", "5"))
TARGET_S = 15
MODEL_STEP = "penguin_model"


class Watcher:
    """bench/freshness_watch.py in its own process; its lines as they come."""

    def __init__(self, env: dict, log: Path):
        command = [sys.executable, str(ROOT / "bench" / "freshness_watch.py")]
        self.process = subprocess.Popen(
            command, env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=open(log, "wb"), text=True
        )

    def next(self, key: str, timeout: float = 300) -> dict:
        """The next line that reports `key` (landed or version)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                raise SystemExit("the watcher stopped: see its log")
            event = json.loads(line)
            if key in event:
                return event
        raise TimeoutError(f"no new {key} within {timeout:.0f} s")

    def stop(self) -> None:
        self.process.kill()
        self.process.wait()


def start_dev(env: dict, port: int, log: Path) -> subprocess.Popen:
    # As `make dev` runs it: uv run puts the environment's bin, where `dg` is, first on PATH.
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env['PATH']}"}
    module = ["-m", "penguin_pipeline.dev", "-h", "127.0.0.1", "-p", str(port)]
    dev = start_logged([str(BIN / "python"), *module], env, log)

    def answers() -> bool:
        try:
            return requests.get(f"http://127.0.0.1:{port}/server_info", timeout=1).ok
        except requests.RequestException:
            return False

    wait_for(answers, timeout=180, interval=0.5, what="the Dagster UI of make dev")
    return dev


def phases(home: Path, landed_at: float, seen_at: float) -> dict:
    """Where the newest run's time went: the file seen to its run queued (the sensor), queued to
    the run's process started (queue, launch, code loading), started to penguin_model's end, and
    from then to the watcher listing the version; each step's own seconds."""
    with dg.DagsterInstance.from_config(str(home)) as instance:
        run = instance.get_runs(limit=1)[0]
        queued = instance.get_run_records(dg.RunsFilter(run_ids=[run.run_id]))[0].create_timestamp
        started = instance.get_run_stats(run.run_id).start_time
        steps = {s.step_key: s for s in instance.get_run_step_stats(run.run_id) if s.end_time}
    model_done = steps[MODEL_STEP].end_time
    return {
        "landed_to_queued": round(queued.timestamp() - landed_at, 2),
        "queued_to_started": round(started - queued.timestamp(), 2),
        "started_to_model_pinned": round(model_done - started, 2),
        "pinned_to_listed": round(seen_at - model_done, 2),
        "steps": {key: round(s.end_time - s.start_time, 2) for key, s in steps.items()},
    }


def main() -> None:
    interval = str(load_settings().sensor_interval_seconds)  # the default, or the environment's
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        home = instance_home(tmp)
        env = project_env(home, tmp / "data", PENGUIN_SENSOR_INTERVAL_SECONDS=interval)
        (tmp / "data").mkdir()
        cli = str(BIN / "penguin-pipeline")
        subprocess.run([cli, "seed"], env=env, cwd=ROOT, check=True, capture_output=True)
        watcher = Watcher(env, tmp / "watch.log")
        dev = start_dev(env, free_port(), tmp / "dev.log")
        results = []
        try:
            watcher.next("landed")  # the seeded file
            first = watcher.next("version")
            print(f"make dev up; first version {first['version']}", flush=True)
            cycle = random.Random(7)
            for drop in range(DROPS):
                time.sleep(cycle.uniform(0, int(interval)))  # anywhere in the sensor's cycle
                command_at = time.time()
                subprocess.run(
                    [cli, "new-data"], env=env, cwd=ROOT, check=True, capture_output=True
                )
                landed = watcher.next("landed")
                version = watcher.next("version")
                result = {
                    "landed_to_listed_s": round(version["at"] - landed["at"], 2),
                    "command_to_listed_s": round(version["at"] - command_at, 2),
                    **phases(home, landed["at"], version["at"]),
                }
                results.append(result)
                print(f"drop {drop + 1}: {json.dumps(result)}", flush=True)
        finally:
            _stop(dev)
            watcher.stop()
    report(results, int(interval))


def drop_row(number: int, result: dict) -> dict:
    steps = ", ".join(f"{key} {seconds:g}" for key, seconds in result["steps"].items())
    return {"drop": number, **{k: v for k, v in result.items() if k != "steps"}, "steps (s)": steps}


def report(results: list[dict], interval: int) -> None:
    latencies = [r["landed_to_listed_s"] for r in results]
    median = statistics.median(latencies)
    print(
        f"median file landed -> version listed on the board: {median:.1f} s over {len(results)} "
        f"drops (min {min(latencies):.1f}, max {max(latencies):.1f}; from the command's start "
        f"{statistics.median(r['command_to_listed_s'] for r in results):.1f} s; sensor interval "
        f"{interval} s; target <= {TARGET_S} s)"
    )
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": f"the target, {TARGET_S} s",
        "note": (
            f"median {median:.1f} s from a file landed to its version listed on the board "
            f"(make dev's processes; new-data and a 0.2 s watcher in processes of their own; "
            f"sensor interval {interval} s)"
        ),
        "median_s": round(median, 1),
        "target_s": TARGET_S,
        "rows": [drop_row(number, r) for number, r in enumerate(results, start=1)],
    }
    print(f"results: {append_results('freshness', entry)}")


if __name__ == "__main__":
    main()
