"""When work runs: a factory that turns each entry of the source registry into Dagster definitions.

For every source (`penguin_pipeline/sources.py`): its own external asset in the lineage graph, with
a cron FreshnessPolicy from its cadence; a sensor that gives each new or changed file of its
landing prefix one run of penguin_job (that file's raw_penguins partition, and in the same run
everything downstream, so new data reaches the report and the API without a second tick); and a
schedule at its cadence that sweeps the landing zone for anything the sensor missed.
"""

import functools
import json
from datetime import timedelta

import dagster as dg
from dagster._utils.schedules import get_smallest_cron_interval

from .. import sources
from ..sources import Source
from .assets import landing_files
from .jobs import penguin_job
from .resources import LandingZone

RANGE_START = "dagster/asset_partition_range_start"
RANGE_END = "dagster/asset_partition_range_end"
SOURCE_TAG = "penguin/source"


# Both are built once per cadence: Dagster walks a cron's schedule to find its interval (~10 ms a
# walk), and loading the definitions took ~25 walks (~0.17 s of CPU), in every process that loads
# them: each step on a Celery worker does.
@functools.cache
def cadence_interval(cron: str) -> timedelta:
    return get_smallest_cron_interval(cron)


@functools.cache
def freshness_policy(cron: str) -> dg.FreshnessPolicy:
    """Fresh when refreshed within one cadence period before each expected update."""
    return dg.FreshnessPolicy.cron(
        deadline_cron=cron, lower_bound_delta=cadence_interval(cron), timezone="UTC"
    )


def source_asset(source: Source) -> dg.AssetSpec:
    """The source itself in the lineage graph; its sensor records each file that lands."""
    return dg.AssetSpec(
        source.name,
        group_name="sources",
        description=source.description,
        owners=[source.owner],
        kinds=set(source.formats),
        freshness_policy=freshness_policy(source.cadence_cron),
        metadata={
            "landing_prefix": source.prefix or "(landing root)",
            "cadence_cron": source.cadence_cron,
        },
    )


def fed_by_sources(assets: list) -> list:
    """raw_penguins reads every source; a derived asset is as fresh as the most frequent source."""
    registry = sources.SOURCES  # read at call time, so the registry stays the one place to change
    most_frequent = min(registry, key=lambda s: cadence_interval(s.cadence_cron))
    policy = freshness_policy(most_frequent.cadence_cron)

    def apply(spec: dg.AssetSpec) -> dg.AssetSpec:
        if spec.key == dg.AssetKey("raw_penguins"):
            spec = spec.merge_attributes(deps=[s.name for s in registry])
        return spec.replace_attributes(freshness_policy=policy)

    return dg.map_asset_specs(apply, assets)


def new_partitions(instance: dg.DagsterInstance, names: list[str]) -> list[str]:
    """Landing file names that are not yet raw_penguins partitions."""
    known = set(instance.get_dynamic_partitions(landing_files.name))
    return [n for n in names if n not in known]


def register_new_partitions(
    instance: dg.DagsterInstance, names: list[str], attempts: int = 5
) -> list[str]:
    """Add the landing files that are not yet partitions; returns those this call added.

    Processes registering at once (a schedule tick beside a sensor's, a CLI run beside the
    daemon) race on the same names: Dagster's insert then fails on its unique key, so the loser
    looks again and adds only what is still missing.
    """
    for attempt in range(1, attempts + 1):
        new = new_partitions(instance, names)
        if not new:
            return []
        try:
            instance.add_dynamic_partitions(landing_files.name, new)
            return new
        except Exception:
            if attempt == attempts:
                raise
    return []


def whole_landing_tags(instance: dg.DagsterInstance) -> dict[str, str]:
    """Run tags that make one run cover every landing file (raw_penguins: single-run backfills)."""
    keys = instance.get_dynamic_partitions(landing_files.name)
    return {RANGE_START: keys[0], RANGE_END: keys[-1]} if keys else {}


def source_schedule(source: Source) -> dg.ScheduleDefinition:
    @dg.schedule(
        name=f"{source.name}_schedule",
        cron_schedule=source.cadence_cron,
        execution_timezone="UTC",
        job=penguin_job,
        default_status=dg.DefaultScheduleStatus.RUNNING,
        description=f"At {source.name}'s expected update time, one run over the whole landing zone "
        "(unchanged files are skipped by content hash, so it only catches what a sensor missed).",
    )
    def _schedule(context: dg.ScheduleEvaluationContext, landing: LandingZone):
        register_new_partitions(context.instance, [f.name for f in landing.landing().files()])
        tags = whole_landing_tags(context.instance)
        if not tags:
            return dg.SkipReason(f"{source.name}: the landing zone is empty")
        return dg.RunRequest(run_key=None, tags={**tags, SOURCE_TAG: source.name})

    return _schedule


def changed_files(files, cursor: dict) -> list:
    """Landing files whose content the sensor has not yet seen (new names or new content)."""
    return [f for f in files if cursor.get(f.name, {}).get("hash") != f.content_hash]


def source_sensor(source: Source, interval_seconds: int) -> dg.SensorDefinition:
    @dg.sensor(
        name=f"{source.name}_sensor",
        job=penguin_job,
        minimum_interval_seconds=interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description=f"One run per new or changed file under {source.name}'s landing prefix "
        "(run key: name, content hash, generation).",
    )
    def _sensor(context: dg.SensorEvaluationContext, landing: LandingZone):
        cursor = json.loads(context.cursor) if context.cursor else {}
        changed = changed_files(
            [f for f in landing.landing().files() if source.owns(f.name)], cursor
        )
        if not changed:
            return dg.SkipReason(f"no new or changed {source.name} files")
        requests, landed = [], []
        for f in changed:
            # The generation lets a file that returns to earlier content run again; the run key
            # still stops duplicate runs if the same tick is evaluated twice.
            generation = cursor.get(f.name, {}).get("generation", 0) + 1
            cursor[f.name] = {"hash": f.content_hash, "generation": generation}
            requests.append(
                dg.RunRequest(
                    run_key=f"{f.name}:{f.content_hash}:{generation}",
                    partition_key=f.name,
                    tags={"penguin/landing_file": f.name, SOURCE_TAG: source.name},
                )
            )
            landed.append(
                dg.AssetMaterialization(
                    source.name,
                    description=f"{f.name} landed",
                    metadata={"file": f.name, "bytes": f.size},
                )
            )
        new = new_partitions(context.instance, [f.name for f in changed])
        return dg.SensorResult(
            run_requests=requests,
            asset_events=landed,
            dynamic_partitions_requests=[landing_files.build_add_request(new)] if new else [],
            cursor=json.dumps(cursor, sort_keys=True),
        )

    return _sensor


def source_definitions(source: Source, sensor_interval_seconds: int) -> dg.Definitions:
    """Everything one registry entry brings: its asset, its sensor, its schedule."""
    return dg.Definitions(
        assets=[source_asset(source)],
        schedules=[source_schedule(source)],
        sensors=[source_sensor(source, sensor_interval_seconds)],
    )
