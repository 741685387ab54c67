"""The one Dagster entry point (workspace.yaml loads it; `dg dev` and `dagster dev -m penguin_pipeline.definitions` too)."""

from __future__ import annotations

import dagster as dg

from . import sources
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
        # In-process: the five steps share one interpreter; the multiprocess executor starts one per
        # step (README, "Executor").
        executor=dg.in_process_executor,
    )
    per_source = [source_definitions(s, settings.sensor_interval_seconds) for s in sources.SOURCES]
    return dg.Definitions.merge(pipeline, *per_source)
