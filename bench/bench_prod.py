"""`make bench-prod`: one backfill of several landing files under the embedded default and under
the production profile with 2 Celery workers, side by side. A benchmark, never part of the tests.

Both take the way a scheduled backfill takes: one run of penguin_job over every landing file (the
schedules' whole-landing range tags, raw_penguins' single-run backfill policy), queued, dequeued
and launched by the daemon, in a fresh instance on fresh data. Sensors and schedules are left out
(bench/bench_prod_defs.py) so that the backfill is the only run. Then the same backfill again, with
nothing new to load (every file skipped by content hash).

- embedded: SQLite instance (dagster.yaml), the daemon, steps in the run's own process;
- profile: PostgreSQL (a fresh database, dropped after), the daemon and the webserver, steps on two
  Celery workers (RabbitMQ, Redis), everything as `make prod-up` starts it;
- lake on S3: the profile on this host with the two-host case's stores: the landing files, the
  board and the reports on S3 (moto's stand-in, reached directly) and the warehouse a DuckLake
  (catalog in a fresh database, data on S3), so that the two-host case minus this one is what the
  link costs, and this one minus the profile what that storage costs;
- two hosts: the same with the two workers on the simulated second host only (`make prod-up
  HOSTS=2` without this host's workers), so that every step crosses the link: Postgres, RabbitMQ,
  Redis and S3 through the forwarders; the landing files, the board and the reports on S3 (moto's
  stand-in) and the warehouse a DuckLake (catalog in a fresh database, data on S3), as HOSTS=2
  has it, since the second host sees no disk of this one. Root only (namespaces); skipped else.

Per backfill: queued -> started (dequeue and launch of the run's process), started -> finished,
the steps' own time (STEP_START to STEP_SUCCESS, summed), and per-step overhead: (started ->
finished - steps' own time) / steps. Peak Postgres connections: pg_stat_activity, sampled every
0.2 s from before the profile starts until it is stopped.
"""

from __future__ import annotations

import io
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from unittest import mock

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import dagster as dg  # noqa: E402
from kombu import Connection  # noqa: E402

from bench.results_file import append_results, machine  # noqa: E402
from penguin_pipeline import hosts, prod, synth  # noqa: E402
from penguin_pipeline.cli import landing_zone  # noqa: E402
from penguin_pipeline.defs.automation import register_new_partitions, whole_landing_tags  # noqa: E402
from penguin_pipeline.settings import DEFAULT_PG_URL, load_settings  # noqa: E402
from penguin_pipeline_tests.processes import (  # noqa: E402
    free_port,
    instance_yaml_elsewhere,
    run_step_spans,
    scratch_database,
)
from penguin_pipeline_tests.prod.conftest import ConnectionSampler  # noqa: E402

FILES = 8
ROWS_PER_FILE = 2000
WORKERS = 2
ROUNDS = int(os.environ.get("BENCH_PROD_ROUNDS", "3"))
BIN = Path(sys.executable).parent


def workspace(folder: Path) -> Path:
    path = folder / "workspace.yaml"
    path.write_text(
        "load_from:\n  - python_module:\n      module_name: bench.bench_prod_defs\n"
        f"      location_name: penguin_pipeline\n      working_directory: {ROOT}\n"
    )
    return path


def seasons() -> dict[str, bytes]:
    profile = synth.shipped_profile()
    return {
        f"season-{year}.csv": synth.season_csv(profile, ROWS_PER_FILE, year, seed=year)
        for year in range(2010, 2010 + FILES)
    }


def land(landing: Path) -> list[str]:
    landing.mkdir(parents=True, exist_ok=True)
    for name, data in seasons().items():
        (landing / name).write_bytes(data)
    return list(seasons())


def land_on_s3(env: dict) -> list[str]:
    """The same files through the landing zone the profile's processes use (S3)."""
    zone = landing_zone(load_settings(env))
    for name, data in seasons().items():
        zone.land(name, data)
    return list(seasons())


def backfill(instance: dg.DagsterInstance, env: dict, ws: Path, names: list[str]) -> dict:
    """Launch one run over every landing file through the daemon; wait; its figures."""
    register_new_partitions(instance, names)
    tags = json.dumps(whole_landing_tags(instance))
    before = {r.run_id for r in instance.get_runs()}
    subprocess.run(
        [str(BIN / "dagster"), "job", "launch", "-w", str(ws), "-j", "penguin_job", "--tags", tags],
        env=env,
        cwd=ROOT,
        check=True,
        capture_output=True,
    )
    [run] = [r for r in instance.get_runs() if r.run_id not in before]
    deadline = time.monotonic() + 600
    while not instance.get_run_by_id(run.run_id).is_finished:
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run.run_id} did not finish within 600 s")
        time.sleep(0.5)
    record = instance.get_run_record_by_id(run.run_id)
    if record.dagster_run.status != dg.DagsterRunStatus.SUCCESS:
        raise RuntimeError(f"run {run.run_id} ended {record.dagster_run.status}")
    spans = run_step_spans(instance, run.run_id)
    steps = sum(end - start for start, end in spans.values())
    running = record.end_time - record.start_time
    return {
        "queued_to_started": record.start_time - record.create_timestamp.timestamp(),
        "started_to_finished": running,
        "wall": record.end_time - record.create_timestamp.timestamp(),
        "steps_own": steps,
        "per_step_overhead": (running - steps) / len(spans),
        "steps": len(spans),
        "per_step": {key: end - start for key, (start, end) in sorted(spans.items())},
    }


