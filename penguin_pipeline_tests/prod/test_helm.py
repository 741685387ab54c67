"""deploy/helm (the production profile on Kubernetes) against the chart's keys and the profile.

No cluster and no helm here: the values file is checked against CHART_KEYS, the keys of Dagster's
chart (dagster/dagster) it uses, and every setting it carries is compared with the profile's own:
instance/prod/dagster.yaml, the settings, workspace.yaml, `prod.worker_command`, and the variables
`make prod-up HOSTS=2` gives its workers (docs/how-to/past-one-machine.md).
"""

from __future__ import annotations

import configparser
import copy
import re
from pathlib import Path
from urllib.parse import urlsplit

import jsonschema
import pytest
import yaml

from penguin_pipeline import hosts, prod
from penguin_pipeline.settings import DEFAULT_PG_URL, PROJECT_ROOT, load_settings

HELM = PROJECT_ROOT / "deploy" / "helm"
VALUES = yaml.safe_load((HELM / "values.yaml").read_text())
CONFIG_MAP, WORKERS = yaml.safe_load_all((HELM / "workers.yaml").read_text())
SECRET_KEYS = re.findall(r"--from-literal=([A-Za-z0-9_-]+)=", (HELM / "secrets.sh").read_text())
# Where every pod reads the settings from: the ConfigMap of workers.yaml, the Secret of secrets.sh.
ENV_FROM = {
    "envConfigMaps": [{"name": "penguin-pipeline-env"}],
    "envSecrets": [{"name": "penguin-pipeline-secrets"}],
}


# --- the chart's keys ----------------------------------------------------------------------------
# Read from the chart's source in dagster-io/dagster: helm/dagster/values.schema.json (commit
# bdb8547f) and, for `concurrency`, added after it, helm/dagster/schema/.../subschema/concurrency.py
# and templates/helpers/instance/_concurrency.tpl; runMonitoring and runRetries (free-form objects
# in the schema) as templates/configmap-instance.yaml reads them. Only the keys this file uses, and
# closed at every level, stricter than the chart (which ignores some unknown keys): a misspelt key
# fails here. A key the values file starts using is added here from the chart of uv.lock's version.


def _closed(required: tuple[str, ...] = (), **properties) -> dict:
    return {
        "type": "object",
        "properties": properties,
        "required": list(required),
        "additionalProperties": False,
    }


_STR, _INT, _BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
_NAMED = {"type": "array", "items": _closed(("name",), name=_STR)}  # envConfigMaps, envSecrets
_ENV_FROM = {"envConfigMaps": _NAMED, "envSecrets": _NAMED}
_IMAGE = _closed(
    ("repository", "pullPolicy"),
    repository=_STR,
    tag={"type": ["string", "integer", "null"]},
    pullPolicy={"enum": ["Always", "IfNotPresent", "Never"]},
)
_ENV_SOURCE = _closed(("env",), env=_STR)  # a value read from an environment variable
CHART_KEYS = _closed(
    dagsterWebserver=_closed(
        image=_IMAGE,
        workspace=_closed(
            ("enabled", "servers"),
            enabled=_BOOL,
            servers={
                "type": "array",
                "items": _closed(("host", "port"), host=_STR, port=_INT, name=_STR),
            },
        ),
        **_ENV_FROM,
    ),
    **{
        "global": _closed(postgresqlSecretName=_STR),
        "dagster-user-deployments": _closed(
            enabled=_BOOL,
            enableSubchart=_BOOL,
            deployments={
                "type": "array",
                "items": _closed(
                    ("name", "image", "port"),
                    name=_STR,
                    image=_IMAGE,
                    dagsterApiGrpcArgs={"type": "array", "items": _STR},
                    port=_INT,
                    includeConfigInLaunchedRuns=_closed(("enabled",), enabled=_BOOL),
                    **_ENV_FROM,
                ),
            },
        ),
    },
    runLauncher=_closed(
        ("type", "config"),
        type={"enum": ["CeleryK8sRunLauncher", "K8sRunLauncher", "CustomRunLauncher"]},
        config=_closed(k8sRunLauncher=_closed(**_ENV_FROM)),
    ),
    dagsterDaemon=_closed(
        image=_IMAGE,
        runCoordinator=_closed(
            ("enabled", "type", "config"),
            enabled=_BOOL,
            type={"enum": ["QueuedRunCoordinator", "CustomRunCoordinator"]},
            config=_closed(
                customRunCoordinator=_closed(
                    ("module", "class", "config"),
                    module=_STR,
                    config={"type": "object"},
                    **{"class": _STR},
                )
            ),
        ),
        runMonitoring=_closed(
            ("enabled",),
            enabled=_BOOL,
            startTimeoutSeconds=_INT,
            cancelTimeoutSeconds=_INT,
            maxRuntimeSeconds=_INT,
            maxResumeRunAttempts=_INT,
            pollIntervalSeconds=_INT,
            freeSlotsAfterRunEndSeconds=_INT,
        ),
        runRetries=_closed(("enabled",), enabled=_BOOL, maxRetries=_INT),
        **_ENV_FROM,
    ),
    concurrency=_closed(
        enabled=_BOOL,
        pools=_closed(defaultLimit=_INT, granularity={"enum": ["run", "op"]}),
        runs=_closed(maxConcurrentRuns=_INT),
    ),
    postgresql=_closed(
        enabled=_BOOL,
        postgresqlHost=_STR,
        postgresqlUsername=_STR,
        postgresqlDatabase=_STR,
        postgresqlScheme=_STR,
        service=_closed(("port",), port=_INT),
    ),
    generatePostgresqlPasswordSecret=_BOOL,
    rabbitmq=_closed(enabled=_BOOL),
    redis=_closed(enabled=_BOOL),
    flower=_closed(enabled=_BOOL),
    computeLogManager=_closed(
        ("type", "config"),
        type={
            "enum": [
                "NoOpComputeLogManager",
                "AzureBlobComputeLogManager",
                "GCSComputeLogManager",
                "S3ComputeLogManager",
                "CustomComputeLogManager",
            ]
        },
        config=_closed(
            s3ComputeLogManager=_closed(
                ("bucket",),
                bucket=_STR,
                prefix=_STR,
                endpointUrl={"anyOf": [_STR, _ENV_SOURCE]},
            )
        ),
    ),
    telemetry=_closed(("enabled",), enabled=_BOOL),
)


