"""The run queue, and how soon the daemon acts on a backfill ("Materialize all" in the UI).

With more than one landing file, "Materialize all" in the UI asks which raw_penguins partitions and,
for several, creates a backfill: from penguin_job's page one run of penguin_job over every
partition (its backfill policy is single-run). The daemon that submits a backfill's runs sleeps
30 s between its iterations (`DEFAULT_DAEMON_INTERVAL_SECONDS` in `dagster._daemon.controller`),
and no instance setting changes it (dagster-io/dagster#11649, open): a click waited 0-30 s before
anything ran, and a Lineage-page backfill, which takes three iterations, 60-90 s.

`RunQueue` is Dagster's QueuedRunCoordinator with one more setting, `backfill_interval_seconds`,
that shortens that sleep in the process that loads the instance. The daemon builds the run
coordinator before it starts its daemons (`DagsterInstance.get_required_daemon_types`), so its
backfill loop, which reads the interval once when it starts, gets the new value. A test times a
backfill on a real daemon (penguin_pipeline_tests/test_run_queue.py): an upgrade that moves the
constant fails it loudly instead of silently going back to 30 s.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import dagster as dg
from dagster._core.run_coordinator import QueuedRunCoordinator
from dagster._daemon import controller

DAGSTER_BACKFILL_INTERVAL_SECONDS = controller.DEFAULT_DAEMON_INTERVAL_SECONDS


class RunQueue(QueuedRunCoordinator):
    """QueuedRunCoordinator, plus `backfill_interval_seconds` for the daemon's backfill loop."""

    backfill_interval_seconds: int = DAGSTER_BACKFILL_INTERVAL_SECONDS

    @classmethod
    def config_type(cls) -> dict:
        return {
            **super().config_type(),
            "backfill_interval_seconds": dg.Field(
                int,
                is_required=False,
                description="Seconds the daemon's backfill loop sleeps between iterations "
                f"(Dagster's own: {DAGSTER_BACKFILL_INTERVAL_SECONDS}).",
            ),
        }

    @classmethod
    def from_config_value(cls, inst_data, config_value: Mapping[str, Any]) -> RunQueue:
        config = dict(config_value)
        interval = config.pop("backfill_interval_seconds", None)
        queue = super().from_config_value(inst_data, config)
        if interval is not None:
            if interval < 1:
                raise dg.DagsterInvalidConfigError(
                    f"backfill_interval_seconds must be at least 1, got {interval}", [], None
                )
            queue.backfill_interval_seconds = interval
            controller.DEFAULT_DAEMON_INTERVAL_SECONDS = interval
        return queue
