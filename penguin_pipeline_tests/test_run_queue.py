"""The project's run queue: Dagster's QueuedRunCoordinator, backfills picked up within 2 s."""

from __future__ import annotations

import inspect

import dagster as dg
import pytest
from dagster._daemon import backfill, controller

from penguin_pipeline.defs.run_queue import DAGSTER_BACKFILL_INTERVAL_SECONDS, RunQueue

from .processes import instance_yaml_elsewhere


@pytest.fixture
def dagster_interval(monkeypatch):
    """Dagster's own interval while the test runs, restored afterwards."""
    monkeypatch.setattr(controller, "DEFAULT_DAEMON_INTERVAL_SECONDS", 30)


def project_instance(tmp_path) -> dg.DagsterInstance:
    (tmp_path / "dagster.yaml").write_text(instance_yaml_elsewhere())
    return dg.DagsterInstance.from_config(str(tmp_path))


def test_the_project_instance_queues_runs_and_picks_up_backfills_within_2_s(
    tmp_path, dagster_interval
):
    assert DAGSTER_BACKFILL_INTERVAL_SECONDS == 30
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


def test_dagster_backfill_loop_still_reads_the_interval_where_it_is_set():
    """An upgrade of Dagster that moves the interval fails here instead of silently going back to
    30 s between backfill iterations (a UI "Materialize all" would wait up to 30 s again)."""
    loop = inspect.getsource(backfill.execute_backfill_iteration_loop)
    assert "from dagster._daemon.controller import DEFAULT_DAEMON_INTERVAL_SECONDS" in loop
    assert "DEFAULT_DAEMON_INTERVAL_SECONDS - loop_duration" in loop


def test_a_backfill_interval_below_one_second_is_refused(tmp_path, dagster_interval):
    config = instance_yaml_elsewhere()
    (tmp_path / "dagster.yaml").write_text(
        config.replace("backfill_interval_seconds: 2", "backfill_interval_seconds: 0")
    )
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        with pytest.raises(dg.DagsterInvalidConfigError, match="at least 1"):
            instance.run_coordinator  # noqa: B018 (built on first use)
    assert controller.DEFAULT_DAEMON_INTERVAL_SECONDS == 30
