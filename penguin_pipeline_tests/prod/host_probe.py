"""A code location for the two-host test: one asset that records where it executed and what of
this host's files it could see. Loaded by the test's webserver and daemon, and by the workers on
the second host (the code is visible there, as an image would carry it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

from penguin_pipeline.defs.workers import celery_workers_executor

# The test writes this file into its data folder before the run.
MARKER = "visible-only-here.txt"


@dg.asset
def where_it_ran() -> dg.MaterializeResult:
    """The host that executed this step, and whether it saw this host's data and DAGSTER_HOME."""
    data = Path(os.environ["PENGUIN_DATA_DIR"])
    home = Path(os.environ["DAGSTER_HOME"])
    return dg.MaterializeResult(
        metadata={
            "host": socket.gethostname(),
            "sees_data": (data / MARKER).exists(),
            "sees_dagster_home": (home / "dagster.yaml").exists(),
        }
    )


defs = dg.Definitions(
    assets=[where_it_ran],
    jobs=[dg.define_asset_job("where_job", selection=[where_it_ran])],
    executor=celery_workers_executor,
)
