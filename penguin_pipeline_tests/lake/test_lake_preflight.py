"""What is wrong with a configured lake is said in one line before any run starts: the catalog
cannot be reached, the data path takes no files, an extension package is missing, or
PENGUIN_WAREHOUSE is not a lake. The catalog's password is never shown: not in the UI's resource
config, not in a job's config, not in any of those lines."""

from __future__ import annotations

from contextlib import contextmanager

import dagster as dg
import duckdb
import pytest
from dagster._core.remote_representation.external_data import (
    RepositorySnap,
    ResourceConfigEnvVarSnap,
)
from dagster._serdes import serialize_value

from penguin_pipeline import cli
from penguin_pipeline.definitions import defs
from penguin_pipeline.defs.resources import warehouse_resource
from penguin_pipeline.settings import load_settings
from penguin_pipeline.storage import warehouse

from ..processes import instance_home
from .conftest import _admin

SECRET = "s3cret"


def run_refused(capsys, settings_dir) -> str:
    assert cli.main(["run"]) == 1
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert not (settings_dir / "logs").exists()  # no run was started: no run log
    return err


def test_an_unreachable_catalog_is_named(lake_env, data_dir, monkeypatch, capsys):
    unreachable = lake_env.replace("port=5432", "port=1") + " password=secret"
    monkeypatch.setenv("PENGUIN_WAREHOUSE", f"ducklake:postgres:{unreachable}")
    err = run_refused(capsys, data_dir)
    assert "the lake's catalog cannot be reached" in err and "port=1" in err
    assert "Connection refused" in err and "secret" not in err


def test_a_missing_catalog_database_is_named(lake_env, data_dir, monkeypatch, capsys):
    monkeypatch.setenv(
        "PENGUIN_WAREHOUSE", "ducklake:postgres:dbname=no_such_lake host=127.0.0.1 user=postgres"
    )
    err = run_refused(capsys, data_dir)
    assert 'database "no_such_lake" does not exist' in err and "create the database" in err


def test_a_data_path_without_write_access_is_named(
    lake_env, data_dir, tmp_path, monkeypatch, capsys
):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("PENGUIN_LAKE_DATA", str(blocker / "lake"))
    err = run_refused(capsys, data_dir)
    assert f"PENGUIN_LAKE_DATA={blocker / 'lake'} is not writable" in err


def test_a_missing_extension_package_is_named(lake_env, data_dir, monkeypatch, capsys):
    packages = {**warehouse.EXTENSION_PACKAGES, "ducklake": "duckdb-extension-not-installed"}
    monkeypatch.setattr(warehouse, "EXTENSION_PACKAGES", packages)
    err = run_refused(capsys, data_dir)
    assert "DuckDB extension ducklake missing" in err
    assert "duckdb-extension-not-installed" in err and "make setup-lake" in err


def test_a_warehouse_that_is_not_a_lake_is_refused(data_dir, monkeypatch, capsys):
    monkeypatch.setenv("PENGUIN_WAREHOUSE", "postgres:dbname=x")
    err = run_refused(capsys, data_dir)
    assert "PENGUIN_WAREHOUSE must be unset" in err and "ducklake:postgres:" in err


def test_extensions_are_loaded_from_the_packages_and_never_downloaded(lake_env):
    from penguin_pipeline.defs.resources import warehouse_resource
    from penguin_pipeline.settings import load_settings

    with warehouse_resource(load_settings()).get_connection() as con:
        loaded = dict(
            con.execute(
                "SELECT extension_name, install_path FROM duckdb_extensions() WHERE loaded"
            ).fetchall()
        )
        settings = dict(
            con.execute(
                "SELECT name, value FROM duckdb_settings() WHERE name IN "
                "('autoinstall_known_extensions', 'autoload_known_extensions')"
            ).fetchall()
        )
    assert {"ducklake", "postgres_scanner"} <= set(loaded)
    assert settings == {
        "autoinstall_known_extensions": "false",
        "autoload_known_extensions": "false",
    }
    for name in ("ducklake", "postgres_scanner"):
        assert warehouse.extension_file(name).name == f"{name}.duckdb_extension"


