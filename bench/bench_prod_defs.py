"""penguin_pipeline's definitions without its sensors and schedules, for `make bench-prod`: the
backfill the benchmark launches is then the only run. The same assets, job, resources and executor
(PENGUIN_PROFILE picks it) as penguin_pipeline.definitions."""

import dagster as dg

from penguin_pipeline import definitions as project


@dg.definitions
def defs() -> dg.Definitions:
    full = project.defs()
    return dg.Definitions(
        assets=full.assets, jobs=full.jobs, resources=full.resources, executor=full.executor
    )
