"""Jobs: the whole graph, as `make run` and the schedules launch it."""

import dagster as dg

penguin_job = dg.define_asset_job(
    "penguin_job",
    selection=dg.AssetSelection.all(),
    description="Landing files -> raw_penguins -> penguins -> summary and model -> report.",
)