def chart_key_errors(values: dict) -> list[str]:
    validator = jsonschema.Draft7Validator(CHART_KEYS)
    return [
        f"{'.'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(values)
    ]


def test_the_values_use_only_the_charts_keys():
    assert chart_key_errors(VALUES) == []


def test_a_misspelt_key_is_caught():
    values = copy.deepcopy(VALUES)
    launcher = values["runLauncher"]["config"]["k8sRunLauncher"]
    launcher["envSecret"] = launcher.pop("envSecrets")
    values["dagsterDaemon"]["runMonitoring"]["pollIntervalSecond"] = 10
    errors = chart_key_errors(values)
    assert len(errors) == 2 and "'envSecret' was unexpected" in " ".join(errors), errors


# --- the profile's settings ----------------------------------------------------------------------


def chart_instance(values: dict) -> dict:
    """The parts of dagster.yaml the chart renders from `values` that the profile also sets, as
    templates/configmap-instance.yaml and its helpers render them (a custom run coordinator's config
    verbatim, the others key by key)."""
    daemon = values["dagsterDaemon"]
    coordinator = daemon["runCoordinator"]["config"]["customRunCoordinator"]
    pools, runs = values["concurrency"]["pools"], values["concurrency"]["runs"]
    snake = {
        "startTimeoutSeconds": "start_timeout_seconds",
        "pollIntervalSeconds": "poll_interval_seconds",
        "freeSlotsAfterRunEndSeconds": "free_slots_after_run_end_seconds",
        "maxRetries": "max_retries",
        "enabled": "enabled",
    }
    return {
        "telemetry": {"enabled": values["telemetry"]["enabled"]},
        "concurrency": {
            "pools": {"default_limit": pools["defaultLimit"], "granularity": pools["granularity"]},
            "runs": {"max_concurrent_runs": runs["maxConcurrentRuns"]},
        },
        "run_coordinator": {k: coordinator[k] for k in ("module", "class", "config")},
        "run_retries": {snake[k]: v for k, v in daemon["runRetries"].items()},
        "run_monitoring": {snake[k]: v for k, v in daemon["runMonitoring"].items()},
    }


def test_the_instance_settings_are_the_profiles():
    """Run queue, pools, run limit, retries and run monitoring as instance/prod/dagster.yaml; only
    the storage (the chart's Postgres settings) and the launcher (a Job per run) differ."""
    profile = yaml.safe_load(prod.INSTANCE_YAML.read_text())
    assert profile.pop("run_launcher")["class"] == "LocalRunLauncher"
    assert VALUES["runLauncher"]["type"] == "K8sRunLauncher"
    profile.pop("storage")
    assert chart_instance(VALUES) == profile
    assert VALUES["dagsterDaemon"]["runCoordinator"]["type"] == "CustomRunCoordinator"


