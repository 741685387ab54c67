"""Credentials that are present but wrong, against moto with authentication enforced.

moto checks signatures only once its "initial no-auth action count" is used up; its server resets
that count through POST /moto-api/reset-auth. The setting lives in moto's process (here: the test
process, which runs ThreadedMotoServer), so the fixture restores it whatever happens.
"""

from __future__ import annotations

import json
import logging

import pytest
import requests

from penguin_pipeline import cli
from penguin_pipeline.storage import locations, s3

from .conftest import empty_bucket, make_bucket

pytestmark = pytest.mark.integration

WRONG_SECRET = "wrong-secret-Zq8v1Jm3Xx0pLk5Tn7Rb2Yw4"
UNKNOWN_KEY_ID = "AKIAPENGUINUNKNOWN01"
S3_ONLY = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}],
}


def set_auth(endpoint: str, free_requests: str) -> str:
    answer = requests.post(
        f"{endpoint}/moto-api/reset-auth", data=free_requests.encode(), timeout=10
    )
    answer.raise_for_status()
    return answer.json()["PREVIOUS_INITIAL_NO_AUTH_ACTION_COUNT"]


@pytest.fixture
def enforcing_moto(own_moto_server, aws_env, monkeypatch):
    """moto with signatures checked: an IAM user allowed s3:*, its real key pair, and a bucket."""
    import boto3

    endpoint = own_moto_server.endpoint_url
    iam = boto3.client("iam", endpoint_url=endpoint)
    iam.create_user(UserName="penguin-pipeline")
    iam.put_user_policy(
        UserName="penguin-pipeline", PolicyName="s3", PolicyDocument=json.dumps(S3_ONLY)
    )
    key = iam.create_access_key(UserName="penguin-pipeline")["AccessKey"]
    bucket = make_bucket(endpoint)
    previous = set_auth(endpoint, "0")
    try:
        yield endpoint, bucket, key["AccessKeyId"], key["SecretAccessKey"]
    finally:
        set_auth(endpoint, previous)
        empty_bucket(endpoint, bucket)
        iam.delete_access_key(UserName="penguin-pipeline", AccessKeyId=key["AccessKeyId"])
        iam.delete_user_policy(UserName="penguin-pipeline", PolicyName="s3")
        iam.delete_user(UserName="penguin-pipeline")


def use_keys(monkeypatch, key_id: str, secret: str) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", secret)


@pytest.mark.parametrize(
    "which, cause",
    [
        ("wrong secret", "the secret key does not match the access key id"),
        ("unknown key id", "the endpoint does not know this access key id"),
    ],
)
def test_wrong_credentials_fail_the_start_up_check_by_name_without_the_secret(
    enforcing_moto, monkeypatch, which, cause
):
    endpoint, bucket, key_id, secret = enforcing_moto
    use_keys(monkeypatch, key_id, secret)
    locations.check_storage(
        f"s3://{bucket}/board", f"s3://{bucket}/raw", endpoint_url=endpoint
    )  # the real pair passes

    use_keys(
        monkeypatch,
        *((key_id, WRONG_SECRET) if which == "wrong secret" else (UNKNOWN_KEY_ID, secret)),
    )
    with pytest.raises(s3.S3StorageError) as failure:
        locations.check_storage(f"s3://{bucket}/board", endpoint_url=endpoint)
    message = str(failure.value)
    assert f"bucket '{bucket}'" in message and endpoint in message and cause in message
    assert WRONG_SECRET not in message and secret not in message


def test_a_run_with_a_wrong_secret_stops_with_one_line_and_no_secret(
    enforcing_moto, data_dir, monkeypatch, tmp_path, capsys, caplog
):
    endpoint, bucket, key_id, _ = enforcing_moto
    use_keys(monkeypatch, key_id, WRONG_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("PENGUIN_BOARD", f"s3://{bucket}/board")
    monkeypatch.setenv("PENGUIN_LANDING", f"s3://{bucket}/raw")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "dagster_home"))
    (tmp_path / "dagster_home").mkdir()
    with caplog.at_level(logging.DEBUG):
        code = cli.main(["run"])
    out, err = capsys.readouterr()
    assert code != 0 and out == ""
    [line] = err.strip().splitlines()
    assert f"bucket '{bucket}'" in line and endpoint in line and "secret key does not match" in line
    assert WRONG_SECRET not in out + err + caplog.text


def test_a_run_started_without_the_start_up_check_fails_its_first_step_clearly(
    enforcing_moto, data_dir, monkeypatch, instance, caplog
):
    """What the sensor or the UI launches: the job itself, no cli check before it."""
    endpoint, bucket, key_id, _ = enforcing_moto
    use_keys(monkeypatch, key_id, WRONG_SECRET)
    monkeypatch.setenv("AWS_ENDPOINT_URL", endpoint)
    monkeypatch.setenv("PENGUIN_BOARD", f"s3://{bucket}/board")
    monkeypatch.setenv("PENGUIN_LANDING", f"s3://{bucket}/raw")
    instance.add_dynamic_partitions("landing_files", ["penguins-raw.csv"])
    job = cli.defs().resolve_job_def("penguin_job")
    with caplog.at_level(logging.DEBUG):
        result = job.execute_in_process(
            instance=instance, partition_key="penguins-raw.csv", raise_on_error=False
        )
    assert not result.success
    [failure] = cli.failure_messages(result)
    assert (
        failure.startswith("raw_penguins")
        and f"bucket '{bucket}'" in failure
        and endpoint in failure
    )
    assert "secret key does not match" in failure
    logged = " ".join(str(event.message) for event in instance.all_logs(result.run_id))
    assert WRONG_SECRET not in logged + caplog.text + failure
