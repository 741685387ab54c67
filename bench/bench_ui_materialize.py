"""`make bench-ui`: "Materialize all" in the Dagster UI -> every asset refreshed, for each way of
launching it that issue 17 weighed.

Each case starts its own `dg dev` (or `dagster dev -w` where the definitions differ) on a throw-away
instance and data folder, lets the sensors take their first tick on an empty landing zone (so no
sensor run competes with the click), lands N files with new individuals and registers them as
partitions (as `penguin-pipeline seed` does), then takes the click path in real Chromium and waits
until every asset has a materialization newer than the click. Never part of the test run.

Cases (BENCH_UI_CASES, comma-separated; BENCH_UI_FILES, e.g. "3,10"). "-30" cases run with
Dagster's own backfill loop (30 s between iterations), the others with the project's instance
(dagster.yaml: `backfill_interval_seconds: 2`, penguin_pipeline/defs/run_queue.py):

  lineage-30          Lineage -> Materialize all -> All -> Launch backfill: an asset backfill run
                      by Dagster's hidden asset job, one run for raw_penguins and one for the
                      downstream assets, which the backfill daemon moves along on its iterations
  lineage-30-threads  the same with the backfill daemon's thread settings (use_threads,
                      num_workers, num_submit_workers)
  lineage-30-policy   the same with BackfillPolicy.single_run on the downstream assets too
  job-30              Jobs -> penguin_job -> Materialize all -> All -> Launch backfill: a job
                      backfill, one run of penguin_job over every partition (its backfill policy)
  lineage, job        the same two click paths with the backfill loop at 2 s
  run                 one run of penguin_job over every partition (range tags) submitted over
                      GraphQL: the floor (queue, run start and the work), no click

Results go to docs/benchmarks/results/ui_materialize.json (the docs draw it) and stdout.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import dagster as dg

from bench.results_file import append_results, machine
from penguin_pipeline import sources
from penguin_pipeline_tests.browser import dagster_pages as ui
from penguin_pipeline_tests.browser.conftest import (
    answers,
    find_chromium,
    landed_files,
    seed,
    stop_group,
)
from penguin_pipeline_tests.browser.refresh import land_files, refreshed_at, runs_since
from penguin_pipeline_tests.processes import (
    BIN,
    ROOT,
    free_port,
    instance_home,
    project_env,
    wait_for,
)

THREADS_YAML = """
backfills:
  use_threads: true
  num_workers: 4
  num_submit_workers: 4
"""

POLICY_MODULE = """
import dagster as dg
import penguin_pipeline.definitions as definitions
from penguin_pipeline.defs import assets

