"""The whole pipeline with its board, landing zone and reports on S3 (moto over HTTP), chosen by
environment alone."""

from __future__ import annotations

import pytest

from penguin_pipeline import cli
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import boards

from ..conftest import LTER_FILE, query
from .conftest import direct_client

pytestmark = pytest.mark.integration


def keys(endpoint: str, bucket: str, prefix: str) -> list[str]:
    response = direct_client(endpoint).list_objects_v2(Bucket=bucket, Prefix=prefix)
    return sorted(item["Key"] for item in response.get("Contents", []))


def test_pipeline_runs_on_s3_by_configuration_alone(
    data_dir, moto_server, s3_bucket, monkeypatch, instance
):
    endpoint = moto_server.endpoint_url
    monkeypatch.setenv("PENGUIN_BOARD", f"s3://{s3_bucket}/board")
    monkeypatch.setenv("PENGUIN_LANDING", f"s3://{s3_bucket}/raw")
    monkeypatch.setenv("PENGUIN_REPORTS", f"s3://{s3_bucket}/reports")
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    settings = load_settings()

    result = cli.run_pipeline(instance)
    assert result.success, cli.failure_messages(result)

    # landing was seeded on S3, the tables filled from it, and the model was pinned to the S3 board
    landed = (
        direct_client(endpoint)
        .get_object(Bucket=s3_bucket, Key="raw/penguins-raw.csv")["Body"]
        .read()
    )
    assert landed == LTER_FILE.read_bytes()
    assert query(settings, "SELECT count(*) FROM raw_penguins") == [(344,)]
    assert query(settings, "SELECT count(*) FROM penguins") == [(344,)]
    facts = boards.latest_model_facts(boards.board_from_url(settings.board_url, endpoint))
    # every complete row but the newest season's (2009) held-out ones
    assert facts["rows_used"] + facts["rows"]["held_out"] == 333
    assert keys(endpoint, s3_bucket, "board/penguin_model/") == [
        f"board/penguin_model/{facts['version']}/data.txt",
        f"board/penguin_model/{facts['version']}/penguin_model.joblib",
    ]
    report = direct_client(endpoint).get_object(Bucket=s3_bucket, Key="reports/penguin_report.html")
    assert facts["version"] in report["Body"].read().decode("utf-8")
    assert keys(endpoint, s3_bucket, "reports/") == [
        "reports/penguin_report.html"
    ]  # no temp name left
    for folder in ("board", "raw", "reports"):
        assert not (data_dir / folder).exists()  # nothing fell back to folders

    # a whole-file failure is quarantined to an S3 prefix beside the landing prefix, with its reason
    direct_client(endpoint).put_object(
        Bucket=s3_bucket, Key="raw/notes.csv", Body=b"this is,not\nthe lter,layout\n"
    )
    result = cli.run_pipeline(instance)
    assert result.success
    [quarantined_file] = cli.quarantined_files(result)
    assert quarantined_file["file"] == "notes.csv"
    assert quarantined_file["moved_to"].startswith(f"s3://{s3_bucket}/quarantine/")
    quarantined = keys(endpoint, s3_bucket, "quarantine/")
    assert len(quarantined) == 2 and quarantined[1].endswith("notes.csv.reason.txt")
    assert keys(endpoint, s3_bucket, "raw/") == ["raw/penguins-raw.csv"]
    assert query(settings, "SELECT count(*) FROM raw_penguins") == [(344,)]
