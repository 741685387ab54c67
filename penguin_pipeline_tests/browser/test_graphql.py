"""Dagster's GraphQL API as a script or an orchestrator calls it: launch, poll, read back."""

from __future__ import annotations

import pytest
import requests
from dagster import DagsterRunStatus
from dagster_graphql import DagsterGraphQLClient

from ..processes import wait_for

pytestmark = pytest.mark.integration

PARTITION = "penguins-raw.csv"  # the seeded landing file, a raw_penguins partition
SELECTION = ["raw_penguins", "penguins"]
DONE = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}

RUN_QUERY = """
query RunAssets($runId: ID!) {
  runOrError(runId: $runId) {
    __typename
    ... on Run {
      status
      jobName
      tags { key value }
      assetSelection { path }
      assetMaterializations { assetKey { path } partition }
    }
  }
}
"""


def test_launch_one_partition_of_penguin_job_with_an_asset_selection(dagster_ui):
    client = DagsterGraphQLClient("127.0.0.1", port_number=dagster_ui.port, timeout=60)
    run_id = client.submit_job_execution(
        "penguin_job", tags={"dagster/partition": PARTITION}, asset_selection=SELECTION
    )

    status = wait_for(
        lambda: (s := client.get_run_status(run_id)) in DONE and s,
        timeout=150,
        interval=1,
        what=f"run {run_id} to finish",
    )
    assert status == DagsterRunStatus.SUCCESS

    answer = requests.post(
        f"{dagster_ui.url}/graphql",
        json={"query": RUN_QUERY, "variables": {"runId": run_id}},
        timeout=30,
    ).json()
    run = answer["data"]["runOrError"]
    assert run["__typename"] == "Run", answer
    assert run["status"] == "SUCCESS"
    assert run["jobName"] == "penguin_job"
    assert {"key": "dagster/partition", "value": PARTITION} in run["tags"]
    assert sorted("/".join(a["path"]) for a in run["assetSelection"]) == sorted(SELECTION)
    materialized = sorted(
        ("/".join(m["assetKey"]["path"]), m["partition"]) for m in run["assetMaterializations"]
    )
    assert materialized == [("penguins", None), ("raw_penguins", PARTITION)]