raw, *downstream = assets.ALL_ASSETS
definitions.ALL_ASSETS = [raw] + [
    a.with_attributes(backfill_policy=dg.BackfillPolicy.single_run()) for a in downstream
]
defs = definitions.defs
"""

PROJECT_INTERVAL = "backfill_interval_seconds: 2"
DAGSTER_INTERVAL = "backfill_interval_seconds: 30"


@dataclass
class Result:
    case: str
    files: int
    click_to_refreshed_s: float  # from the "Materialize all" click (or the GraphQL submit)
    launch_to_refreshed_s: float  # from the dialog's launch click
    launched: str  # run or backfill
    runs: int
    jobs: list[str]


class Server:
    def __init__(self, tmp: Path, case: str):
        self.tmp = tmp
        self.home = instance_home(tmp)
        config = (self.home / "dagster.yaml").read_text()
        assert PROJECT_INTERVAL in config, "dagster.yaml no longer sets the backfill loop"
        if "-30" in case:
            config = config.replace(PROJECT_INTERVAL, DAGSTER_INTERVAL)
        if case.endswith("-threads"):
            config += THREADS_YAML
        (self.home / "dagster.yaml").write_text(config)
        self.data = tmp / "data"
        (self.data / "raw").mkdir(parents=True)
        extra = {"PENGUIN_SENSOR_INTERVAL_SECONDS": "3600", "VIRTUAL_ENV": str(Path(sys.prefix))}
        self.env = project_env(self.home, self.data, **extra)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tmp / "dev.log"
        if case.endswith("-policy"):
            (tmp / "policy_defs.py").write_text(POLICY_MODULE)
            (tmp / "workspace.yaml").write_text(
                "load_from:\n  - python_file:\n      relative_path: policy_defs.py\n"
                "      location_name: penguin_pipeline\n"
                f"      working_directory: {tmp}\n"
            )
            command = [str(BIN / "dagster"), "dev", "-w", str(tmp / "workspace.yaml")]
        else:
            command = [str(BIN / "dg"), "dev"]
        with open(self.log, "wb") as out:
            self.process = subprocess.Popen(
                [*command, "-h", "127.0.0.1", "-p", str(self.port)],
                env=self.env,
                cwd=ROOT,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def wait_ready(self) -> None:
        wait_for(lambda: answers(f"{self.url}/server_info"), timeout=180, what="the UI")
        # Every sensor's first tick has seen the empty landing zone: none runs for the files.
        wait_for(
            lambda: (
                self.log.read_text(errors="replace").count("skipped: no new or changed")
                >= len(sources.SOURCES)
            ),
            timeout=120,
            what="the sensors' first ticks",
        )

    def stop(self) -> None:
        stop_group(self.process)


def click(server: Server, case: str, browser) -> ui.Launched:
    context = browser.new_context(viewport={"width": 1600, "height": 1000})
    try:
        page = context.new_page()
        ui.open_ui(page, server.url)
        if case.startswith("job"):
            ui.open_job(page, "penguin_job")
        else:
            ui.go_to(page, "Lineage")
        return ui.materialize_all(page)
    except Exception:
        page.screenshot(path=str(ROOT / "bench" / "results" / f"ui-{case}-failed.png"))
        raise
    finally:
        context.close()


def submit_run(server: Server) -> ui.Launched:
    from dagster_graphql import DagsterGraphQLClient

    from penguin_pipeline.defs.automation import whole_landing_tags

    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        tags = whole_landing_tags(instance)
    client = DagsterGraphQLClient("127.0.0.1", port_number=server.port, timeout=60)
    now = time.time()
    run_id = client.submit_job_execution("penguin_job", tags=tags)
    return ui.Launched("run", run_id[:8], now, now)


def measure(case: str, counts: list[int], browser) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        server = Server(Path(tmp), case)
        try:
            server.wait_ready()
            landed = 0
            for count in counts:
                land_files(server.data, count, first=landed)
                landed = count
                seed(server.env)  # as `make dev`: every landing file a raw_penguins partition
                assert len(landed_files(server.data)) == count
                results.append(measure_click(server, case, count, browser))
                print(json.dumps(asdict(results[-1])), flush=True)
        except Exception:
            shutil.copyfile(server.log, ROOT / "bench" / "results" / f"ui-{case}-dev.log")
            raise
        finally:
            server.stop()
    return results


def measure_click(server: Server, case: str, count: int, browser) -> Result:
    launched = submit_run(server) if case == "run" else click(server, case, browser)
    with dg.DagsterInstance.from_config(str(server.home)) as instance:
        done = wait_for(
            lambda: refreshed_at(instance, launched.clicked_at),
            timeout=400,
            interval=0.25,
            what=f"{case}: every asset refreshed",
        )
        wait_for(
            lambda: (
                all(r.is_finished for r in instance.get_runs())
                and all(b.status.value != "REQUESTED" for b in instance.get_backfills())
            ),
            timeout=120,
            what="runs and backfills finished",
        )
        runs = runs_since(instance, launched.clicked_at)
    return Result(
        case,
        count,
        round(done - launched.clicked_at, 1),
        round(done - launched.launched_at, 1),
        launched.kind,
        len(runs),
        sorted({r.job_name for r in runs}),
    )


def main() -> None:
    from playwright.sync_api import sync_playwright

    cases = os.environ.get("BENCH_UI_CASES", "job,lineage,job-30,run").split(",")
    counts = [int(n) for n in os.environ.get("BENCH_UI_FILES", "3,10").split(",")]
    out = ROOT / "bench" / "results"
    out.mkdir(exist_ok=True)
    results = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=find_chromium(), headless=True)
        try:
            for case in cases:
                results += measure(case, counts, browser)
        finally:
            browser.close()
    load = os.getloadavg()
    for r in results:
        print(
            f"{r.case:16} {r.files:3} files: click -> refreshed {r.click_to_refreshed_s:5.1f} s "
            f"(launch click -> {r.launch_to_refreshed_s:5.1f} s), {r.launched}, {r.runs} run(s) "
            f"of {', '.join(r.jobs)}"
        )
    entry = {
        "date": datetime.now(UTC).isoformat(timespec="minutes"),
        "machine": machine(),
        "peer": "the other ways of launching: lineage, job-30 (Dagster's 30 s loop), run (GraphQL)",
        "note": f"click on Materialize all -> every asset refreshed; load average {load[0]:.1f}",
        "rows": [asdict(r) for r in results],
    }
    print(f"results: {append_results('ui_materialize', entry)}")


if __name__ == "__main__":
    main()
