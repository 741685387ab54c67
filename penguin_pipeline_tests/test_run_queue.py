"""The project's run queue: Dagster's QueuedRunCoordinator, and a backfill's first run starting
within seconds on a real daemon (Dagster's own backfill loop sleeps 30 s)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import dagster as dg
import pytest
from dagster._daemon import controller

from penguin_pipeline import sources
from penguin_pipeline.defs.automation import register_new_partitions
from penguin_pipeline.defs.run_queue import RunQueue

from .conftest import lter_lines, write_lines
from .processes import instance_home, instance_yaml_elsewhere, project_env, running_daemon, wait_for

# Against a hang, and below Dagster's own 30 s: backfill B is submitted just after the iteration
# that picked up A, so with that interval it would wait about 30 s (measured: see the test).
BACKFILL_PICKUP_BOUND_SECONDS = 15
SENSORS_SKIPPED = "skipped: no new or changed"  # a landing sensor's tick on an empty landing zone
LAUNCH_BACKFILL = """
mutation ($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
  }
}
"""


@pytest.fixture
def dagster_interval(monkeypatch):
    """Dagster's own interval while the test runs, restored afterwards."""
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)


def project_instance(tmp_path) -> dg.DagsterInstance:
    (tmp_path / "dagster.yaml").write_text(instance_yaml_elsewhere())
    return dg.DagsterInstance.from_config(str(tmp_path))


def test_the_project_instance_builds_its_run_queue_with_the_intervals_and_concurrency_set(
    tmp_path, dagster_interval
):
    with project_instance(tmp_path) as instance:
        # What the daemon does before it starts its daemons: this builds the run coordinator.
        daemons = instance.get_required_daemon_types()
        queue = instance.run_coordinator
        assert isinstance(queue, RunQueue)
        assert (queue.dequeue_interval_seconds, queue.backfill_interval_seconds) == (1, 2)
        assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 2
        assert {"BACKFILL", "QUEUED_RUN_COORDINATOR"} <= set(daemons)
        # The instance's `concurrency` settings still reach the queue.
        assert instance.get_concurrency_config().run_queue_config.max_concurrent_runs == 4


def test_a_backfill_interval_below_one_second_is_refused(tmp_path, dagster_interval):
    config = instance_yaml_elsewhere()
    (tmp_path / "dagster.yaml").write_text(
        config.replace("backfill_interval_seconds: 2", "backfill_interval_seconds: 0")
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match="at least 1"):
            instance.run_coordinator  # noqa: B018 (built on first use)
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 30


@pytest.mark.integration
def test_a_backfill_launched_as_the_ui_does_starts_its_first_run_within_seconds_on_the_daemon(
    tmp_path, monkeypatch, capsys
):
    """A backfill of raw_penguins over two landing files, through the UI's GraphQL mutation, on
    `dagster-daemon run` with the project's instance: its run starts within seconds.

    A second backfill, submitted as soon as the first one's run started, is picked up (its run
    queued) within seconds too, though it waits one whole sleep of the daemon's backfill loop:
    about 30 s, failing here, should Dagster's own interval be back (an upgrade that moves what
    defs/run_queue.py patches). Its run then waits for the first one's `duckdb` slot, so only its
    queuing is timed.
    """
    from dagster_graphql.test.utils import define_out_of_process_context

    home, data = instance_home(tmp_path), tmp_path / "data"
    (data / "raw").mkdir(parents=True)
    env = project_env(home, data, PENGUIN_SENSOR_INTERVAL_SECONDS="3600")
    for name, value in env.items():
        monkeypatch.setenv(name, value)  # the GraphQL context's code server loads with these
    log = tmp_path / "daemon.log"
    with (
        dg.DagsterInstance.from_config(str(home)) as instance,
        running_daemon(home, env, log),
        define_out_of_process_context(str(home / "workspace.yaml"), None, instance) as graphql,
    ):
        # Files land after the sensors' first tick, so no sensor run competes with the backfills.
        wait_for(
            lambda: log.read_text(errors="replace").count(SENSORS_SKIPPED) >= len(sources.SOURCES),
            timeout=90,
            what="every landing sensor's first tick",
        )
        partitions = land_two_files(data / "raw", instance)
        first = launch_backfill(graphql, partitions)
        first_queued = seconds_to_first(instance, first, dg.DagsterEventType.RUN_ENQUEUED)
        first_started = seconds_to_first(instance, first, dg.DagsterEventType.RUN_STARTING)
        second = launch_backfill(graphql, partitions)
        second_queued = seconds_to_first(instance, second, dg.DagsterEventType.RUN_ENQUEUED)
    with capsys.disabled():
        print(
            f"\n  backfill submitted -> its run queued {first_queued:.1f} s, STARTING "
            f"{first_started:.1f} s; the next one's run queued {second_queued:.1f} s"
        )
    assert max(first_started, second_queued) <= BACKFILL_PICKUP_BOUND_SECONDS, (
        f"{first_started:.1f} s, {second_queued:.1f} s: has Dagster's backfill loop gone back to "
        "its 30 s sleep? (penguin_pipeline/defs/run_queue.py sets it)"
    )


def land_two_files(landing, instance) -> list[str]:
    header, *rows = lter_lines()
    names = [f"part-{i}.csv" for i in range(2)]
    for i, name in enumerate(names):
        write_lines(landing / name, [header] + rows[i::2])
    register_new_partitions(instance, names)
    return names


def launch_backfill(graphql, partitions: list[str]) -> str:
    """raw_penguins over `partitions`: the mutation the UI sends from the asset's Materialize
    dialog; the backfill's id."""
    from dagster_graphql.test.utils import execute_dagster_graphql

    params = {"assetSelection": [{"path": ["raw_penguins"]}], "partitionNames": partitions}
    # It runs the query with asyncio.run, which refuses a thread where an event loop is running
    # (one an earlier test in this process left behind, Playwright's): a thread of its own.
    with ThreadPoolExecutor(1) as thread:
        result = thread.submit(
            execute_dagster_graphql, graphql, LAUNCH_BACKFILL, {"params": params}
        ).result()
    launched = result.data["launchPartitionBackfill"]
    assert launched["__typename"] == "LaunchBackfillSuccess", (launched, result.errors)
    return launched["backfillId"]


def seconds_to_first(instance, backfill_id: str, kind: dg.DagsterEventType) -> float:
    """Seconds from the backfill's submission to the first `kind` event of one of its runs
    (RUN_ENQUEUED: the backfill daemon picked it up; RUN_STARTING: the run queue handed the run
    to the launcher), as the instance recorded both; waits for that event."""

    def first() -> float | None:
        runs = instance.get_runs(dg.RunsFilter(tags={"dagster/backfill": backfill_id}))
        times = [e.timestamp for run in runs for e in instance.all_logs(run.run_id, of_type=kind)]
        return min(times, default=None)

    when = wait_for(first, timeout=60, interval=0.1, what=f"{kind.value} of backfill {backfill_id}")
    return when - instance.get_backfill(backfill_id).backfill_timestamp