def embedded(tmp: Path) -> list[dict]:
    home = tmp / "home"
    home.mkdir(parents=True)
    (home / "dagster.yaml").write_text(instance_yaml_elsewhere())
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PENGUIN_", "DAGSTER_"))}
    env.update(DAGSTER_HOME=str(home), PENGUIN_DATA_DIR=str(tmp / "data"), PYTHONUNBUFFERED="1")
    names = land(tmp / "data" / "raw")
    ws = workspace(tmp)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        # The embedded instance's daemon under a supervisord of its own (its files in tmp/).
        supervised = load_settings({"PENGUIN_PROD_HOME": str(tmp / "supervisor")})
        daemon = {"daemon": [str(BIN / "dagster-daemon"), "run", "-w", str(ws)]}
        prod.start_supervisor(supervised, daemon, env)
        try:
            time.sleep(5)  # the daemon's run queue loop has started
            return [backfill(instance, env, ws, names) for _ in range(2)]
        finally:
            prod.shutdown(supervised)


# The profile's cases: where its workers run, and whether the stores are a lake and S3 (moto).
# "lake on S3" is the two-host case's storage on this host: the two-host case minus it is what
# crossing the link costs; it minus the one-host profile is what the lake and S3 cost.
PROFILE_CASES = {"profile": (1, False), "lake on S3": (1, True), "two hosts": (2, True)}


def profile(tmp: Path, case: str) -> tuple[list[dict], int, int]:
    host_count, lake_on_s3 = PROFILE_CASES[case]
    with scratch_database("penguin_bench") as libpq, scratch_database("penguin_bench_lake") as lake:
        database = libpq.split()[0].removeprefix("dbname=")
        url = DEFAULT_PG_URL.rsplit("/", 1)[0] + f"/{database}"
        return _profile(tmp, database, url, lake if lake_on_s3 else None, host_count)


def _profile(
    tmp: Path, database: str, url: str, lake: str | None, host_count: int
) -> tuple[list[dict], int, int]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PENGUIN_", "DAGSTER_"))}
    env.update(
        PENGUIN_PROD_HOME=str(tmp / "home"),
        PENGUIN_DATA_DIR=str(tmp / "data"),
        PENGUIN_PG_URL=url,
        PENGUIN_CELERY_QUEUE=database,
        PENGUIN_WORKERS=str(WORKERS),
        DAGSTER_PORT=str(free_port()),
    )
    if lake:
        env["PENGUIN_WAREHOUSE"] = f"ducklake:postgres:{lake}"
    env["PENGUIN_HOSTS"] = str(host_count)
    settings = load_settings(env)
    ws = workspace(tmp)
    # The S3 stand-in (set here, so that this process knows where the stores are). One host: its
    # workers, reaching the stand-in directly. Two: the second host's workers only, with their
    # forwarders.
    processes = hosts.on_s3(settings, env, free_port()) if lake else {}
    if host_count == 1:
        processes.pop("forward-s3", None)
    on_host = "worker-h2-" if host_count == 2 else "worker-"
    for name, command in prod.commands(settings).items():
        if name.startswith((on_host, "forward-")):
            processes[name] = command
    processes["daemon"] = [str(BIN / "dagster-daemon"), "run", "-w", str(ws)]
    processes["webserver"] = prod.webserver_command(settings)[:-1] + [str(ws)]
    # This process reads the instance too, and on S3 the steps' compute logs: for this case only
    # (a stand-in's endpoint left in os.environ made the next case take it for the user's own S3,
    # start no stand-in, and fail: the "intermittent" two-round failure of 2026-12-06).
    reading = {k: v for k, v in env.items() if k.startswith("AWS_")}
    reading["PENGUIN_PG_URL"] = prod.dagster_pg_url(url)
    with mock.patch.dict(os.environ, reading):
        names = [] if lake else land(tmp / "data" / "raw")
        try:
            with ConnectionSampler(url) as sampler:
                err = io.StringIO()
                if prod.up(settings, io.StringIO(), err, base_env=env, processes=processes) != 0:
                    raise RuntimeError(err.getvalue())
                if lake and host_count == 1:
                    hosts.make_bucket(env)  # prod.up makes it only with HOSTS=2
                idle = max(sampler.samples[-10:] or [0])
                try:
                    names = names or land_on_s3(prod.process_env(settings, env))
                    with dg.DagsterInstance.from_config(str(settings.prod_home)) as instance:
                        results = [
                            backfill(instance, prod.process_env(settings, env), ws, names)
                            for _ in range(2)
                        ]
                finally:
                    prod.shutdown(settings)
            return results, idle, max(sampler.samples)
        finally:
            with Connection(settings.celery_broker, connect_timeout=5) as con:
                con.default_channel.queue_delete(settings.celery_queue)


