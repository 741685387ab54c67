"""When work runs: derived from the source registry (schedules, freshness) and from new data (sensor).

A new or changed landing file gets exactly one run of penguin_job for its raw_penguins partition;
the same run rebuilds penguins, penguin_summary, penguin_model and penguin_report, so new data
reaches the report and the API without anyone clicking, in one run, with no automation daemon
tick in between. penguin_model pins a new version only when its training data changed.
"""

import json

import dagster as dg

from .. import sources
from ..sources import Source
from .assets import landing_files
from .jobs import penguin_job
from .resources import LandingZone

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"


def freshness_policy(source: Source) -> dg.FreshnessPolicy:
    """Warn when an asset missed one expected update; fail when it is older than a period plus the grace."""
    period = source.period()
    return dg.FreshnessPolicy.time_window(fail_window=period + source.grace, warn_window=period)


def with_freshness(assets: list) -> list:
    """Give each source's asset, and everything downstream of it, the source's freshness policy."""
    registry = sources.SOURCES  # read at call time, so the registry stays the one place to change
    keys_by_source = {
        source.name: dg.AssetSelection.assets(source.feeds).downstream().resolve(assets) for source in registry
    }

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        for source in registry:
            if spec.key in keys_by_source[source.name]:
                return spec.replace_attributes(freshness_policy=freshness_policy(source))
        return spec

    return dg.map_asset_specs(apply, assets)


def new_partitions(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    """Landing file names that are not yet raw_penguins partitions."""
    known = set(instance.get_dynamic_partitions(landing_files.name))
    return [n for n in names if n not in known]


def register_new_partitions(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    new = new_partitions(instance, names)
    if new:
        instance.add_dynamic_partitions(landing_files.name, new)
    return new


def whole_landing_tags(instance: dg.DagsterInstance) -> dict[str, str]:
    """Run tags that make one run cover every landing file (raw_penguins has a single-run backfill policy)."""
    keys = instance.get_dynamic_partitions(landing_files.name)
    return {RANGE_START: keys[0], RANGE_END: keys[-1]} if keys else {}


def build_source_schedule(source: Source) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{source.name}_schedule",
        cron_schedule=source.cadence_cron,
        execution_timezone="UTC",
        job=penguin_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"Sweep {source.name}'s landing zone at its expected update time ({source.cadence_cron} UTC).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, landing: LandingZone):
        register_new_partitions(context.instance, [f.name for f in landing.landing().files()])
        tags = whole_landing_tags(context.instance)
        if not tags:
            return dg.SkipReason(f"{source.name}: the landing zone is empty")
        return dg.RunRequest(run_key=None, tags=tags)

    return _schedule


def changed_files(files, cursor: dict) -> list:
    """Landing files whose content the sensor has not yet seen (new names or new content)."""
    return [f for f in files if cursor.get(f.name, {}).get("hash") != f.content_hash]


def build_landing_sensor(interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name="landing_sensor",
        job=penguin_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="One run per new or changed landing file (run key: name, content hash, generation).",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = json.loads(context.cursor) if context.cursor else {}
        changed = changed_files(landing.landing().files(), cursor)
        if not changed:
            return dg.SkipReason("no new or changed landing files")
        requests = []
        for f in changed:
            # The generation lets a file that returns to earlier content run again; the run key
            # still stops duplicate runs if the same tick is evaluated twice.
            generation = cursor.get(f.name, {}).get("generation", 0) + 1
            cursor[f.name] = {"hash": f.content_hash, "generation": generation}
            requests.append(dg.RunRequest(run_key=f"{f.name}:{f.content_hash}:{generation}", partition_key=f.name,
                                          tags={"penguin/landing_file": f.name}))
        new = new_partitions(context.instance, [f.name for f in changed])
        return dg.SensorResult(
            run_requests=requests,
            dynamic_partitions_requests=[landing_files.build_add_request(new)] if new else [],
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return _sensor