def test_postgres_is_the_profiles_database_with_psycopg2():
    postgres, default = VALUES["postgresql"], urlsplit(DEFAULT_PG_URL)
    assert postgres["enabled"] is False and VALUES["generatePostgresqlPasswordSecret"] is False
    assert postgres["postgresqlDatabase"] == default.path.lstrip("/")
    assert postgres["service"]["port"] == default.port
    assert prod.dagster_pg_url(DEFAULT_PG_URL).startswith(postgres["postgresqlScheme"] + "://")


def test_the_code_location_is_workspace_yamls():
    workspace = yaml.safe_load((PROJECT_ROOT / "workspace.yaml").read_text())
    module = workspace["load_from"][0]["python_module"]
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    (server,) = VALUES["dagsterWebserver"]["workspace"]["servers"]
    assert deployment["dagsterApiGrpcArgs"] == ["-m", module["module_name"]]
    assert server == {
        "host": deployment["name"],
        "port": deployment["port"],
        "name": module["location_name"],
    }


def test_every_pod_runs_one_image_with_the_same_settings():
    (deployment,) = VALUES["dagster-user-deployments"]["deployments"]
    readers = [
        VALUES["dagsterWebserver"],
        VALUES["dagsterDaemon"],
        deployment,
        VALUES["runLauncher"]["config"]["k8sRunLauncher"],
    ]
    for reader in readers:
        assert {k: reader[k] for k in ENV_FROM} == ENV_FROM
    images = {f"{r['image']['repository']}:{r['image']['tag']}" for r in readers[:3]}
    (container,) = WORKERS["spec"]["template"]["spec"]["containers"]
    assert images == {container["image"]}
    assert container["envFrom"] == [
        {"configMapRef": ENV_FROM["envConfigMaps"][0]},
        {"secretRef": ENV_FROM["envSecrets"][0]},
    ]
    assert CONFIG_MAP["metadata"]["name"] == ENV_FROM["envConfigMaps"][0]["name"]


def test_the_workers_are_the_profiles():
    """Same command as `prod.worker_command` (queue, one step at a time), PENGUIN_WORKERS of them,
    stopped as supervisord stops them."""
    settings = load_settings({})
    (container,) = WORKERS["spec"]["template"]["spec"]["containers"]
    command = prod.worker_command(settings, 1, "%h")
    assert container["command"] == [Path(command[0]).name]
    assert container["args"] == command[1:]
    assert WORKERS["spec"]["replicas"] == settings.workers
    supervisor = configparser.ConfigParser(interpolation=None)
    supervisor.read_string(prod.SUPERVISOR_TEMPLATE.read_text())
    grace = int(supervisor["program-defaults"]["stopwaitsecs"])
    assert WORKERS["spec"]["template"]["spec"]["terminationGracePeriodSeconds"] == grace


def test_the_pods_get_what_the_two_host_profile_gives_its_workers():
    """Each variable of `make prod-up HOSTS=2`'s workers is in the ConfigMap (same value), in the
    Secret secrets.sh makes, or the chart's own; each is one the settings read."""
    settings = load_settings({})
    env = prod.process_env(settings, {"PENGUIN_WAREHOUSE": "ducklake:postgres:..."})
    hosts.on_s3(settings, env, 9000)  # PENGUIN_WAREHOUSE given: no catalog database created
    chart_own = {
        "DAGSTER_HOME": "global.dagsterHome",
        "PENGUIN_PG_URL": "postgresql.* and DAGSTER_PG_PASSWORD from global.postgresqlSecretName",
    }
    stand_in_only = {"AWS_EC2_METADATA_DISABLED"}  # moto's; a real AWS needs its metadata
    config = CONFIG_MAP["data"]
    missing = set(env) - set(config) - set(SECRET_KEYS) - set(chart_own) - stand_in_only
    assert missing == set()
    assert {name: env[name] for name in config} == config
    settings_source = (PROJECT_ROOT / "penguin_pipeline" / "settings.py").read_text()
    for name in [*config, *SECRET_KEYS]:
        known = (
            f'"{name}"' in settings_source or name.startswith("AWS_") or name == "PYTHONUNBUFFERED"
        )
        assert known or name == "postgresql-password", name
    bucket = VALUES["computeLogManager"]["config"]["s3ComputeLogManager"]["bucket"]
    assert bucket == hosts.BUCKET


@pytest.mark.parametrize("path", ["values.yaml", "workers.yaml"])
def test_no_password_in_the_files(path):
    text = (HELM / path).read_text()
    assert not re.search(r"://[^/\s:@]*:[^/\s@]+@", text), "a URL with a password"
    assert "postgresqlPassword" not in text and "password:" not in text.lower()
