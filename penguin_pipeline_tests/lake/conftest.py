"""The DuckLake backend against the real PostgreSQL on 127.0.0.1: each test gets its own catalog
database (dropped after, with whatever still connects to it) and its own data folder or S3 bucket
(moto's standalone server, storage/conftest.py); the production profile's test uses prod/conftest's
deployment (its own instance database and Celery queue).

Without Postgres the tests are skipped, naming it; on CI (CI set) they fail instead.
"""

from __future__ import annotations

import psycopg2
import pytest

from penguin_pipeline import prod

from ..processes import PG_SERVER, scratch_database, services_missing
from ..prod.conftest import database, deployment, queue, services_answer  # noqa: F401 (fixtures)
from ..storage.conftest import aws_env, moto_server, s3_bucket  # noqa: F401 (fixtures)

SERVER = PG_SERVER


def _admin():
    con = psycopg2.connect(
        f"{SERVER} dbname=postgres", connect_timeout=prod.CONNECT_TIMEOUT_SECONDS
    )
    con.autocommit = True
    return con


@pytest.fixture(scope="session")
def postgres_answers():
    try:
        _admin().close()
    except psycopg2.OperationalError as exc:
        services_missing(f"PostgreSQL at {SERVER} does not answer: {' '.join(str(exc).split())}")


@pytest.fixture
def catalog(postgres_answers) -> str:
    """A fresh Postgres database for one lake's catalog: its libpq connection string."""
    with scratch_database("penguin_lake", SERVER) as libpq:
        yield libpq


@pytest.fixture
def lake_env(catalog, data_dir, monkeypatch) -> str:
    """Settings that select the lake (catalog above, data under the test's data folder)."""
    monkeypatch.setenv("PENGUIN_WAREHOUSE", f"ducklake:postgres:{catalog}")
    monkeypatch.delenv("PENGUIN_LAKE_DATA", raising=False)
    return catalog
