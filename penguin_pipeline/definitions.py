"""The one Dagster entry point (workspace.yaml loads it; `dg dev` and
`dagster dev -m penguin_pipeline.definitions` too)."""

from __future__ import annotations

import dagster as dg

from . import sources
from .defs.alerts import alert_definitions
from .defs.assets import ALL_ASSETS
from .defs.automation import fed_by_sources, source_definitions
from .defs.jobs import penguin_job
from .defs.resources import build_resources
from .settings import load_settings


@dg.definitions
def defs() -> dg.Definitions:
    settings = load_settings()
    pipeline = dg.Definitions(
        assets=fed_by_sources(ALL_ASSETS),
        jobs=[penguin_job],
        resources=build_resources(settings),
        executor=_executor(settings.profile),
    )
    per_source = [source_definitions(s, settings.sensor_interval_seconds) for s in sources.SOURCES]
    return dg.Definitions.merge(pipeline, *per_source, alert_definitions(settings))


def _executor(profile: str) -> dg.ExecutorDefinition:
    """In-process by default: the five steps share one interpreter; the multiprocess executor
    starts one per step (README, "Executor"). The production profile (PENGUIN_PROFILE=prod) runs
    every step on a Celery worker (README, "Production profile"); Celery is imported only then."""
    if profile == "prod":
        from .defs.workers import celery_workers_executor

        return celery_workers_executor
    return dg.in_process_executor
