"""The embedded instance's SQLite history, written without a disk flush per commit."""

from __future__ import annotations

import dagster as dg

from penguin_pipeline.defs.instance import write_history_without_flushes

OFF = 0  # PRAGMA synchronous: 0 OFF, 1 NORMAL, 2 FULL (SQLite's default)


def synchronous(instance: dg.DagsterInstance) -> int:
    with instance.run_storage.connect() as connection:
        return connection.exec_driver_sql("PRAGMA synchronous").scalar()


def test_the_local_instance_skips_flushes_and_still_records_runs(tmp_path):
    with dg.DagsterInstance.local_temp(str(tmp_path)) as instance:
        write_history_without_flushes()
        write_history_without_flushes()  # once is enough: a second call adds nothing
        assert synchronous(instance) == OFF

        @dg.asset
        def one() -> int:
            return 1

        result = dg.materialize([one], instance=instance)
        assert result.success
        assert instance.get_latest_materialization_event(dg.AssetKey("one")) is not None
    with dg.DagsterInstance.from_config(str(tmp_path)) as reopened:  # what a later process sees
        assert reopened.get_latest_materialization_event(dg.AssetKey("one")) is not None