def main() -> int:
    server = load_settings({"PENGUIN_PG_URL": DEFAULT_PG_URL.rsplit("/", 1)[0] + "/postgres"})
    problems = [s for s in prod.services(server, create_database=False) if s.problem]
    for service in problems:
        print(f"bench-prod: {service.line()}", file=sys.stderr)
    if problems:
        return 2
    started = datetime.now(UTC)
    print(
        f"bench-prod {started:%Y-%m-%d %H:%M} UTC, {platform.node()}, {os.cpu_count()} cores, "
        f"load average {os.getloadavg()[0]:.1f}; {FILES} landing files x {ROWS_PER_FILE} rows: one "
        f"backfill run over all of them, then the same again with nothing new; {ROUNDS} rounds, "
        "each profile fresh in each, alternating; medians (every round's figure in brackets)",
        flush=True,
    )
    cases = ["embedded", "profile", "lake on S3"] + (["two hosts"] if os.geteuid() == 0 else [])
    if "two hosts" not in cases:
        print("bench-prod: not root, so no second host (network namespaces): three cases only")
    runs: dict[str, list[list[dict]]] = {case: [] for case in cases}
    peaks, idles = [], []
    for _ in range(ROUNDS):
        for case in cases:
            with tempfile.TemporaryDirectory() as tmp:
                if case == "embedded":
                    runs[case].append(embedded(Path(tmp)))
                    continue
                results, idle, peak = profile(Path(tmp), case)
                runs[case].append(results)
                peaks.append(peak)
                idles.append(idle)
    titles = {
        "embedded": "embedded (SQLite, in-process)",
        "profile": f"profile (Postgres, {WORKERS} workers)",
        "lake on S3": "the same, lake + S3 (moto) here",
        "two hosts": f"two hosts ({WORKERS} workers on host 2)",
    }
    print(f"\n{'':32}" + "".join(f"{titles[case]:>36}" for case in cases))
    rows = [
        ("queued -> started (s)", "queued_to_started"),
        ("started -> finished (s)", "started_to_finished"),
        ("wall, queued -> finished (s)", "wall"),
        ("steps' own time (s)", "steps_own"),
        ("overhead per step (s)", "per_step_overhead"),
    ]
    for i, title in enumerate(["first backfill (loads every file)", "again, nothing new"]):
        print(title)
        for label, key in rows:
            cells = [_cell([r[i][key] for r in runs[name]]) for name in cases]
            print(f"  {label:<30}" + "".join(f"{cell:>36}" for cell in cells))
    print(f"{'peak Postgres connections':<32}{'n/a (SQLite)':>36}{max(peaks):>36}")
    print(f"{'  the same, all up and idle':<32}{'':>36}{max(idles):>36}")
    print(f"load average after: {os.getloadavg()[0]:.1f}")
    table = [
        {"case": f"{title}: {label}"}
        | {name: _cell([r[i][key] for r in runs[name]]) for name in cases}
        for i, title in enumerate(["first backfill", "again, nothing new"])
        for label, key in rows
    ]
    table.append({"case": "peak Postgres connections", "embedded": "-", "profile": max(peaks)})
    for step in runs[cases[0]][0][0]["per_step"]:
        cells = {case: _cell([r[0]["per_step"][step] for r in runs[case]]) for case in cases}
        print(f"  first backfill, {step:<14}" + "".join(f"{cell:>36}" for cell in cells.values()))
        table.append({"case": f"first backfill: {step} (s)"} | cells)
    entry = {
        "date": started.isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "the embedded default (SQLite, steps in the run's process), the one-host profile "
        "(its DuckDB file, then a lake with its files on S3), the two-host profile",
        "note": f"{FILES} landing files x {ROWS_PER_FILE} rows, {ROUNDS} rounds, medians "
        "(every round's figure in brackets)",
        "rows": table,
    }
    print(f"results: {append_results('prod', entry)}")
    return 0


def _cell(values: list[float]) -> str:
    every = ", ".join(f"{v:.2f}" for v in values)
    return f"{statistics.median(values):.2f} ({every})"


if __name__ == "__main__":
    sys.exit(main())