def test_the_lake_environment_has_the_duckdb_its_extensions_are_built_for():
    """pyproject's extra `lake` pins DuckDB and its extensions; the error for a missing extension
    names that version (warehouse.LAKE_DUCKDB): they move together."""
    assert duckdb.__version__ == warehouse.LAKE_DUCKDB


@pytest.mark.parametrize("name", sorted(warehouse.EXTENSION_PACKAGES))
def test_every_extension_package_has_a_build_for_this_duckdb(name):
    assert warehouse.extension_file(name).is_file()


def test_the_catalog_password_is_shown_nowhere(lake_env, data_dir, monkeypatch, capsys):
    unreachable = lake_env.replace("port=5432", "port=1") + f" password={SECRET}"
    monkeypatch.setenv("PENGUIN_WAREHOUSE", f"ducklake:postgres:{unreachable}")
    # What the UI shows: each resource's configured values, and each job's snapshot (stored with
    # every run): its config schema with the resources' values as defaults.
    shown = RepositorySnap.from_def(defs().get_repository_def())
    [resource] = [r for r in shown.resources if r.name == "warehouse"]
    assert resource.configured_values["lake_setting"] == ResourceConfigEnvVarSnap(
        name="PENGUIN_WAREHOUSE"
    )
    assert SECRET not in serialize_value(shown)

    err = run_refused(capsys, data_dir)
    assert "the lake's catalog cannot be reached" in err
    assert "password=***" in err and SECRET not in err


def test_a_run_stores_and_logs_no_catalog_password(
    lake_env, data_dir, tmp_path, monkeypatch, capsys
):
    home = instance_home(tmp_path)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("PENGUIN_WAREHOUSE", f"ducklake:postgres:{lake_env} password={SECRET}")
    assert cli.main(["run"]) == 0  # Postgres here trusts local users: the password goes unused
    with dg.DagsterInstance.from_config(str(home)) as instance:
        [run] = instance.get_runs()
        stored = serialize_value(
            [
                run.run_config,
                instance.get_job_snapshot(run.job_snapshot_id),
                instance.all_logs(run.run_id),
            ]
        )
    assert "PENGUIN_WAREHOUSE" in stored and SECRET not in stored
    [run_log] = (data_dir / "logs").glob("run-*.log")
    said = capsys.readouterr().out
    assert "password=***" in said  # the summary names the catalog, masked
    assert SECRET not in run_log.read_text() + said


@pytest.mark.parametrize(
    "text, shown",
    [
        ("dbname=x password=s3cret host=h", "dbname=x password=*** host=h"),
        ("dbname=x password='s3 cret' host=h", "dbname=x password=*** host=h"),
        ('at "dbname=x password=s3cret": refused', 'at "dbname=x password=***": refused'),
        ("postgresql://penguin:s3cret@h/lake", "postgresql://penguin:***@h/lake"),
    ],
)
def test_every_form_of_a_libpq_password_is_masked(text, shown):
    assert warehouse.masked(text) == shown


@contextmanager
def catalog_refusing_connections(libpq: str):
    """The catalog database as if Postgres had stopped: open sessions ended, new ones refused."""
    name = dict(part.split("=", 1) for part in libpq.split())["dbname"]
    admin = _admin()
    try:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
            cursor.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s",
                [name],
            )
        yield
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS true')
        admin.close()


def test_a_catalog_lost_mid_run_is_named_without_its_password(lake_env, monkeypatch):
    monkeypatch.setenv("PENGUIN_WAREHOUSE", f"ducklake:postgres:{lake_env} password={SECRET}")
    with pytest.raises(dg.Failure) as failure:
        with warehouse_resource(load_settings()).get_connection() as con:
            con.execute("CREATE TABLE t AS SELECT 1 AS a")
            with catalog_refusing_connections(lake_env):
                con.execute("SELECT * FROM t").fetchall()
    line = failure.value.description
    assert line.startswith("the lake's catalog cannot be reached") and "password=***" in line
    assert "not currently accepting connections" in line and "fix PENGUIN_WAREHOUSE" in line
    assert SECRET not in str(failure.value)
