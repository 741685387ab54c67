"""The lake with its Parquet files on S3 (moto over HTTP), and the board, landing zone and reports
there too: the whole pipeline by configuration alone; a bucket that is not there is one line
before any run."""

from __future__ import annotations

import pytest

from penguin_pipeline import cli
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..storage.conftest import direct_client
from .lake_tools import lake_query, rows_per_file

pytestmark = pytest.mark.integration


def keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    response = direct_client(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_the_pipeline_runs_with_the_lake_board_and_landing_on_s3(
    lake_env, data_dir, moto_server, s3_bucket, monkeypatch, instance
):
    endpoint = moto_server.endpoint_url
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    for name, prefix in (
        ("PENGUIN_LAKE_DATA", "lake"),
        ("PENGUIN_BOARD", "board"),
        ("PENGUIN_LANDING", "raw"),
        ("PENGUIN_REPORTS", "reports"),
    ):
        monkeypatch.setenv(name, f"s3://{s3_bucket}/{prefix}")
    cli.check_storage(load_settings())  # the preflight passes: the lake's data path takes files

    result = cli.run_pipeline(instance)
    assert result.success, cli.failure_messages(result)
    assert rows_per_file() == {"penguins-raw.csv": 344}
    assert lake_query("SELECT count(*) FROM penguins") == [(344,)]
    parquet = [key for key in keys(endpoint, s3_bucket, "lake/") if key.endswith(".parquet")]
    assert any(key.startswith("lake/main/raw_penguins/") for key in parquet)
    facts = boards.latest_model_facts(boards.board_from_url(load_settings().board_url, endpoint))
    assert facts["rows_used"] + facts["rows"]["held_out"] == 333
    assert isinstance(facts["warehouse_snapshot"], int)
    assert not (data_dir / "lake").exists()  # nothing fell back to a folder


def test_a_lake_bucket_that_does_not_exist_is_one_line(
    lake_env, data_dir, moto_server, aws_env, monkeypatch, capsys
):
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    monkeypatch.setenv("PENGUIN_LAKE_DATA", "s3://no-such-bucket-here/lake")
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert "PENGUIN_LAKE_DATA=s3://no-such-bucket-here/lake is not writable" in err
