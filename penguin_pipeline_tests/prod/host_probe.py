"""A code location for the two-host test: one asset that records where it executed and what of
this host's files it could see, and prints a line to its stdout (the step's compute log). Loaded by
the test's webserver and daemon, and by the workers on the second host (the code is visible there,
as an image would carry it)."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import dagster as dg

from penguin_pipeline.defs.workers import celery_workers_executor

# The test writes this file into its data folder before the run.
MARKER = "visible-only-here.txt"
# The step prints this, then its host's name, to its stdout.
SAYS = "where_it_ran says hello from"


@dg.asset
def where_it_ran() -> dg.MaterializeResult:
    """The host that executed this step, and whether it saw this host's data, DAGSTER_HOME and
    PostgreSQL's unix sockets (the folders PENGUIN_TEST_PG_SOCKETS names)."""
    data = Path(os.environ["PENGUIN_DATA_DIR"])
    home = Path(os.environ["DAGSTER_HOME"])
    sockets = [
        Path(f) for f in os.environ.get("PENGUIN_TEST_PG_SOCKETS", "").split(os.pathsep) if f
    ]
    print(f"{SAYS} {socket.gethostname()}", flush=True)
    return dg.MaterializeResult(
        metadata={
            "host": socket.gethostname(),
            "sees_data": (data / MARKER).exists(),
            "sees_dagster_home": (home / "dagster.yaml").exists(),
            "sees_postgres_socket": any(any(f.glob(".s.PGSQL.*")) for f in sockets),
        }
    )


defs = dg.Definitions(
    assets=[where_it_ran],
    jobs=[dg.define_asset_job("where_job", selection=[where_it_ran])],
    executor=celery_workers_executor,
)
